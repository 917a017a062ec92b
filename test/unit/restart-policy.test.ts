import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyExit, exitStatus, restartDelay, QUICK_EXIT_MS } from '../../src/restart-policy.js';

const policy = { restartDelayMs: 100, maxRestartDelayMs: 1000, stableAfterMs: 10_000 };

test('exit 0 is a planned recycle, unless the child never really ran', () => {
  assert.equal(classifyExit({ code: 0, signal: null }, 50, policy), 'planned');
  assert.equal(classifyExit({ code: 0, signal: null }, QUICK_EXIT_MS - 1, policy), 'fast-crash');
});

test('a crash after a stable run restarts at once; a fast one backs off', () => {
  assert.equal(classifyExit({ code: 1, signal: null }, 10_000, policy), 'stable-crash');
  assert.equal(classifyExit({ code: null, signal: 'SIGKILL' }, 20_000, policy), 'stable-crash');
  assert.equal(classifyExit({ code: 1, signal: null }, 9_999, policy), 'fast-crash');
});

test('the first fast failure restarts at once; then backoff doubles and caps; jitter stays within ±20 % and under the cap', () => {
  const mid = () => 0.5;
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 40].map((n) => restartDelay(n, policy, mid)), [0, 100, 200, 400, 800, 1000, 1000, 1000]);
  assert.equal(restartDelay(2, policy, () => 0), 80);
  assert.equal(restartDelay(2, policy, () => 0.999), 120);
  assert.equal(restartDelay(10, policy, () => 0.999), 1000);
  assert.equal(restartDelay(0, policy), 0);
});

test('exit status as spawn-fcgi reports it', () => {
  assert.equal(exitStatus({ code: 3, signal: null }), 3);
  assert.equal(exitStatus({ code: null, signal: 'SIGSEGV' }), 1);
});
