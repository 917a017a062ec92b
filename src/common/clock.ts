/**
 * Time for the pool: injected so that unit tests drive it with a fake clock, and so that no duration
 * reaches setTimeout above its limit (2^31-1 ms, about 24.8 days), where Node fires after 1 ms instead.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Call `fn` once after `ms` (any non-negative length, hours or months included). */
  after(ms: number, fn: () => void): Timer;
}

/** The longest delay setTimeout takes as it is. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    // No wait: at the end of this turn of the event loop, not after setTimeout's 1 ms minimum (a restart
    // after a crash is one of these: issue 10).
    if (ms <= 0) {
      const immediate = setImmediate(fn);
      return { cancel: () => clearImmediate(immediate) };
    }
    let handle: NodeJS.Timeout;
    const deadline = Date.now() + Math.max(0, ms);
    // A long wait is a chain of shorter ones, each re-aimed at the deadline.
    const arm = (left: number) => {
      handle = setTimeout(
        () => {
          const rest = deadline - Date.now();
          if (rest > 0 && left > MAX_TIMEOUT_MS) arm(rest);
          else fn();
        },
        Math.min(Math.max(0, left), MAX_TIMEOUT_MS),
      );
    };
    arm(ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

/** Call `fn` every `ms` (any length, unlike setInterval) until the returned timer is cancelled. */
export function every(clock: Clock, ms: number, fn: () => void): Timer {
  let current: Timer;
  const arm = () => {
    current = clock.after(ms, () => {
      arm();
      fn();
    });
  };
  arm();
  return { cancel: () => current.cancel() };
}
