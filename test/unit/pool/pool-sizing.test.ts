/**
 * A pool that sizes itself: the pure sizing rules (pool-sizing.ts), then the Pool driving them with a fake
 * launcher, a fake clock and fake CPU times (test/helpers/fake-pool.ts). No process is started.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, harnesses, settle, started, type Harness } from '../../helpers/fake-pool.js';
import { GROW_SPACING_MS, IdleTracker, pickIdle, shouldGrow, type Load } from '../../../src/pool/pool-sizing.js';
import { transition } from '../../../src/pool/slot-machine.js';

afterEach(() => {
  for (const h of harnesses.splice(0)) {
    assert.deepEqual(
      h.events.filter((e) => e.type === 'ignored transition'),
      [],
    );
  }
});

const bounds = { min: 1, max: 4, idleTimeoutMs: 1000 };
const load = (over: Partial<Load> = {}): Load => ({ active: 1, starting: 0, running: 1, backingOff: 0, parking: 0, ...over });
const NOW = 1_000_000;

test('shouldGrow: a connection that still waits grows by one, up to max', () => {
  assert.equal(shouldGrow('waiting', load(), bounds, NOW, -Infinity), true);
  assert.equal(shouldGrow('waiting', load({ active: 4, running: 4 }), bounds, NOW, -Infinity), false, 'at max');
});

test('shouldGrow: a connection that just arrived grows only when no child is running to take it', () => {
  assert.equal(shouldGrow('arrived', load(), bounds, NOW, -Infinity), false, 'an idle child takes it');
  assert.equal(shouldGrow('arrived', load({ active: 0, running: 0 }), { ...bounds, min: 0 }, NOW, -Infinity), true, 'ondemand: the first request');
});

test('shouldGrow: at most one start in flight, spaced by GROW_SPACING_MS; never while a slot backs off', () => {
  assert.equal(shouldGrow('waiting', load({ active: 2, starting: 1 }), bounds, NOW, -Infinity), false, 'a child still starting');
  assert.equal(shouldGrow('waiting', load({ active: 2, running: 2 }), bounds, NOW, NOW - GROW_SPACING_MS + 1), false, "the last one just exec'd");
  assert.equal(shouldGrow('waiting', load({ active: 2, running: 2 }), bounds, NOW, NOW - GROW_SPACING_MS), true);
  assert.equal(shouldGrow('waiting', load({ active: 2, running: 1, backingOff: 1 }), bounds, NOW, -Infinity), false);
});

test('IdleTracker: idle time counts from the last change of CPU time; gone children are forgotten', () => {
  const idle = new IdleTracker();
  idle.observe(
    [
      { pid: 10, ticks: 5 },
      { pid: 11, ticks: 7 },
    ],
    0,
  );
  idle.observe(
    [
      { pid: 10, ticks: 5 },
      { pid: 11, ticks: 9 },
    ],
    600,
  );
  assert.equal(idle.idleFor(10, 1000), 1000);
  assert.equal(idle.idleFor(11, 1000), 400);
  idle.observe([{ pid: 11, ticks: 9 }], 1200);
  assert.equal(idle.idleFor(10, 1200), 0, 'forgotten');
  assert.equal(idle.idleFor(99, 1200), 0, 'never seen');
});

test('pickIdle: the highest idle slot, never below min, one at a time, not while connections waited recently', () => {
  const idle = new IdleTracker();
  const children = [
    { slot: 0, pid: 10 },
    { slot: 1, pid: 11 },
    { slot: 2, pid: 12 },
  ];
  idle.observe(
    children.map((c) => ({ pid: c.pid, ticks: 1 })),
    0,
  );
  const three = load({ active: 3, running: 3 });
  assert.equal(pickIdle(children, idle, three, bounds, 999, -Infinity), undefined, 'not idle long enough');
  assert.equal(pickIdle(children, idle, three, bounds, 1000, -Infinity), 2);
  assert.equal(pickIdle(children, idle, { ...three, parking: 1 }, bounds, 1000, -Infinity), undefined, 'one stop at a time');
  assert.equal(pickIdle(children, idle, three, bounds, 1000, 500), undefined, 'a connection waited 500 ms ago');
  assert.equal(pickIdle(children, idle, load({ active: 1 }), bounds, 5000, -Infinity), undefined, 'at min');
  idle.observe(
    [
      { pid: 10, ticks: 1 },
      { pid: 11, ticks: 1 },
      { pid: 12, ticks: 2 },
    ],
    1000,
  );
  assert.equal(pickIdle(children, idle, three, bounds, 1500, -Infinity), 1, 'slot 2 worked at 1000');
});

test('transition table: parked slots', () => {
  assert.equal(transition('stopped', 'park'), 'parked');
  assert.equal(transition('parked', 'spawn'), 'starting');
  assert.equal(transition('stopping', 'park'), 'parked');
  assert.equal(transition('parked', 'stop without child'), 'stopped');
  assert.equal(transition('running', 'park'), undefined, 'a child is stopped first');
  assert.equal(transition('parked', 'exec ok'), undefined);
});

/** A dynamic harness whose children's CPU time the test sets. */
function dynamic(min: number, max: number): Harness & { cpu: Map<number, number> } {
  const cpu = new Map<number, number>();
  const h = harness({ size: max, minProcs: min, idleTimeoutMs: 1000, cpuTicks: (pid) => cpu.get(pid) ?? 0 });
  return Object.assign(h, { cpu });
}

