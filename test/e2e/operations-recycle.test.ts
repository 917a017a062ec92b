import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, RESPONDER, requireBuild, runCli, startPool } from '../helpers/pool.js';
import { isGone, readStatus, removePath, tmpDir, waitFor } from '../helpers/proc.js';

const GROW = join(ROOT, 'test', 'fixtures', 'ops', 'grow.pl');
let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-recycle');
});
after(() => removePath(dir));

interface Status {
  slots: { pid: number; restarts: number; lastExit: { reason: string } | null }[];
}
const status = async (socket: string) => JSON.parse((await runCli(['status', '-s', socket, '--json'])).stdout) as Status;

test('--max-rss recycles a child that grew past the limit: the replacement starts first, the old one gets the kill signal', async () => {
  const socket = join(dir, 'rss.sock');
  const pool = await startPool(['-s', socket, '-F', '2', '--max-rss', '70', '--check-interval', '200ms', '--', GROW], { probeParams: { QUERY_STRING: '' } });
  const before = pool.childPids();
  // Ask until one child holds 90 MB (the other then holds at most 60 MB, under the limit) (requests go to whichever child accepts).
  let grown: number | undefined;
  for (let i = 0; i < 20 && grown === undefined; i++) {
    const answer = await pool.request({ QUERY_STRING: 'grow=30' });
    const [, pid, held] = /pid=(\d+) held=(\d+)/.exec(answer.body)!;
    if (Number(held) >= 3) grown = Number(pid);
  }
  assert.ok(grown !== undefined, 'one child grew to 90 MB');
  assert.ok((readStatus(grown)?.vmRssKb ?? 0) > 70 * 1024);
  await waitFor(() => isGone(grown!), { timeoutMs: 20_000, what: 'the grown child to be recycled' });
  await waitFor(() => pool.childPids().length === 2, { timeoutMs: 20_000 });
  const survivors = pool.childPids();
  assert.equal(survivors.filter((pid) => before.includes(pid)).length, 1, 'only the big child was replaced');
  const slots = (await status(socket)).slots;
  const recycled = slots.find((s) => s.restarts === 1)!;
  assert.match(recycled.lastExit!.reason, /^recycled: rss \d+\.\d MB > 70 MB \(exit code 0\)$/);
  assert.match(pool.stderr(), /recycling child: rss/);
  await pool.stop();
});

test('--max-age recycles every child after about that long, not all at the same moment', async () => {
  const socket = join(dir, 'age.sock');
  const pool = await startPool(['-s', socket, '-F', '2', '--max-age', '1s', '--', RESPONDER]);
  const first = pool.childPids();
  await waitFor(() => pool.childPids().length === 2 && pool.childPids().every((pid) => !first.includes(pid)), {
    timeoutMs: 20_000,
    what: 'both children to be recycled',
  });
  const slots = (await status(socket)).slots;
  for (const slot of slots) assert.match(slot.lastExit?.reason ?? '', /^recycled: max age 1000 ms/);
  // Requests keep being answered across the recycling.
  for (let i = 0; i < 5; i++) assert.equal((await pool.request()).appStatus, 0);
  await pool.stop();
});
