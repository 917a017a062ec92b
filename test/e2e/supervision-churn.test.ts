/**
 * Supervision, churn: thousands of child deaths in a row (kill -9 of every child as soon as it has
 * exec'd) leave the supervisor's memory and descriptors flat.
 *
 * SFTS_CHURN sets the number of deaths (default 2000; the issue asks for 10,000 once, by hand:
 * `SFTS_CHURN=10000 node --import tsx --test test/e2e/supervision-churn.test.ts`).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESPONDER, requireBuild, startPool, type RunningPool } from '../helpers/pool.js';
import { fdCount, readStatus, removePath, signalIfAlive, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const CHURN = Number(process.env.SFTS_CHURN ?? '2000');
/**
 * Deaths before the first measure: the supervisor's V8 heap and malloc arenas grow to their working size
 * over the first few hundred spawns (measured here: about 57 MB at start, a plateau of 100-112 MB from
 * about 500 deaths on, flat to 6000). A leak shows as growth after that.
 */
const WARMUP = 500;
const N = 4;

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-churn');
});
after(() => removePath(dir));

/** Direct children of `pid` (zombies included), from /proc/<pid>/task/* /children: cheaper than a /proc scan. */
function childList(pid: number): number[] {
  const result: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const word of text.trim().split(/\s+/)) if (word !== '') result.push(Number(word));
  }
  return result;
}

function exe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

interface Sample { rssKb: number; fds: number }

// A few ms a death on 2 cores; leave room for slower machines.
const TIMEOUT = 30_000 + CHURN * 20;

test(`churn: ${CHURN} child deaths in a row leave the supervisor's RSS and descriptor count flat`, { timeout: TIMEOUT }, async (t) => {
  assert.ok(Number.isInteger(CHURN) && CHURN > 0, `SFTS_CHURN must be a positive integer, got ${process.env.SFTS_CHURN}`);
  const responder = realpathSync(RESPONDER);
  const sock = join(dir, 'churn.sock');
  // --stable-after 1ms: each killed child is replaced at once (no backoff), as a long-running child would be.
  const pool: RunningPool = await startPool(['-s', sock, '-F', String(N), '--stable-after', '1ms', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));

  /**
   * N children that have exec'd the responder, then a quiet supervisor to measure: the lowest VmRSS of
   * ten samples over a second (RSS swings by a few MB with garbage collections), and the descriptors.
   */
  const quiet = async (): Promise<Sample> => {
    await waitFor(() => {
      const children = childList(pool.pid);
      return children.length === N && children.every((pid) => exe(pid) === responder && readStatus(pid)?.state !== 'Z');
    }, { timeoutMs: 10_000, intervalMs: 10, what: `${N} running children` });
    await sleep(300);
    let rssKb = Infinity;
    for (let i = 0; i < 10; i++) {
      rssKb = Math.min(rssKb, readStatus(pool.pid)!.vmRssKb!);
      await sleep(100);
    }
    return { rssKb, fds: fdCount(pool.pid) };
  };

  const killed = new Set<number>();
  /** Kill every child as soon as it runs the responder, until `count` more have died. */
  const churn = async (count: number): Promise<void> => {
    const target = killed.size + count;
    const deadline = Date.now() + TIMEOUT;
    while (killed.size < target) {
      for (const pid of childList(pool.pid)) {
        if (killed.size >= target) break;
        if (killed.has(pid) || exe(pid) !== responder) continue;
        killed.add(pid);
        signalIfAlive(pid, 'SIGKILL');
      }
      assert.ok(pool.exitStatus() === undefined, `the supervisor exited during the churn:\n${pool.stderr().slice(-2000)}`);
      assert.ok(Date.now() < deadline, `only ${killed.size} of ${target} deaths before the deadline`);
      await sleep(1);
    }
  };

  const start = await quiet();
  await churn(WARMUP);
  const before = await quiet();
  const started = Date.now();
  await churn(CHURN);
  const churnMs = Date.now() - started;
  const afterChurn = await quiet();

  const respawns = (pool.stderr().match(/child spawned: PID/g) ?? []).length;
  const backoffs = (pool.stderr().match(/restarting in/g) ?? []).length;
  const growthKb = afterChurn.rssKb - before.rssKb;
  t.diagnostic(`${CHURN} deaths (+${WARMUP} warm-up) in ${churnMs} ms (${(churnMs / CHURN).toFixed(1)} ms each); ${respawns} respawns logged, ${backoffs} with backoff`);
  t.diagnostic(`supervisor VmRSS: start ${start.rssKb} kB, after warm-up ${before.rssKb} kB, after churn ${afterChurn.rssKb} kB (growth ${growthKb} kB)`);
  t.diagnostic(`supervisor fds: start ${start.fds}, after warm-up ${before.fds}, after churn ${afterChurn.fds}`);

  assert.equal(respawns, WARMUP + CHURN, 'every death was followed by a respawn');
  assert.equal(afterChurn.fds, before.fds, 'the supervisor leaks descriptors');
  assert.ok(growthKb < 10 * 1024, `the supervisor's RSS grew by ${growthKb} kB over ${CHURN} deaths`);
  const answer = await pool.request({}, { timeoutMs: 3000 });
  assert.match(answer.body, /^pid=\d+$/m, 'the pool still serves');
});
