/**
 * Faults of the resident spawner (src/native/spawner.c), the process that forks every child: killed, its
 * children go with it and a new spawner brings the pool back; with the supervisor stopped (SIGSTOP) under
 * a flood of child output, it keeps reaping with bounded memory, and no line is lost once the supervisor
 * reads again; it restarts an armed child by itself (the supervisor stopped), and only that one.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESPONDER, requireBuild, spawnersOf, startPool, type RunningPool } from '../helpers/pool.js';
import { isGone, readStatus, removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

/** Clean-up of a test that stops the supervisor (SIGSTOP): let it run again, then stop it. */
function resumeAndStop(pool: RunningPool): Promise<unknown> {
  try {
    process.kill(pool.pid, 'SIGCONT');
  } catch {
    // gone
  }
  return pool.stop().catch(() => undefined);
}

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-faults-spawner');
});
after(() => removePath(dir));

test('the spawner killed (SIGKILL): its children get SIGTERM and go, a new spawner restarts the slots, the pool serves', async (t) => {
  const sock = join(dir, 'killed.sock');
  const pool = await startPool(['-s', sock, '-F', '2', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));
  const [spawner] = spawnersOf(pool.pid);
  const children = pool.childPids();
  assert.equal(children.length, 2);
  process.kill(spawner!, 'SIGKILL');
  await waitFor(() => children.every(isGone), { timeoutMs: 20_000, what: 'the children to go with their spawner' });
  const fresh = await waitFor(
    () => {
      const now = pool.childPids();
      return now.length === 2 && now.every((pid) => !children.includes(pid)) ? now : undefined;
    },
    { timeoutMs: 20_000, what: 'two new children' },
  );
  const [again] = spawnersOf(pool.pid);
  assert.ok(again !== undefined && again !== spawner, 'a new spawner');
  for (const pid of fresh) assert.equal(readStatus(pid)?.ppid, again);
  assert.match(pool.stderr(), /child signaled: SIGTERM|exited with signal SIGTERM|signal SIGTERM/);
  assert.equal((await pool.request({}, { timeoutMs: 30_000 })).appStatus, 0);
  assert.equal(pool.exitStatus(), undefined, 'the supervisor stays up');
  assert.deepEqual(await pool.stop(), { code: 0, signal: null });
});

test('the supervisor stopped (SIGSTOP) under a flood of output: the spawner still reaps, its memory stays bounded; after SIGCONT no line is lost', async (t) => {
  const sock = join(dir, 'flood.sock');
  const flag = join(dir, 'flood-now');
  const logFile = join(dir, 'flood.log');
  const app = join(dir, 'flooding-app.sh');
  const LINES = 80_000;
  const once = join(dir, 'flooded');
  // A grandchild that, once the flag exists, writes 80,000 lines of 100 characters (8 MB) to the shared
  // stdout; only the first child's (mkdir is the lock), not its successor's.
  writeFileSync(
    app,
    `#!/bin/sh\n(while [ ! -e '${flag}' ]; do sleep 0.05; done; mkdir '${once}' 2>/dev/null && { head -c ${LINES * 100} /dev/zero | tr '\\0' x | fold -w 100; echo; }) &\nexec '${RESPONDER}'\n`,
  );
  chmodSync(app, 0o755);
  const pool = await startPool(['-s', sock, '-F', '1', '--log-file', logFile, '--', app]);
  t.after(() => resumeAndStop(pool));
  const [spawner] = spawnersOf(pool.pid);
  const [child] = pool.childPids();
  const rssBefore = readStatus(spawner!)?.vmRssKb ?? 0;

  process.kill(pool.pid, 'SIGSTOP');
  writeFileSync(flag, '');
  // The flood fills the spawner's queue (1 MiB), then the pipe, then blocks: the spawner's memory stops growing.
  let peak = 0;
  for (let i = 0; i < 30; i++) {
    peak = Math.max(peak, readStatus(spawner!)?.vmRssKb ?? 0);
    await sleep(100);
  }
  // A child that dies now is reaped at once although nobody reads the spawner's reports.
  process.kill(child!, 'SIGKILL');
  await waitFor(() => readStatus(child!) === undefined, { timeoutMs: 20_000, what: 'the killed child to be reaped (not a zombie)' });
  peak = Math.max(peak, readStatus(spawner!)?.vmRssKb ?? 0);
  t.diagnostic(`spawner VmRSS ${rssBefore} kB before, peak ${peak} kB while the supervisor was stopped`);
  assert.ok(peak < rssBefore + 8 * 1024, `the spawner's memory grew by ${peak - rssBefore} kB while the supervisor was stopped`);

  process.kill(pool.pid, 'SIGCONT');
  const floodLines = () =>
    readFileSync(logFile, 'utf8')
      .split('\n')
      .filter((line) => line.endsWith('x'.repeat(100))).length;
  await waitFor(() => floodLines() === LINES, { timeoutMs: 120_000, intervalMs: 500, what: `${LINES} flood lines in the log` });
  await waitFor(() => pool.childPids().length === 1 && pool.childPids()[0] !== child, { timeoutMs: 20_000, what: 'the slot restarted' });
  assert.equal((await pool.request({}, { timeoutMs: 30_000 })).appStatus, 0);
  assert.deepEqual(await pool.stop(), { code: 0, signal: null });
});

test('a child killed while the supervisor is stopped (SIGSTOP) is restarted by the spawner alone; the pool adopts it, and a second fast death waits for the pool (backoff)', async (t) => {
  const sock = join(dir, 'frozen.sock');
  const pool = await startPool(['-s', sock, '-F', '2', '--restart-delay', '300ms', '--', RESPONDER]);
  t.after(() => resumeAndStop(pool));
  const [spawner] = spawnersOf(pool.pid);
  const [victim, other] = pool.childPids();
  process.kill(pool.pid, 'SIGSTOP');
  await waitFor(() => readStatus(pool.pid)?.state === 'T', { timeoutMs: 10_000, what: 'the supervisor stopped' });
  process.kill(victim!, 'SIGKILL');
  // The slot's child was armed (a first death is restarted at once): its replacement starts without the supervisor.
  const replacement = await waitFor(
    () => pool.childPids().find((pid) => pid !== victim && pid !== other && readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(RESPONDER)),
    { timeoutMs: 20_000, what: 'a replacement exec\u2019d by the spawner while the supervisor is stopped' },
  );
  assert.equal(readStatus(pool.pid)?.state, 'T', 'the supervisor was stopped all along');
  assert.equal(readStatus(replacement)?.ppid, spawner);
  // The replacement is not armed (only the pool arms, and it has not even seen it): its death waits for the pool.
  process.kill(replacement, 'SIGKILL');
  await waitFor(() => isGone(replacement), { timeoutMs: 20_000, what: 'the replacement reaped' });
  await sleep(300);
  assert.deepEqual(pool.childPids(), [other], 'nothing restarted the replacement while the supervisor was stopped');

  process.kill(pool.pid, 'SIGCONT');
  await waitFor(() => pool.childPids().length === 2, { timeoutMs: 20_000, what: 'two children again' });
  const log = pool.stderr();
  assert.match(log, new RegExp(`child spawned: PID: ${replacement}\\b`), 'the pool adopted the spawner\u2019s replacement as the restart');
  assert.match(log, /failure 2, restarting in \d+ ms/, 'the second fast death backed off');
  assert.equal((await pool.request({}, { timeoutMs: 30_000 })).appStatus, 0);
  assert.deepEqual(await pool.stop(), { code: 0, signal: null });
});