const states = (h: Harness) => h.pool.snapshot().slots.map((s) => s.state);

async function execAll(h: Harness): Promise<void> {
  await settle();
  for (const c of h.launcher.children) if (c.alive) c.execOk();
  await settle();
}

test('pool, min 1 max 3: starts one child, the other slots parked; snapshot shows the size and bounds', async () => {
  const h = dynamic(1, 3);
  await started(h);
  assert.deepEqual(states(h), ['running', 'parked', 'parked']);
  assert.equal(h.launcher.children.length, 1);
  const snap = h.pool.snapshot();
  assert.deepEqual([snap.size, snap.min, snap.max], [1, 1, 3]);
  assert.equal(h.pool.dynamic, true);
  assert.equal(h.clock.pending(), 0, 'at min: no idle timer');
});

test('pool, min 0: nothing starts; the first arriving connection starts a child at once', async () => {
  const h = dynamic(0, 2);
  const r = await h.pool.start();
  assert.deepEqual(r, { ok: true, pids: [] });
  assert.deepEqual(states(h), ['parked', 'parked']);
  h.pool.onQueue('arrived');
  assert.equal(h.launcher.children.length, 1);
  assert.deepEqual(states(h), ['starting', 'parked']);
  h.pool.onQueue('waiting');
  assert.equal(h.launcher.children.length, 1, 'one start in flight');
  await execAll(h);
  assert.deepEqual(states(h), ['running', 'parked']);
  assert.match(h.lines.join('\n'), /pool grows to 1 \[0-2\] \(connections waiting\): PID: \d+/);
});

test('pool, min 1 max 3: waiting connections grow it one at a time to max, never beyond', async () => {
  const h = dynamic(1, 3);
  await started(h);
  h.pool.onQueue('arrived');
  assert.equal(h.launcher.children.length, 1, 'an arrival with a child running: it takes it');
  for (let i = 0; i < 6; i++) {
    h.pool.onQueue('waiting');
    await execAll(h);
    await h.clock.advance(GROW_SPACING_MS);
  }
  assert.deepEqual(states(h), ['running', 'running', 'running']);
  assert.equal(h.launcher.children.length, 3);
  assert.equal(h.pool.snapshot().size, 3);
});

