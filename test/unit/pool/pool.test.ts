/**
 * The Pool's slot lifecycle, driven by a fake launcher and a fake clock through every transition,
 * failures at each step included. No process is started; see test/helpers/fake-pool.ts.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, harnesses, settle, started } from '../../helpers/fake-pool.js';
import { START_BATCH } from '../../../src/pool/pool.js';
import { MAX_PROCS } from '../../../src/options/options.js';
import { transition } from '../../../src/pool/slot-machine.js';
import { RESTART_BURST, RESTART_INTERVAL_MS } from '../../../src/pool/restart-policy.js';

// Every event the pool fed its slots was one the state could take.
afterEach(() => {
  for (const h of harnesses.splice(0)) {
    assert.deepEqual(
      h.events.filter((e) => e.type === 'ignored transition'),
      [],
    );
  }
});

const states = (h: ReturnType<typeof harness>) => h.pool.snapshot().slots.map((s) => s.state);

test('transition table: the happy path, and events a state cannot take are refused', () => {
  assert.equal(transition('stopped', 'spawn'), 'starting');
  assert.equal(transition('starting', 'exec ok'), 'running');
  assert.equal(transition('running', 'ended, back off'), 'backing off');
  assert.equal(transition('backing off', 'spawn'), 'starting');
  assert.equal(transition('running', 'stop with child'), 'stopping');
  assert.equal(transition('stopping', 'gone'), 'stopped');
  assert.equal(transition('backing off', 'stop without child'), 'stopped');
  assert.equal(transition('backing off', 'exec ok'), undefined);
  assert.equal(transition('stopped', 'exec ok'), undefined);
  assert.equal(transition('stopping', 'spawn'), undefined);
  assert.equal(transition('backing off', 'stop with child'), undefined);
});

test('start: every child execs and survives the start check → running, pids reported', async () => {
  const h = harness();
  await started(h);
  assert.deepEqual(states(h), ['running', 'running']);
  assert.deepEqual(
    h.pool.livePids(),
    h.launcher.children.map((c) => c.pid),
  );
  assert.equal(h.pool.snapshot().slots[0]!.nextRestartAt, null);
  assert.equal(h.pool.snapshot().slots[0]!.lastError, null);
});

test('start: a spawn that throws at once (EMFILE) fails the start with 255 and one reason; the other child is stopped', async () => {
  const h = harness();
  h.launcher.failNext = [null, 'EMFILE (too many open files in the supervisor)'];
  const result = h.pool.start();
  await settle();
  h.launcher.children[0]!.execOk();
  await h.clock.advance(1000);
  const r = await result;
  assert.deepEqual(r, { ok: false, status: 255, reason: 'could not start: spawn failed: EMFILE (too many open files in the supervisor)' });
  assert.deepEqual(h.launcher.children[0]!.signals, [15], 'the good child got the kill signal');
  assert.deepEqual(h.launcher.live(), []);
  assert.deepEqual(states(h), ['stopped', 'stopped']);
  assert.equal(h.clock.pending(), 0, 'no timer left behind');
});

test('start: the helper reports an exec failure on the status pipe → 255 with its reason', async () => {
  const h = harness();
  const result = h.pool.start();
  await settle();
  h.launcher.children[0]!.execOk();
  h.launcher.children[1]!.execFails("chdir('/nope') failed: No such file or directory");
  await h.clock.advance(1000);
  const r = await result;
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.status, 255);
  assert.match(!r.ok ? r.reason : '', /^could not start: chdir/);
  assert.deepEqual(h.launcher.live(), []);
});

test('start: exit 0 during the start check is a planned recycle: restarted, the start succeeds', async () => {
  const h = harness();
  const result = h.pool.start();
  await settle();
  for (const c of h.launcher.children) c.execOk();
  await settle();
  h.launcher.children[1]!.exit(0);
  await h.clock.advance(1000);
  const r = await result;
  assert.equal(r.ok, true);
  assert.equal(h.launcher.children.length, 3, 'the recycled child was replaced');
  h.launcher.last.execOk();
  await settle();
  assert.deepEqual(states(h), ['running', 'running']);
  assert.equal(h.pool.snapshot().slots[1]!.failures, 0);
  assert.ok(
    h.lines.some((l) => /\(planned\), restarting$/.test(l)),
    h.lines.join('\n'),
  );
});

test("start: a non-zero exit (or a signal) during the start check fails the start with the child's status", async () => {
  for (const [code, signal, status, reason] of [
    [3, null, 3, 'child exited with: 3'],
    [null, 'SIGSEGV', 1, 'child signaled: SIGSEGV'],
  ] as const) {
    const h = harness();
    const result = h.pool.start();
    await settle();
    for (const c of h.launcher.children) c.execOk();
    await settle();
    h.launcher.children[0]!.exit(code, signal);
    await h.clock.advance(1000);
    assert.deepEqual(await result, { ok: false, status, reason });
    assert.equal(h.launcher.children.length, 2, 'nothing restarted');
    assert.deepEqual(h.launcher.live(), []);
  }
});

test('run time: a spawn that fails with an error event and no exit backs off, shows it, and retries', async () => {
  const h = harness();
  await started(h);
  h.launcher.failNext = ['EAGAIN (the process limit is reached)', 'EAGAIN (the process limit is reached)'];
  h.launcher.children[0]!.exit(null, 'SIGKILL');
  await settle();
  // The first fast failure restarts at once (a timer of 0), and that spawn fails: failure 2 waits 100 ms.
  await h.clock.advance(0);
  const slot = h.pool.snapshot().slots[0]!;
  assert.equal(slot.state, 'backing off');
  assert.equal(slot.pid, null);
  assert.equal(slot.failures, 2);
  assert.equal(slot.nextRestartAt, h.clock.now() + 100);
  assert.match(slot.lastError ?? '', /^could not start: spawn failed: EAGAIN/);
  assert.ok(
    h.lines.some((l) => /\[0:-\] child failed after 0 ms \(could not start: spawn failed: EAGAIN.*failure 2, restarting in 100 ms/.test(l)),
    h.lines.join('\n'),
  );
  await h.clock.advance(100);
  assert.equal(h.pool.snapshot().slots[0]!.failures, 3);
  await h.clock.advance(200);
  h.launcher.last.execOk();
  await settle();
  const after = h.pool.snapshot().slots[0]!;
  assert.equal(after.state, 'running');
  assert.equal(after.pid, h.launcher.last.pid);
  assert.equal(after.nextRestartAt, null);
  assert.deepEqual(h.events.filter((e) => e.type === 'spawn failed').length, 2);
});

test('run time: --max-failures with spawn failures gives up with 255; the slot is stopped, no timer left', async () => {
  const h = harness({ policy: { restartDelayMs: 100, maxRestartDelayMs: 1000, stableAfterMs: 10_000, maxFailures: 3 } });
  await started(h);
  h.launcher.failNext = ['ENOENT', 'ENOENT', 'ENOENT'];
  h.launcher.children[0]!.exit(1);
  await h.clock.advance(5000);
  assert.deepEqual(h.giveUps, [255]);
  assert.equal(states(h)[0], 'stopped');
  assert.ok(h.lines.some((l) => /giving up \(--max-failures 3\)/.test(l)));
  assert.equal(h.events.filter((e) => e.type === 'gave up').length, 1);
  await h.pool.stop();
  assert.equal(h.clock.pending(), 0);
});

test('quick exit 0 (a child that exits after each request): planned, never a failure; a burst, then the rate bound', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const starts: number[] = [];
  for (let i = 0; i < RESTART_BURST + 5; i++) {
    h.launcher.last.execOk();
    await settle();
    h.launcher.last.exit(0);
    await settle();
    const before = h.launcher.children.length;
    const t0 = h.clock.now();
    await h.clock.advance(0);
    while (h.launcher.children.length === before) await h.clock.advance(1);
    starts.push(h.clock.now() - t0);
  }
  assert.deepEqual(starts.slice(0, RESTART_BURST), Array(RESTART_BURST).fill(0));
  for (const wait of starts.slice(RESTART_BURST)) assert.ok(wait >= RESTART_INTERVAL_MS - 1 && wait <= RESTART_INTERVAL_MS + 1, `wait ${wait}`);
  assert.equal(h.pool.snapshot().slots[0]!.failures, 0);
  assert.ok(!h.lines.some((l) => /restarting in|failure \d/.test(l)), h.lines.join('\n'));
  assert.ok(h.lines.some((l) => /\(planned\), next start in \d+ ms \(restart rate bound\)/.test(l)));
});

test('stop during backoff: no child to wait for, no kill timeout, the timer is cancelled', async () => {
  const h = harness({ size: 1 });
  await started(h);
  h.launcher.failNext = ['EAGAIN', 'EAGAIN'];
  h.launcher.children[0]!.exit(1);
  await h.clock.advance(0);
  assert.equal(states(h)[0], 'backing off');
  let done = false;
  void h.pool.stop().then(() => {
    done = true;
  });
  await settle();
  assert.equal(done, true, 'stop() must not wait for a child that does not exist');
  assert.deepEqual(states(h), ['stopped']);
  assert.equal(h.clock.pending(), 0);
  const spawned = h.launcher.children.length;
  await h.clock.advance(10_000);
  assert.equal(h.launcher.children.length, spawned, 'nothing spawned after stop');
});

test('stop: a child that exits on the kill signal ends the stop; one that does not gets SIGKILL after the kill timeout', async () => {
  const h = harness({ size: 2 });
  await started(h);
  h.obedient = false;
  let done = false;
  void h.pool.stop().then(() => {
    done = true;
  });
  await settle();
  assert.deepEqual(states(h), ['stopping', 'stopping']);
  h.launcher.children[0]!.exit(0);
  await h.clock.advance(100);
  assert.equal(done, false);
  assert.equal(states(h)[0], 'stopped');
  await h.clock.advance(4900);
  assert.deepEqual(h.launcher.children[1]!.signals, [15, 'SIGKILL']);
  assert.equal(done, true);
  assert.deepEqual(states(h), ['stopped', 'stopped']);
  assert.ok(h.events.some((e) => e.type === 'kill escalated'));
});

test('exit during stop is not restarted, even a crash', async () => {
  const h = harness({ size: 1 });
  await started(h);
  h.obedient = false;
  const stopping = h.pool.stop();
  await settle();
  h.launcher.children[0]!.exit(null, 'SIGSEGV');
  await h.clock.advance(1000);
  await stopping;
  assert.equal(h.launcher.children.length, 1);
  assert.equal(h.clock.pending(), 0);
});

test('replace: the new child takes over and the old one is retired; if the new one fails, the old one keeps serving', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const old = h.launcher.children[0]!;
  const rolling = h.pool.rollingRestart();
  await settle();
  h.launcher.last.execFails("chroot('/x') failed");
  await settle();
  assert.equal(await rolling, false);
  assert.deepEqual(old.signals, [], 'the old child was not touched');
  assert.equal(h.pool.snapshot().slots[0]!.pid, old.pid);
  assert.equal(states(h)[0], 'running');
  assert.ok(h.lines.some((l) => /failed to start \(chroot.*the old one keeps serving/.test(l)));

  // A spawn failure of the replacement is the same.
  h.launcher.failNext = ['EAGAIN'];
  assert.equal(await h.pool.rollingRestart(), false);
  assert.equal(h.pool.snapshot().slots[0]!.pid, old.pid);

  const next = h.pool.rollingRestart();
  await settle();
  h.launcher.last.execOk();
  await h.clock.advance(1000);
  assert.equal(await next, true);
  assert.deepEqual(old.signals, [15]);
  assert.equal(h.pool.snapshot().slots[0]!.pid, h.launcher.last.pid);
  assert.equal(h.pool.snapshot().slots[0]!.lastError, null);
});

test('replace: a new child that exits non-zero during its check fails the replacement; one that exits 0 takes over and is recycled', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const old = h.launcher.children[0]!;
  let rolling = h.pool.rollingRestart();
  await settle();
  h.launcher.last.execOk();
  await settle();
  h.launcher.last.exit(2);
  await settle();
  assert.equal(await rolling, false);
  assert.equal(h.pool.snapshot().slots[0]!.pid, old.pid);

  rolling = h.pool.rollingRestart();
  await settle();
  const fresh = h.launcher.last;
  fresh.execOk();
  await settle();
  fresh.exit(0);
  await settle();
  assert.equal(await rolling, true);
  assert.deepEqual(old.signals, [15]);
  await h.clock.advance(0);
  assert.equal(h.launcher.children.length, 4, 'the recycled replacement was restarted');
  h.launcher.last.execOk();
  await settle();
  assert.equal(h.pool.snapshot().slots[0]!.pid, h.launcher.last.pid);
  assert.equal(states(h)[0], 'running');
});

test('the old child dies while its replacement is checked: the replacement takes the slot, no double spawn', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const rolling = h.pool.rollingRestart();
  await settle();
  const fresh = h.launcher.last;
  fresh.execOk();
  h.launcher.children[0]!.exit(null, 'SIGKILL');
  await settle();
  await h.clock.advance(1000);
  assert.equal(await rolling, true);
  assert.equal(h.pool.snapshot().slots[0]!.pid, fresh.pid);
  await h.clock.advance(5000);
  assert.equal(h.launcher.children.length, 2, 'no extra child');
  assert.equal(states(h)[0], 'running');
});

test('the old child dies while its replacement is checked, and the replacement fails: the slot restarts', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const rolling = h.pool.rollingRestart();
  await settle();
  h.launcher.children[0]!.exit(null, 'SIGKILL');
  await h.clock.advance(0);
  assert.equal(h.launcher.children.length, 2, 'held back while the replacement is checked');
  h.launcher.last.execFails('exec failed');
  assert.equal(await rolling, false);
  await h.clock.advance(0);
  assert.equal(h.launcher.children.length, 3);
  h.launcher.last.execOk();
  await settle();
  assert.equal(states(h)[0], 'running');
  assert.equal(h.pool.snapshot().slots[0]!.pid, h.launcher.last.pid);
});

test('TTIN and TTOU during backoff: the new slot starts; the backing-off slot is removed and never restarts', async () => {
  const h = harness({ size: 2 });
  await started(h);
  h.launcher.failNext = ['EAGAIN'];
  h.launcher.children[1]!.exit(1);
  await h.clock.advance(0);
  assert.equal(states(h)[1], 'backing off');
  h.pool.grow();
  h.launcher.last.execOk();
  await settle();
  assert.deepEqual(states(h), ['running', 'backing off', 'running']);
  h.pool.shrink();
  h.pool.shrink();
  assert.equal(h.pool.snapshot().size, 1);
  const count = h.launcher.children.length;
  await h.clock.advance(10_000);
  assert.equal(h.launcher.children.length, count, 'the removed slot did not restart');
  assert.equal(h.clock.pending(), 0);
});

test('TTIN never beyond the bound (MAX_PROCS by default); -F above it starts only that many', async () => {
  assert.equal(MAX_PROCS, 4096);
  const h = harness({ size: 4, maxProcs: 3 });
  await started(h);
  assert.equal(h.pool.snapshot().size, 3);
  assert.ok(
    h.lines.some((l) => /pool stays at 3: 3 children is the most it may have/.test(l)),
    h.lines.join('\n'),
  );
  h.pool.grow();
  assert.equal(h.pool.snapshot().size, 3);
  assert.ok(h.events.some((e) => e.type === 'scale refused'));
  await h.pool.stop();
});

test('a large start goes in batches, and a stop during it launches no more', async () => {
  let yields = 0;
  let h!: ReturnType<typeof harness>;
  h = harness({
    size: 200,
    yieldToEvents: async () => {
      yields++;
      if (yields === 2) void h.pool.stop();
      await new Promise((resolve) => setImmediate(resolve));
    },
  });
  const r = await h.pool.start();
  assert.deepEqual(r, { ok: false, status: 0, reason: 'stopped during start-up' });
  assert.equal(h.launcher.children.length, 2 * START_BATCH);
  assert.deepEqual(h.launcher.live(), []);
  assert.ok(h.pool.snapshot().slots.every((s) => s.state === 'stopped'));
});

test('long durations: --max-age 600h does not recycle at once, it does after 600h (+ jitter); --kill-timeout 1000h waits', async () => {
  const hour = 3_600_000;
  const h = harness({ size: 1, maxAgeMs: 600 * hour, killTimeoutMs: 1000 * hour });
  await started(h);
  await h.clock.advance(hour);
  assert.equal(h.launcher.children.length, 1);
  await h.clock.advance(600 * 1.05 * hour); // random 0.5 → 5 % jitter
  assert.equal(h.launcher.children.length, 2, 'recycled after its age');
  h.launcher.last.execOk();
  await h.clock.advance(1000);
  assert.equal(h.pool.snapshot().slots[0]!.pid, h.launcher.last.pid);
  h.obedient = false;
  void h.pool.stop();
  await h.clock.advance(999 * hour);
  assert.ok(!h.launcher.last.signals.includes('SIGKILL'));
  await h.clock.advance(hour);
  assert.ok(h.launcher.last.signals.includes('SIGKILL'));
});

// ---------------------------------------------------------------- the launcher's own restart (the spawner's)

/** A harness whose launcher restarts an armed child by itself, as the resident spawner does. */
async function selfRestarting(overrides: Parameters<typeof harness>[0] = {}) {
  const h = harness(overrides);
  h.launcher.selfRestart = true;
  await started(h);
  return h;
}

