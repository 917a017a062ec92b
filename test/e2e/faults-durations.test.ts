/**
 * Faults, durations above setTimeout's limit (2^31-1 ms, about 24.8 days), which Node turns into 1 ms:
 * --max-age 600h must not recycle at once, --kill-timeout 1000h must not SIGKILL at once, and
 * --check-interval 600h must not poll /proc every millisecond.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RESPONDER, requireBuild, startPool } from '../helpers/pool.js';
import { removePath, sleep, tmpDir } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-faults-durations');
});
after(() => removePath(dir));

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('--max-age 600h, --kill-timeout 1000h, --check-interval 600h: no recycling, no SIGKILL, no polling storm', async (t) => {
  const sock = join(dir, 'long.sock');
  const pool = await startPool([
    '-s',
    sock,
    '-F',
    '2',
    '--max-age',
    '600h',
    '--kill-timeout',
    '1000h',
    '--max-rss',
    '1024',
    '--check-interval',
    '600h',
    '--',
    RESPONDER,
  ]);
  t.after(() => pool.stop().catch(() => undefined));
  const children = pool.childPids();
  const ticks = cpuTicks(pool.pid);
  await sleep(2000);
  const used = cpuTicks(pool.pid) - ticks;
  t.diagnostic(`supervisor CPU over 2 s: ${used} ticks`);
  assert.deepEqual(pool.childPids(), children, 'no child was recycled');
  assert.doesNotMatch(pool.stderr(), /recycling|new child PID/);
  // Polling /proc every millisecond costs most of a core; an idle supervisor uses next to nothing.
  assert.ok(used < 60, `the supervisor used ${used} ticks of CPU in 2 s while idle`);
  const exit = await pool.stop('SIGTERM', 15_000);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.doesNotMatch(pool.stderr(), /did not exit|sending SIGKILL/, 'no SIGKILL at once');
});
