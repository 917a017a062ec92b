/**
 * Supervision, churn (the functional check): 200 child deaths in a row (kill -9 of every child as soon as
 * it has exec'd) are each followed by a respawn, and leave the supervisor and its spawner with the
 * descriptors they had and no zombie. Its RSS is reported, not judged: memory under churn needs thousands of deaths and a quiet
 * machine to mean anything, and that is `npm run soak` (scripts/soak.mjs: 10,000+ deaths, the plateau).
 *
 * SFTS_CHURN sets the number of deaths (default 200).
 */
import assert from 'node:assert/strict';
import { readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESPONDER, requireBuild, spawnersOf, startPool, type RunningPool } from '../helpers/pool.js';
import { directChildren, readStatus, removePath, settledFdCount, signalIfAlive, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const CHURN = Number(process.env.SFTS_CHURN ?? '200');
const N = 4;

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-churn');
});
after(() => removePath(dir));

function exe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

// A few ms a death on an idle 2-core machine; leave room for a busy one.
const TIMEOUT = 60_000 + CHURN * 100;

test(`churn: ${CHURN} child deaths in a row, each one respawned, no descriptor leaked, no zombie left`, { timeout: TIMEOUT }, async (t) => {
  assert.ok(Number.isInteger(CHURN) && CHURN > 0, `SFTS_CHURN must be a positive integer, got ${process.env.SFTS_CHURN}`);
  const responder = realpathSync(RESPONDER);
  const sock = join(dir, 'churn.sock');
  // --stable-after 1ms: each killed child is replaced at once (no backoff), as a long-running child would be.
  const pool: RunningPool = await startPool(['-s', sock, '-F', String(N), '--stable-after', '1ms', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));

  // The children are the resident spawner's (src/native/spawner.c), which reaps them and holds their pipes.
  const [spawner] = spawnersOf(pool.pid);
  assert.ok(spawner !== undefined, 'the supervisor has a spawner');

  /** N children that have exec'd the responder and no zombie, then the supervisor's and the spawner's settled descriptors. */
  const quiet = async (): Promise<{ fds: number; spawnerFds: number; rssKb: number }> => {
    await waitFor(
      () => {
        const children = directChildren(spawner);
        return children.length === N && children.every((pid) => exe(pid) === responder && readStatus(pid)?.state !== 'Z');
      },
      { timeoutMs: 30_000, intervalMs: 10, what: `${N} running children and no zombie` },
    );
    return { fds: await settledFdCount(pool.pid), spawnerFds: await settledFdCount(spawner), rssKb: readStatus(pool.pid)?.vmRssKb ?? 0 };
  };

  const killed = new Set<number>();
  /** Kill every child as soon as it runs the responder, until `count` have died. */
  const churn = async (count: number): Promise<void> => {
    const deadline = Date.now() + TIMEOUT;
    while (killed.size < count) {
      for (const pid of directChildren(spawner)) {
        if (killed.size >= count) break;
        if (killed.has(pid) || exe(pid) !== responder) continue;
        killed.add(pid);
        signalIfAlive(pid, 'SIGKILL');
      }
      assert.ok(pool.exitStatus() === undefined, `the supervisor exited during the churn:\n${pool.stderr().slice(-2000)}`);
      assert.ok(Date.now() < deadline, `only ${killed.size} of ${count} deaths before the deadline`);
      await sleep(1);
    }
  };

  const start = await quiet();
  const started = Date.now();
  await churn(CHURN);
  const churnMs = Date.now() - started;
  const end = await quiet();
  // The log line of the last respawn may trail the process itself a little.
  const respawned = () => (pool.stderr().match(/child spawned: PID/g) ?? []).length;
  await waitFor(() => respawned() >= CHURN, { timeoutMs: 20_000, what: `${CHURN} respawns in the log` }).catch(() => undefined);
  const backoffs = (pool.stderr().match(/restarting in/g) ?? []).length;
  t.diagnostic(`${CHURN} deaths in ${churnMs} ms (${(churnMs / CHURN).toFixed(1)} ms each); ${respawned()} respawns logged, ${backoffs} with backoff`);
  t.diagnostic(
    `supervisor fds ${start.fds} -> ${end.fds}, spawner fds ${start.spawnerFds} -> ${end.spawnerFds}; VmRSS ${start.rssKb} -> ${end.rssKb} kB (not judged here: npm run soak)`,
  );

  assert.equal(respawned(), CHURN, 'every death was followed by a respawn');
  assert.equal(end.fds, start.fds, 'the supervisor leaks descriptors');
  assert.equal(end.spawnerFds, start.spawnerFds, 'the spawner leaks descriptors');
  assert.deepEqual(spawnersOf(pool.pid), [spawner], 'the same spawner throughout');
  for (const pid of killed) assert.equal(readStatus(pid), undefined, `killed child ${pid} is still in the process table (not reaped)`);
  const answer = await pool.request({}, { timeoutMs: 20_000 });
  assert.match(answer.body, /^pid=\d+$/m, 'the pool still serves');
  assert.equal(pool.exitStatus(), undefined);
});