test('self-restart: a serving child is armed after its start check; its death is answered by the replacement, no launch', async () => {
  const h = await selfRestarting();
  const first = h.launcher.children[0]!;
  assert.deepEqual(first.history, ['arm'], 'armed once it passed the start check');
  const launches = h.launcher.launches;
  first.exit(null, 'SIGKILL');
  await settle();
  assert.equal(h.launcher.launches, launches, 'the pool launched nothing: it took the replacement');
  const replacement = h.launcher.last;
  assert.notEqual(replacement, first);
  assert.equal(h.pool.snapshot().slots[0]!.pid, replacement.pid);
  assert.ok(h.events.some((e) => e.type === 'spawned' && e.pid === replacement.pid && e.cause === 'restart'));
  assert.equal(h.pool.snapshot().slots[0]!.restarts, 1);
  replacement.execOk();
  await settle();
  assert.deepEqual(states(h), ['running', 'running']);
  // That was its first fast failure: a second one must back off, so the replacement is not armed.
  assert.deepEqual(replacement.history, []);
  replacement.exit(null, 'SIGKILL');
  await settle();
  assert.equal(states(h)[0], 'backing off');
  assert.equal(h.launcher.launches, launches, 'nothing started before the backoff');
  await h.clock.advance(1000);
  assert.equal(h.launcher.launches, launches + 1, 'the pool restarted it after the backoff');
});

