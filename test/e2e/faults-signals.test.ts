/**
 * Faults, signals: SIGQUIT stops the pool gracefully (as TERM does) and cleans up; SIGALRM, SIGVTALRM,
 * SIGPROF and SIGXFSZ, whose default action would kill the supervisor and leave its socket, control socket
 * and PID file behind, are logged and ignored. SIGPIPE is ignored by Node itself.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESPONDER, requireBuild, startPool } from '../helpers/pool.js';
import { isGone, removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-faults-signals');
});
after(() => removePath(dir));

test('SIGQUIT: a graceful stop, exit 0; socket, control socket and PID file removed, no child left', async (t) => {
  const sock = join(dir, 'quit.sock');
  const pidFile = join(dir, 'quit.pid');
  const pool = await startPool(['-s', sock, '-P', pidFile, '-F', '2', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));
  const children = pool.childPids();
  assert.equal(existsSync(`${sock}.control`), true);
  const exit = await pool.stop('SIGQUIT', 15_000);
  t.diagnostic(pool.stderr().trim().split('\n').slice(-2).join(' | '));
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.match(pool.stderr(), /stopping \(SIGQUIT\)/);
  assert.equal(existsSync(sock), false, 'socket removed');
  assert.equal(existsSync(`${sock}.control`), false, 'control socket removed');
  assert.equal(existsSync(pidFile), false, 'PID file removed');
  for (const pid of children) assert.ok(isGone(pid), `child ${pid} left behind`);
});

test('SIGALRM, SIGVTALRM, SIGPROF, SIGXFSZ, SIGPIPE: logged and ignored; the pool keeps serving, then TERM cleans up', async (t) => {
  const sock = join(dir, 'alrm.sock');
  const pidFile = join(dir, 'alrm.pid');
  const pool = await startPool(['-s', sock, '-P', pidFile, '-F', '1', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));
  const children = pool.childPids();
  for (const signal of ['SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGXFSZ', 'SIGPIPE'] as const) {
    process.kill(pool.pid, signal);
    if (signal !== 'SIGPIPE') await waitFor(() => pool.stderr().includes(`${signal} received: ignored`), { timeoutMs: 30_000, what: `${signal} logged` });
  }
  await sleep(200);
  assert.equal(pool.exitStatus(), undefined, `the supervisor died of a signal:\n${pool.stderr()}`);
  assert.deepEqual(pool.childPids(), children, 'the children were not touched');
  assert.equal((await pool.request({}, { timeoutMs: 30_000 })).appStatus, 0);
  const exit = await pool.stop('SIGTERM', 15_000);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(existsSync(sock), false);
  assert.equal(existsSync(`${sock}.control`), false);
  assert.equal(existsSync(pidFile), false);
});
