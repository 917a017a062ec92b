import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeControl } from '../helpers/fake-control.js';
import { RESPONDER, requireBuild, runCli, startPool, track } from '../helpers/pool.js';
import { isGone, removePath, signalIfAlive, tmpDir, waitFor } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-observe-status');
  chmodSync(dir, 0o711);
});
after(() => removePath(dir));

/** A process that is not ours to ask: started here, tracked, its PID returned. */
function startStranger(command: string, args: string[], user?: string): number {
  const child =
    user === undefined
      ? spawn(command, args, { stdio: 'ignore' })
      : spawn('setpriv', [`--reuid=${user}`, '--regid=nogroup', '--clear-groups', command, ...args], { stdio: 'ignore' });
  track(child.pid!);
  return child.pid!;
}

/** A PID that was alive a moment ago and is not now. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

test('status exit codes follow LSB: 0 running, 150 degraded, 1 dead with a PID file, 3 not running, 4 unknown', async () => {
  const okPid = join(dir, 'ok.pid');
  const ok = await startPool(['-s', join(dir, 'ok.sock'), '-F', '2', '-P', okPid, '--', RESPONDER]);

  // A slot that crash-loops once `broken` exists: each restart exits 1 at once and backs off.
  const broken = join(dir, 'broken');
  const flaky = join(dir, 'flaky.sh');
  writeFileSync(flaky, `#!/bin/sh\n[ -e '${broken}' ] && exit 1\nexec '${RESPONDER}'\n`, { mode: 0o755 });
  const degradedPid = join(dir, 'degraded.pid');
  const degraded = await startPool(['-s', join(dir, 'degraded.sock'), '-F', '2', '-P', degradedPid, '--', flaky]);
  writeFileSync(broken, '');
  process.kill(degraded.childPids()[0]!, 'SIGKILL');
  await waitFor(async () => (await runCli(['status', '-P', degradedPid])).code === 150, { timeoutMs: 15_000, what: 'status to say degraded' });

  const stale = join(dir, 'stale.pid');
  writeFileSync(stale, `${await deadPid()}\n`);
  const garbage = join(dir, 'garbage.pid');
  writeFileSync(garbage, 'twelve\n');
  const fifo = join(dir, 'fifo.pid');
  execFileSync('mkfifo', [fifo]);
  const sleeper = startStranger('sleep', ['600']);
  const forged = join(dir, 'forged.pid');
  writeFileSync(forged, `${sleeper}\n`);
  // A supervisor killed with SIGKILL leaves its PID file and PIDFILE.control; its PID then goes to another process.
  const reused = join(dir, 'reused.pid');
  writeFileSync(reused, `${sleeper}\n`);
  execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', `${reused}.control`]);

  const rows: [string, string[], number, RegExp][] = [
    ['running, by PID file', ['-P', okPid], 0, /^$/],
    ['running, by socket', ['-s', join(dir, 'ok.sock')], 0, /^$/],
    ['degraded: a slot crash-looping', ['-P', degradedPid], 150, /^$/],
    ['dead, PID file left', ['-P', stale], 1, /not running, but the PID file .* exists/],
    [
      'dead, PID reused, control socket left',
      ['-P', reused],
      1,
      new RegExp(`not running, but the PID file .* exists \\(stale; PID ${sleeper} is another process now\\)`),
    ],
    ['not running: no PID file', ['-P', join(dir, 'none.pid')], 3, /not running: no PID file/],
    ['not running: no socket', ['-s', join(dir, 'none.sock')], 3, /no pool answers on .*none\.sock\.control/],
    ['unknown: PID file without a PID', ['-P', garbage], 4, /cannot read a PID from/],
    ['unknown: PID file is a FIFO', ['-P', fifo], 4, /cannot read a PID from/],
    ['unknown: PID of a process that is not a supervisor', ['-P', forged], 4, new RegExp(`process ${sleeper} of .* is not a spawn-fcgi-ts supervisor`)],
  ];
  for (const [state, args, code, message] of rows) {
    const result = await runCli(['status', ...args], { timeoutMs: 15_000 });
    assert.equal(result.code, code, `${state}: exit ${result.code}, stderr: ${result.stderr}`);
    assert.match(result.stderr.trim(), message, state);
    if (code === 0 || code === 150) assert.match(result.stdout, /^supervisor \d+ on /, state);
    else assert.equal(result.stdout, '', state);
  }
  const table = await runCli(['status', '-P', degradedPid]);
  assert.match(table.stdout.split('\n')[0]!, /; not ready: 1 of 2 children running, slot 0 (backing off|starting)/);

  await ok.stop();
  assert.equal((await runCli(['status', '-P', okPid])).code, 3, 'the PID file is gone after a stop');
  await degraded.stop();
  signalIfAlive(sleeper);
});

test('status -P never reads the command line or config of the process in the PID file: no leak, no hang', async () => {
  const secret = join(dir, 'secret.conf');
  writeFileSync(secret, 'FCGISOCKET=TOPSECRET-first-line\n', { mode: 0o600 });
  const fifo = join(dir, 'config.fifo');
  execFileSync('mkfifo', [fifo]);
  // Processes of another user whose command lines look like a supervisor's with --config.
  for (const config of [secret, fifo]) {
    const stranger = startStranger(
      process.execPath,
      ['-e', 'setTimeout(() => {}, 600000)', '/usr/lib/node_modules/spawn-fcgi-ts/dist/cli.cjs', '--config', config],
      'nobody',
    );
    await waitFor(() => !isGone(stranger), { what: 'the stranger to run' });
    const pidFile = join(dir, `stranger-${stranger}.pid`);
    writeFileSync(pidFile, `${stranger}\n`);
    const result = await runCli(['status', '-P', pidFile], { timeoutMs: 15_000 });
    assert.equal(result.code, 4, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^spawn-fcgi-ts: process ${stranger} of '.*' is not a spawn-fcgi-ts supervisor that answers: no pool answers on .*\\.control: no such socket\\n$`,
      ),
    );
    assert.doesNotMatch(result.stdout + result.stderr, /TOPSECRET/);
    signalIfAlive(stranger);
  }
});

test('a control socket squatted by another user is refused by status, and the supervisor says whose it is', async () => {
  const shared = join(dir, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  const socket = join(shared, 'x.sock');
  const answer = JSON.stringify({
    supervisorPid: 1,
    socket: '\x1b[2J\x1b]0;pwned\x07',
    startedAt: 0,
    now: 0,
    children: 0,
    restarts: 0,
    listenQueue: null,
    slots: [],
  });
  const squatter = await startFakeControl(shared, `${socket}.control`, answer, { user: 'nobody' });

  const refused = await runCli(['status', '-s', socket]);
  assert.equal(refused.code, 4);
  assert.equal(refused.stdout, '');
  assert.equal(refused.stderr, `spawn-fcgi-ts: control socket ${socket}.control belongs to uid 65534, not to root or to you: not trusted\n`);

  const pool = await startPool(['-s', socket, '--', RESPONDER]);
  assert.match(pool.stderr(), new RegExp(`control socket ${socket}\\.control is held by another user \\(uid 65534\\), not by this supervisor`));
  assert.equal((await runCli(['status', '-s', socket])).code, 4, 'still refused while the pool runs');
  await pool.stop();
  squatter.stop();
});

test('a trusted control socket with a bad answer: one line, exit 4; control characters never reach the output', async () => {
  const valid = {
    supervisorPid: 4242,
    socket: '/x\x1b[31m.sock',
    startedAt: 1,
    now: 2,
    configured: 1,
    stopping: false,
    children: 1,
    restarts: 0,
    listenQueue: null,
    slots: [
      {
        slot: 0,
        pid: 4243,
        state: 'running',
        startedAt: 1,
        restarts: 1,
        failures: 0,
        lastExit: { code: 1, signal: null, at: 1, reason: 'exit\r\n\x1b]0;owned\x07 \u009b2J' },
        cpuPercent: null,
        cpuSeconds: null,
        rssBytes: null,
      },
    ],
  };
  const cases: [string, string, number, RegExp][] = [
    ['not JSON', '<html>hi</html>', 200, /gave a bad answer: the answer is not JSON$/],
    ['slots not a list', '{"slots":"x"}', 200, /gave a bad answer: 'slots' is not a list$/],
    ['a wrong state', JSON.stringify({ ...valid, slots: [{ ...valid.slots[0], state: 'hacked\x1b[2J' }] }), 200, /slots\[0\]\.state is not a slot state$/],
    ['an HTTP error', 'nope', 500, /answered HTTP 500$/],
  ];
  for (const [name, body, status, message] of cases) {
    const path = join(dir, `bad-${status}-${name.replace(/\W/g, '')}.control`);
    const fake = await startFakeControl(dir, path, body, { status });
    const result = await runCli(['status', '--control', path]);
    assert.equal(result.code, 4, name);
    assert.equal(result.stdout, '', name);
    assert.equal(result.stderr.split('\n').length, 2, `${name}: one line`);
    assert.match(result.stderr.trim(), message, name);
    fake.stop();
  }
  const path = join(dir, 'escapes.control');
  const fake = await startFakeControl(dir, path, JSON.stringify(valid));
  for (const args of [[], ['--json']]) {
    const result = await runCli(['status', '--control', path, ...args]);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/, `no raw control character in status ${args.join(' ')}`);
    assert.match(result.stdout, /\\(x1b|u001b)\[31m/);
  }
  fake.stop();
});