test('self-restart: a stable crash and a planned exit keep the replacement armed', async () => {
  const h = await selfRestarting();
  await h.clock.advance(10_000); // stable
  const first = h.launcher.children[0]!;
  first.exit(null, 'SIGSEGV');
  await settle();
  const second = h.launcher.last;
  second.execOk();
  await settle();
  assert.deepEqual(second.history, ['arm'], 'a stable crash resets the failures: armed again');
  second.exit(0);
  await settle();
  const third = h.launcher.last;
  assert.notEqual(third, second);
  assert.equal(h.pool.snapshot().slots[0]!.pid, third.pid, 'a planned exit: replaced at once');
  assert.deepEqual(third.history, ['arm']);
});

test('self-restart: the pool disarms a child before it signals it (stop, rolling restart), and nothing is restarted', async () => {
  const h = await selfRestarting();
  const [a, b] = h.launcher.children;
  const p = h.pool.rollingRestart();
  await settle();
  for (const c of h.launcher.children) c.execOk();
  await h.clock.advance(1000);
  await settle();
  for (const c of h.launcher.children) c.execOk();
  await h.clock.advance(1000);
  assert.equal(await p, true);
  assert.deepEqual(a!.history, ['arm', 'disarm', 'signal 15'], 'disarmed when its replacement started, before the kill signal');
  assert.deepEqual(b!.history, ['arm', 'disarm', 'signal 15']);
  assert.equal(a!.replacement, undefined);
  const serving = h.pool.snapshot().slots.map((s) => s.pid);
  for (const pid of serving) assert.deepEqual(h.launcher.children.find((c) => c.pid === pid)!.history, ['arm'], 'the new children are armed');
  await h.pool.stop();
  for (const pid of serving) assert.deepEqual(h.launcher.children.find((c) => c.pid === pid)!.history, ['arm', 'disarm', 'signal 15']);
  assert.deepEqual(h.launcher.live(), []);
});

test('self-restart: a replacement the slot does not want (the child died as the stop began) is retired', async () => {
  const h = await selfRestarting();
  const first = h.launcher.children[0]!;
  h.obedient = false;
  // The race: the child dies by itself before the stop's disarm reaches the launcher.
  first.exit(null, 'SIGSEGV');
  const stopped = h.pool.stop();
  await settle();
  const replacement = h.launcher.last;
  assert.notEqual(replacement, first);
  assert.deepEqual(replacement.signals, [15], 'the replacement got the kill signal');
  assert.notEqual(h.pool.snapshot().slots[0]!.pid, replacement.pid);
  replacement.exit(null, 'SIGTERM');
  h.launcher.children[1]!.exit(null, 'SIGTERM');
  await h.clock.advance(100);
  await stopped;
  assert.deepEqual(h.launcher.live(), []);
  assert.deepEqual(states(h), ['stopped', 'stopped']);
});
