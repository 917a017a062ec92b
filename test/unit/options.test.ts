import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SetupError } from '../../src/errors.js';
import { parseDuration, parseRlimit, parseSignal, resolveOptions, type RawOptions } from '../../src/options.js';

const base: RawOptions = { s: '/tmp/x.sock', app: ['php-cgi'] };
const fails = (raw: RawOptions, message: RegExp) =>
  assert.throws(() => resolveOptions(raw), (error: unknown) => error instanceof SetupError && message.test(error.message) && error.exitCode === 255);

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
  for (const port of ['0', '70000', 'abc', '12x', '-1', '65536']) fails({ p: port, app: ['x'] }, /^invalid port: /);
  assert.deepEqual(resolveOptions({ p: '65535', app: ['x'] }).socket, { kind: 'tcp', host: '0.0.0.0', port: 65535 });
});

test('addresses: IPv4 and IPv6 literals, host names, bracketed IPv6', () => {
  assert.equal((resolveOptions({ p: '9000', a: '::1', app: ['x'] }).socket as { host: string }).host, '::1');
  assert.equal((resolveOptions({ p: '9000', a: '[::1]', app: ['x'] }).socket as { host: string }).host, '::1');
  assert.equal((resolveOptions({ p: '9000', a: 'localhost', app: ['x'] }).socket as { host: string }).host, 'localhost');
  fails({ p: '9000', a: '1.2.3.4.5:', app: ['x'] }, /is not a valid IP address/);
  fails({ p: '9000', a: 'a b', app: ['x'] }, /'a b' is not a valid IP address/);
});

test('abstract sockets', () => {
  assert.deepEqual(resolveOptions({ s: '@php', app: ['x'] }).socket, { kind: 'unix', path: '@php', abstract: true });
});

test('numbers and modes are checked', () => {
  fails({ ...base, M: '888' }, /invalid socket mode: 888/);
  fails({ ...base, F: '0' }, /-F 0 starts no child/);
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
  assert.throws(() => parseDuration('x', '1d'), /invalid duration for x: '1d' \(seconds, or a number with ms, s, m or h\)/);
  assert.equal(parseSignal('x', 'TERM'), 15);
  assert.equal(parseSignal('x', 'SIGusr1'), 10);
  assert.equal(parseSignal('x', '12'), 12);
  assert.throws(() => parseSignal('x', 'FOO'), /invalid signal for x: 'FOO'/);
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
