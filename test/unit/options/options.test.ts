import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SetupError } from '../../../src/common/errors.js';
import { MAX_DURATION_MS, MAX_PROCS, parseDuration, parseRlimit, parseSignal, resolveOptions, type RawOptions } from '../../../src/options/options.js';

const base: RawOptions = { s: '/tmp/x.sock', app: ['php-cgi'] };
const fails = (raw: RawOptions, message: RegExp) =>
  assert.throws(
    () => resolveOptions(raw),
    (error: unknown) => error instanceof SetupError && message.test(error.message) && error.exitCode === 255,
  );

test('spawn-fcgi defaults', () => {
  const o = resolveOptions(base);
  assert.equal(o.backlog, 1024);
  assert.equal(o.procs, 1);
  assert.equal(o.socketMode, undefined);
  assert.equal(o.phpChildren, undefined);
  assert.equal(o.killSignal, 15);
  assert.equal(o.killTimeoutMs, 10_000);
  assert.equal(o.foreground, false);
  assert.deepEqual(o.socket, { kind: 'unix', path: '/tmp/x.sock', abstract: false });
});

test('flags map to options', () => {
  const o = resolveOptions({ ...base, F: '4', C: '16', b: '64', M: '0600', n: true, P: '/tmp/p', killSignal: 'usr1', killTimeout: '500ms' });
  assert.equal(o.procs, 4);
  assert.equal(o.phpChildren, 16);
  assert.equal(o.backlog, 64);
  assert.equal(o.socketMode, 0o600);
  assert.equal(o.foreground, true);
  assert.equal(o.killSignal, 10);
  assert.equal(o.killTimeoutMs, 500);
  assert.equal(resolveOptions({ ...base, C: '-1' }).phpChildren, undefined);
});

test('-f becomes a shell exec, as in spawn-fcgi', () => {
  assert.deepEqual(resolveOptions({ s: '/tmp/x', f: '/x/app arg' }).app, ['/bin/sh', '-c', 'exec /x/app arg']);
  assert.deepEqual(resolveOptions({ s: '/tmp/x', f: '/x/app', app: ['/y'] }).app, ['/y']);
});

test('socket errors use spawn-fcgi messages', () => {
  fails({ app: ['x'] }, /^no socket given \(use either -p or -s\)$/);
  fails({ ...base, p: '9000' }, /^either a Unix domain socket or a TCP-port, but not both$/);
  fails({ s: '/tmp/'.padEnd(108, 'x'), app: ['x'] }, /^path of the Unix domain socket is too long/);
  fails({ s: '/tmp/x' }, /^no FastCGI application given$/);
  assert.equal(resolveOptions({ s: '/tmp/'.padEnd(107, 'x'), app: ['x'] }).socket?.kind, 'unix');
});

test('ports are validated, never wrapped', () => {
  for (const port of ['0', '70000', 'abc', '12x', '-1', '65536'])
    fails({ p: port, app: ['x'] }, /^invalid port: .* \(-p: expected an integer from 1 to 65535\)$/);
  assert.deepEqual(resolveOptions({ p: '65535', app: ['x'] }).socket, { kind: 'tcp', host: '0.0.0.0', port: 65535 });
});

test('addresses: IPv4 and IPv6 literals, host names, bracketed IPv6', () => {
  assert.equal((resolveOptions({ p: '9000', a: '::1', app: ['x'] }).socket as { host: string }).host, '::1');
  assert.equal((resolveOptions({ p: '9000', a: '[::1]', app: ['x'] }).socket as { host: string }).host, '::1');
  assert.equal((resolveOptions({ p: '9000', a: 'localhost', app: ['x'] }).socket as { host: string }).host, 'localhost');
  fails({ p: '9000', a: '1.2.3.4.5:', app: ['x'] }, /is not a valid IP address/);
  fails({ p: '9000', a: 'a b', app: ['x'] }, /^'a b' is not a valid IP address \(-a: expected an IPv4 or IPv6 address or a host name\)$/);
});

test('abstract sockets', () => {
  assert.deepEqual(resolveOptions({ s: '@php', app: ['x'] }).socket, { kind: 'unix', path: '@php', abstract: true });
});

test('numbers and modes are checked', () => {
  fails({ ...base, M: '888' }, /^invalid value for -M: '888' \(expected an octal mode from 0 to 7777, such as 0660\)$/);
  fails({ ...base, F: '0' }, /^invalid value for -F: '0' \(expected an integer from 1 to 4096\)$/);
  fails({ ...base, F: 'x' }, /invalid value for -F: 'x'/);
  fails({ ...base, b: '0' }, /invalid value for -b/);
  fails({ ...base, restartDelay: '2s', maxRestartDelay: '1s' }, /--max-restart-delay/);
  fails({ ...base, maxRss: '100' }, /--max-rss needs --check-interval/);
});

test('socket activation makes -s/-p optional', () => {
  assert.equal(resolveOptions({ app: ['x'] }, { socketActivation: true }).socket, undefined);
});

