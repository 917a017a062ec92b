import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyExit, exitStatus, restartDelay, takeRestart, fullBucket, RESTART_BURST, RESTART_INTERVAL_MS } from '../../../src/pool/restart-policy.js';

const policy = { restartDelayMs: 100, maxRestartDelayMs: 1000, stableAfterMs: 10_000 };

test('exit 0 after exec is a planned recycle, however soon (a libfcgi app that exits after each request)', () => {
  assert.equal(classifyExit({ code: 0, signal: null }, 50, policy), 'planned');
  assert.equal(classifyExit({ code: 0, signal: null }, 2, policy), 'planned');
  assert.equal(classifyExit({ code: 0, signal: null }, 0, policy), 'planned');
});

test('restart rate bound: a burst of immediate restarts, then one per interval; it refills while the slot is quiet', () => {
  let bucket = fullBucket(0);
  const waits: number[] = [];
  for (let i = 0; i < RESTART_BURST + 3; i++) {
    const taken = takeRestart(bucket, 0);
    waits.push(taken.waitMs);
    bucket = taken.bucket;
  }
  assert.deepEqual(waits.slice(0, RESTART_BURST), Array(RESTART_BURST).fill(0));
  assert.equal(waits[RESTART_BURST], RESTART_INTERVAL_MS);
  // Restarts taken at the moment they are due wait one interval each, not more.
  bucket = { tokens: 0, at: 0 };
  let now = 0;
  for (let i = 0; i < 5; i++) {
    const taken = takeRestart(bucket, now);
    assert.ok(taken.waitMs <= RESTART_INTERVAL_MS, `wait ${taken.waitMs}`);
    now += taken.waitMs;
    bucket = taken.bucket;
  }
  // A quiet slot has its whole burst back.
  assert.equal(takeRestart(bucket, now + RESTART_BURST * RESTART_INTERVAL_MS).waitMs, 0);
});

test('a crash after a stable run restarts at once; a fast one backs off', () => {
  assert.equal(classifyExit({ code: 1, signal: null }, 10_000, policy), 'stable-crash');
  assert.equal(classifyExit({ code: null, signal: 'SIGKILL' }, 20_000, policy), 'stable-crash');
  assert.equal(classifyExit({ code: 1, signal: null }, 9_999, policy), 'fast-crash');
});

test('the first fast failure restarts at once; then backoff doubles and caps; jitter stays within ±20 % and under the cap', () => {
  const mid = () => 0.5;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 40].map((n) => restartDelay(n, policy, mid)),
    [0, 100, 200, 400, 800, 1000, 1000, 1000],
  );
  assert.equal(
    restartDelay(2, policy, () => 0),
    80,
  );
  assert.equal(
    restartDelay(2, policy, () => 0.999),
    120,
  );
  assert.equal(
    restartDelay(10, policy, () => 0.999),
    1000,
  );
  assert.equal(restartDelay(0, policy), 0);
});

test('exit status as spawn-fcgi reports it', () => {
  assert.equal(exitStatus({ code: 3, signal: null }), 3);
  assert.equal(exitStatus({ code: null, signal: 'SIGSEGV' }), 1);
});
