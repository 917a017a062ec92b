import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TIMEOUT_MS, systemClock } from '../../../src/common/clock.js';

test("systemClock: a delay beyond setTimeout's 2^31-1 ms fires at its time, not after 1 ms", () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  try {
    const hour = 3_600_000;
    let fired = 0;
    systemClock.after(600 * hour, () => {
      fired++;
    });
    mock.timers.tick(1);
    assert.equal(fired, 0);
    mock.timers.tick(MAX_TIMEOUT_MS);
    assert.equal(fired, 0, 'not at the first chunk');
    mock.timers.tick(600 * hour - MAX_TIMEOUT_MS - 2);
    assert.equal(fired, 0, 'not a millisecond early');
    mock.timers.tick(1);
    assert.equal(fired, 1);
    mock.timers.tick(1000 * hour);
    assert.equal(fired, 1, 'once');
  } finally {
    mock.timers.reset();
  }
});

test('systemClock: cancel works on any link of the chain; short delays are plain timeouts', () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  try {
    let fired = 0;
    const long = systemClock.after(3 * MAX_TIMEOUT_MS, () => {
      fired++;
    });
    mock.timers.tick(MAX_TIMEOUT_MS + 5);
    long.cancel();
    mock.timers.tick(3 * MAX_TIMEOUT_MS);
    assert.equal(fired, 0);
    systemClock.after(10, () => {
      fired++;
    });
    mock.timers.tick(9);
    assert.equal(fired, 0);
    mock.timers.tick(1);
    assert.equal(fired, 1);
  } finally {
    mock.timers.reset();
  }
});
