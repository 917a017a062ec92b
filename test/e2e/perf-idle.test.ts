/**
 * Costs of an idle and of a churning supervisor that issue 10 removed, checked by what V8 and the kernel
 * report rather than by time: V8's own GC trace (`node --trace-gc`) shows whether the memory reducer ran and
 * how large the young generation is; /proc shows how often the idle main thread woke up. And the connection
 * timeouts that the observers' 1 s check enforced still hold now that the check runs only while connected.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CLI, RESPONDER, poolChildren, requireBuild, track, untrack } from '../helpers/pool.js';
import { removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-perf');
});
after(() => removePath(dir));

interface TracedPool {
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

/** `node <nodeArgs> dist/cli.cjs -n -s SOCK ...args`, serving; stdout (V8's GC trace) and stderr collected. */
async function startTraced(nodeArgs: string[], sock: string, args: string[]): Promise<TracedPool> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, '-n', '-s', sock, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child.pid!);
  let text = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    text += s;
  });
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    text += s;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    untrack(child.pid!);
  };
  await waitFor(() => / serving on /.test(text) || child.exitCode !== null, { timeoutMs: 20_000, what: 'the pool to serve' });
  assert.equal(child.exitCode, null, `the supervisor exited: ${text}`);
  return { child, output: () => text, stop };
}

/** Voluntary context switches of the main thread: each is one wake-up from epoll_wait (a timer, an event). */
function mainThreadWakeups(pid: number): number {
  const match = /^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'));
  assert.ok(match !== null, 'voluntary_ctxt_switches in /proc');
  return Number(match[1]);
}

test("an idle pool: no memory-reducer GC after start, and nothing waking the supervisor more often than the control socket's 1 s connection check", {
  timeout: 60_000,
}, async (t) => {
  const pool = await startTraced(['--trace-gc'], join(dir, 'idle.sock'), ['-F', '2', '--', RESPONDER]);
  t.after(() => pool.stop());
  // Settled: the start checks are over. Then 6 s without any client: the control socket listens meanwhile.
  await sleep(2000);
  const before = mainThreadWakeups(pool.child.pid!);
  await sleep(6000);
  const wakeups = mainThreadWakeups(pool.child.pid!) - before;
  // Node's connection check of the control socket (headers/request timeouts, every 1 s) wakes it about 6 times;
  // a busy machine adds none (these are blocking waits that ended, not preemptions). Starting that check only
  // while a connection is open was tried and left idle connections unclosed: see src/observe/control.ts history.
  t.diagnostic(`the idle supervisor's main thread woke ${wakeups} times in 6 s`);
  assert.ok(wakeups <= 9, `the idle supervisor's main thread woke ${wakeups} times in 6 s`);
  // V8 schedules the memory reducer ~8 s after start; by now it would have run.
  await sleep(4000);
  assert.doesNotMatch(pool.output(), /Memory reducer: started GC/, 'the memory reducer ran');
});

test('under churn the young generation keeps its initial size', { timeout: 120_000 }, async (t) => {
  const sock = join(dir, 'churn.sock');
  const pool = await startTraced(['--trace-gc', '--trace-gc-verbose'], sock, ['-F', '4', '--stable-after', '1ms', '--', RESPONDER]);
  t.after(() => pool.stop());
  const pid = pool.child.pid!;
  let killed = 0;
  for (let round = 0; round < 60; round++) {
    const children = await waitFor(
      () => {
        const c = poolChildren(pid);
        return c.length === 4 ? c : undefined;
      },
      { timeoutMs: 20_000, what: '4 children' },
    );
    for (const child of children) {
      try {
        process.kill(child, 'SIGKILL');
        killed++;
      } catch {
        /* already gone */
      }
    }
    await waitFor(() => poolChildren(pid).every((c) => !children.includes(c)), { timeoutMs: 20_000, what: 'the killed children to be replaced' });
  }
  const committed = [...pool.output().matchAll(/New space, +used: +\d+ KB, available: +\d+ KB, committed: +(\d+) KB/g)].map((m) => Number(m[1]));
  assert.ok(committed.length > 0, `V8 traced no scavenge in ${killed} child deaths:\n${pool.output().slice(-2000)}`);
  // Two semi-spaces of V8's initial 1 MB each at most; without --semi-space-growth-factor=1 it grows to 16 MB.
  assert.ok(Math.max(...committed) <= 2048, `new space committed up to ${Math.max(...committed)} KB after ${killed} deaths`);
});

test('the observers still cut a client that sends its headers one byte a second', { timeout: 60_000 }, async (t) => {
  const sock = join(dir, 'slow.sock');
  const pool = await startTraced([], sock, ['-F', '1', '--', RESPONDER]);
  t.after(() => pool.stop());
  await sleep(1500); // idle first, so that the check has to start again with this connection
  const client = connect({ path: `${sock}.control` });
  client.on('error', () => undefined);
  let closedAt: number | undefined;
  const started = Date.now();
  client.on('close', () => {
    closedAt = Date.now();
  });
  client.write('GET /status HTTP/1.1\r\n');
  // Each byte resets the socket's idle timeout: only the headers timeout (5 s) can end this.
  const drip = setInterval(() => client.write('X'), 500);
  try {
    await waitFor(() => closedAt !== undefined, { timeoutMs: 30_000, what: 'the supervisor to close the slow client' });
  } finally {
    clearInterval(drip);
    client.destroy();
  }
  assert.ok(closedAt! - started >= 4000, `closed after ${closedAt! - started} ms: before the 5 s headers timeout`);
});