test('durations, signals, rlimits', () => {
  assert.equal(parseDuration('x', '10'), 10_000);
  assert.equal(parseDuration('x', '2.5s'), 2500);
  assert.equal(parseDuration('x', '250ms'), 250);
  assert.equal(parseDuration('x', '1m'), 60_000);
  assert.equal(parseDuration('x', '6h'), 21_600_000);
  assert.equal(parseDuration('x', '2d'), 172_800_000);
  assert.throws(
    () => parseDuration('x', '1w'),
    /^SetupError: invalid value for x: '1w' \(expected a duration from 0 to 10 years: seconds, or a number with ms, s, m, h or d\)$/,
  );
  assert.equal(parseSignal('x', 'TERM'), 15);
  assert.equal(parseSignal('x', 'SIGusr1'), 10);
  assert.equal(parseSignal('x', '12'), 12);
  assert.throws(() => parseSignal('x', 'FOO'), /invalid value for x: 'FOO' \(expected a signal name such as TERM or USR1, or a number\)/);
  assert.throws(() => parseSignal('x', '99'), SetupError);
  assert.equal(parseRlimit('NOFILE=4096'), 'nofile=4096');
  assert.equal(parseRlimit('as=1024:unlimited'), 'as=1024:unlimited');
  assert.throws(() => parseRlimit('files=10'), /invalid --rlimit 'files=10'/);
});

test('environment options', () => {
  const o = resolveOptions({ ...base, copyEnv: ['PATH,HOME', 'LANG'], env: ['A=1', 'B=x=y', 'C='], webServerAddrs: '127.0.0.1' });
  assert.deepEqual(o.copyEnv, ['PATH', 'HOME', 'LANG']);
  assert.deepEqual(o.env, { A: '1', B: 'x=y', C: '' });
  assert.equal(o.webServerAddrs, '127.0.0.1');
  fails({ ...base, env: ['=1'] }, /invalid --env '=1'/);
  fails({ ...base, copyEnv: ['A-B'] }, /invalid variable name for --copy-env: 'A-B'/);
});

test('bounds: -F up to MAX_PROCS, -b up to 65535, the flag, the value and the range in one shape', () => {
  assert.equal(MAX_PROCS, 4096);
  assert.equal(resolveOptions({ ...base, F: '4096' }).procs, 4096);
  fails({ ...base, F: '4097' }, /^invalid value for -F: '4097' \(expected an integer from 1 to 4096\)$/);
  fails({ ...base, F: '100000' }, /^invalid value for -F: '100000'/);
  assert.equal(resolveOptions({ ...base, b: '65535' }).backlog, 65535);
  fails({ ...base, b: '99999999999' }, /^invalid value for -b: '99999999999' \(expected an integer from 1 to 65535\)$/);
  fails({ ...base, b: '-5' }, /^invalid value for -b: '-5'/);
  fails({ ...base, C: '1e3' }, /^invalid value for -C: '1e3'/);
  fails(
    { ...base, maxRss: '99999999999999', checkInterval: '1s' },
    /^invalid value for --max-rss: '99999999999999' \(expected an integer from 1 to 16777216\)$/,
  );
});

test('durations: up to 10 years accepted, more, negative or NaN refused', () => {
  assert.equal(resolveOptions({ ...base, killTimeout: '1000h' }).killTimeoutMs, 3_600_000_000);
  assert.equal(resolveOptions({ ...base, maxAge: '3650d' }).maxAgeMs, MAX_DURATION_MS);
  assert.equal(resolveOptions({ ...base, killTimeout: '0' }).killTimeoutMs, 0);
  for (const text of ['3651d', '87601h', '99999999999999999999', '-1s', 'NaN', 'Infinity', '1e9', '', ' ']) {
    fails({ ...base, killTimeout: text }, /^invalid value for --kill-timeout: '.*' \(expected a duration from 0 to 10 years/);
  }
  fails({ ...base, maxAge: '11y' }, /^invalid value for --max-age: '11y'/);
});

test('--kill-signal: signals that do not end a process are refused', () => {
  for (const name of ['STOP', 'TSTP', 'TTIN', 'TTOU', 'CONT', 'WINCH', 'CHLD', 'URG', 'sigcont', '19']) {
    fails(
      { ...base, killSignal: name },
      /^invalid value for --kill-signal: '.*' \(expected a signal that ends a process, such as TERM, INT, QUIT, USR1 or KILL; SIG[A-Z]+ does not\)$/,
    );
  }
  for (const name of ['TERM', 'INT', 'QUIT', 'USR1', 'USR2', 'KILL', 'HUP']) assert.ok(resolveOptions({ ...base, killSignal: name }).killSignal > 0);
});

test('a pool that sizes itself: --min-procs (default -F: static), --max-procs = -F, --idle-timeout (default 10s)', () => {
  const still = resolveOptions({ ...base, F: '4' });
  assert.deepEqual([still.minProcs, still.procs, still.idleTimeoutMs], [4, 4, 10_000]);
  const o = resolveOptions({ ...base, maxProcs: '4', minProcs: '0', idleTimeout: '1s' });
  assert.deepEqual([o.minProcs, o.procs, o.idleTimeoutMs], [0, 4, 1000]);
  assert.equal(resolveOptions({ ...base, F: '3', maxProcs: '3', minProcs: '3' }).minProcs, 3);
  fails({ ...base, F: '2', minProcs: '3' }, /^--min-procs 3 is more than -F\/--max-procs 2$/);
  fails({ ...base, F: '2', maxProcs: '3' }, /^-F 2 and --max-procs 3 disagree/);
  fails({ ...base, F: '2', minProcs: '-1' }, /--min-procs/);
  fails({ ...base, F: '2', minProcs: '1', idleTimeout: 'soon' }, /--idle-timeout/);
  fails({ ...base, F: '2', minProcs: '1', idleTimeout: '10ms' }, /^--idle-timeout must be at least 100ms$/);
});