test('pool: children idle for the timeout are stopped one at a time down to min, highest slot first; then no timer', async () => {
  const h = dynamic(1, 3);
  await started(h);
  for (let i = 0; i < 2; i++) {
    h.pool.onQueue('waiting');
    await execAll(h);
    await h.clock.advance(GROW_SPACING_MS);
  }
  assert.deepEqual(states(h), ['running', 'running', 'running']);
  const [first, second, third] = h.launcher.children;
  // The second child keeps working; the others idle.
  h.cpu.set(second!.pid, 0);
  for (let t = 1; t <= 3; t++) {
    await h.clock.advance(500);
    h.cpu.set(second!.pid, t);
  }
  assert.equal(third!.alive, false, 'the idle highest slot went first');
  assert.deepEqual(third!.signals, [15]);
  assert.equal(first!.alive, true, 'one stop at a time');
  assert.deepEqual(states(h), ['running', 'running', 'parked']);
  for (let t = 4; t <= 8; t++) {
    await h.clock.advance(500);
    h.cpu.set(second!.pid, t);
  }
  assert.equal(first!.alive, false, 'the other idle one went next');
  assert.equal(second!.alive, true, 'a working child stays');
  assert.deepEqual(states(h), ['parked', 'running', 'parked']);
  // Now the second idles too: it stays, the pool is at min.
  await h.clock.advance(3000);
  assert.equal(second!.alive, true, 'min 1 kept');
  assert.equal(h.clock.pending(), 0, 'back at min: nothing runs');
  assert.match(h.lines.join('\n'), /pool shrinks to 1 \[1-3\] \(idle\)/);
  // The pool grows into the lowest parked slot again.
  h.pool.onQueue('waiting');
  assert.deepEqual(states(h), ['starting', 'running', 'parked']);
});

test('pool: nothing is stopped while connections keep waiting', async () => {
  const h = dynamic(1, 2);
  await started(h);
  h.pool.onQueue('waiting');
  await execAll(h);
  for (let t = 0; t < 10; t++) {
    h.pool.onQueue('waiting'); // at max: no growth, but the queue is not empty
    await h.clock.advance(500);
  }
  assert.deepEqual(states(h), ['running', 'running']);
  await h.clock.advance(2000);
  assert.deepEqual(states(h), ['running', 'parked']);
});

test('pool: stop with parked and parking slots ends every slot stopped', async () => {
  const h = dynamic(0, 3);
  await h.pool.start();
  h.pool.onQueue('arrived');
  await execAll(h);
  h.obedient = false; // the idle child takes its time to go
  await h.clock.advance(2000);
  assert.deepEqual(states(h), ['stopping', 'parked', 'parked']);
  const stop = h.pool.stop();
  h.launcher.children[0]!.exit(null, 'SIGTERM');
  await settle();
  await stop;
  assert.deepEqual(states(h), ['stopped', 'stopped', 'stopped']);
  h.pool.onQueue('arrived');
  assert.equal(h.launcher.children.length, 1, 'no growth once stopping');
});

test('TTIN/TTOU in a pool that sizes itself move the upper bound; in a static one, both', async () => {
  const h = dynamic(1, 2);
  await started(h);
  h.pool.grow();
  assert.deepEqual(states(h), ['running', 'parked', 'parked']);
  assert.deepEqual([h.pool.snapshot().min, h.pool.snapshot().max], [1, 3]);
  h.pool.shrink();
  h.pool.shrink();
  assert.deepEqual(states(h), ['running']);
  assert.deepEqual([h.pool.snapshot().min, h.pool.snapshot().max], [1, 1]);
  h.pool.grow(); // min = max now: static, so a child starts
  assert.deepEqual(states(h), ['running', 'starting']);
  assert.deepEqual([h.pool.snapshot().min, h.pool.snapshot().max], [2, 2]);

  const s = harness({ size: 2 });
  await started(s);
  assert.equal(s.pool.dynamic, false);
  s.pool.grow();
  assert.deepEqual([s.pool.snapshot().size, s.pool.snapshot().min, s.pool.snapshot().max], [3, 3, 3]);
  s.pool.onQueue('waiting');
  assert.equal(s.launcher.children.length, 3, 'a static pool ignores the queue');
});

test('readiness of a pool that sizes itself: --min-procs running is ready (0 included); parked slots are no problem', async () => {
  const { readiness, shapeOfSnapshot } = await import('../../../src/observe/health.js');
  const h = dynamic(0, 2);
  await h.pool.start();
  assert.deepEqual(readiness(shapeOfSnapshot(h.pool.snapshot())), { ok: true, reason: '0 of 0 children running' });
  const one = dynamic(1, 3);
  await started(one);
  assert.equal(readiness(shapeOfSnapshot(one.pool.snapshot())).ok, true);
  // Its one child died: fewer than --min-procs running is not ready.
  one.launcher.children[0]!.exit(1);
  await settle();
  const verdict = readiness(shapeOfSnapshot(one.pool.snapshot()));
  assert.equal(verdict.ok, false);
  assert.match(verdict.reason, /^0 of 1 child running, slot 0 /);
});
