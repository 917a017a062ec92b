/**
 * Faults, the fork limit: the supervisor in a pids cgroup whose pids.max leaves no room for a new child.
 * A killed child's restart fails with EAGAIN: the slot backs off with the reason, status shows it, the
 * supervisor stays up; once the limit is lifted the slot runs again. Skipped where no pids cgroup can be
 * made (cgroup v1 /sys/fs/cgroup/pids or a v2 hierarchy with the pids controller).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESPONDER, requireBuild, runCli, spawnersOf, startPool } from '../helpers/pool.js';
import { removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const PIDS_ROOT = existsSync('/sys/fs/cgroup/pids/cgroup.procs') ? '/sys/fs/cgroup/pids' : '/sys/fs/cgroup';

function makeCgroup(name: string): string | undefined {
  const path = join(PIDS_ROOT, name);
  try {
    mkdirSync(path);
    if (!existsSync(join(path, 'pids.max'))) {
      rmdirSync(path);
      return undefined;
    }
    return path;
  } catch {
    return undefined;
  }
}

let dir: string;
let cgroup: string | undefined;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-faults-fork');
  cgroup = makeCgroup(`sfts-fork-${process.pid}`);
});
after(() => {
  removePath(dir);
  if (cgroup === undefined) return;
  // Move whatever is left back to the root group, then remove ours.
  try {
    for (const pid of readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) writeFileSync(join(PIDS_ROOT, 'cgroup.procs'), pid);
  } catch {
    /* gone */
  }
  try {
    rmdirSync(cgroup);
  } catch {
    /* busy: the clean-up of the pools kills them */
  }
});

test('fork limit at run time (pids cgroup): EAGAIN → backing off with the reason, status shows it; lifted → running again', async (t) => {
  if (cgroup === undefined) {
    t.skip('no writable pids cgroup here');
    return;
  }
  const sock = join(dir, 'fork.sock');
  const control = `${sock}.control`;
  const pool = await startPool(['-s', sock, '-F', '2', '--restart-delay', '100ms', '--max-restart-delay', '400ms', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));
  for (const pid of [pool.pid, ...spawnersOf(pool.pid), ...pool.childPids()]) writeFileSync(join(cgroup, 'cgroup.procs'), String(pid));
  // Every task (threads included) that is there now, less the child about to be killed: no room for its successor.
  const current = Number(readFileSync(join(cgroup, 'pids.current'), 'utf8'));
  writeFileSync(join(cgroup, 'pids.max'), String(current - 1));
  t.after(() => {
    try {
      writeFileSync(join(cgroup!, 'pids.max'), 'max');
    } catch {
      /* removed */
    }
  });

  const [victim] = pool.childPids();
  process.kill(victim!, 'SIGKILL');
  await waitFor(() => /spawn failed: EAGAIN/.test(pool.stderr()), { timeoutMs: 10_000, what: 'EAGAIN logged' });
  const slot = await waitFor(
    async () => {
      const status = await runCli(['status', '--control', control, '--json'], { timeoutMs: 10_000 });
      const slots = (JSON.parse(status.stdout) as { slots: { slot: number; state: string; pid: number | null; lastExit: { reason: string } | null }[] }).slots;
      return slots.find((s) => s.state === 'backing off');
    },
    { timeoutMs: 10_000, what: "a slot 'backing off' in status" },
  );
  t.diagnostic(`status: ${JSON.stringify(slot)}`);
  assert.equal(slot.pid, null);
  assert.match(slot.lastExit?.reason ?? '', /spawn failed: EAGAIN/);
  await sleep(500);
  assert.equal(pool.exitStatus(), undefined, 'the supervisor stays up');

  writeFileSync(join(cgroup, 'pids.max'), 'max');
  await waitFor(() => pool.childPids().length === 2, { timeoutMs: 10_000, what: 'two children again' });
  assert.equal((await pool.request({}, { timeoutMs: 30_000 })).appStatus, 0);
  const exit = await pool.stop('SIGTERM', 15_000);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(existsSync(sock), false);
});
