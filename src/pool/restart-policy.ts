import type { ChildExit } from '../child/launcher.js';

export interface RestartPolicy {
  restartDelayMs: number;
  maxRestartDelayMs: number;
  stableAfterMs: number;
  maxFailures?: number;
}

/**
 * - `planned`: exit 0 after a successful exec (php-cgi after PHP_FCGI_MAX_REQUESTS, a libfcgi app that
 *   exits after each request, 2-3 ms after its start under traffic): replace at once, count nothing.
 *   How long it ran tells nothing (a recycling app and `true` both exit 0 within milliseconds); what keeps
 *   `true` from spinning is the restart rate bound below, not a guess about what the child did.
 * - `stable-crash`: died after running stably: replace at once, reset the failure count.
 * - `fast-crash`: died soon after its start: back off, count a failure.
 */
export type ExitKind = 'planned' | 'stable-crash' | 'fast-crash';

export function classifyExit(exit: ChildExit, uptimeMs: number, policy: RestartPolicy): ExitKind {
  if (exit.code === 0 && exit.signal === null) return 'planned';
  return uptimeMs >= policy.stableAfterMs ? 'stable-crash' : 'fast-crash';
}

/**
 * The first fast failure is restarted at once (a worker killed by the OOM killer or by hand should be back
 * as fast as multiwatch brings it back); from the second in a row, capped exponential backoff from the
 * restart delay, with ±20 % jitter so that slots crashing together do not restart together.
 */
export function restartDelay(failures: number, policy: RestartPolicy, random: () => number = Math.random): number {
  if (failures <= 1) return 0;
  const exponential = policy.restartDelayMs * 2 ** Math.min(failures - 2, 30);
  const capped = Math.min(policy.maxRestartDelayMs, exponential);
  return Math.round(Math.min(policy.maxRestartDelayMs, capped * (0.8 + 0.4 * random())));
}

/** spawn-fcgi's exit status for a child: its exit code, or 1 if a signal killed it. */
export const exitStatus = (exit: ChildExit): number => exit.code ?? 1;

export function describeExit(exit: ChildExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/**
 * The bound on immediate restarts of one slot: a token bucket of RESTART_BURST restarts, refilled by one
 * every RESTART_INTERVAL_MS. A pool that recycles by the request restarts without waiting in bursts and at
 * up to 1000 / RESTART_INTERVAL_MS children a second per slot after that; `true` as the app cannot make
 * the supervisor spin.
 */
export const RESTART_BURST = 20;
export const RESTART_INTERVAL_MS = 25;

export interface RestartBucket {
  tokens: number;
  at: number;
}

export const fullBucket = (now: number): RestartBucket => ({ tokens: RESTART_BURST, at: now });

/** Take one restart from the bucket: how long to wait for it (0: now) and the bucket after. */
export function takeRestart(bucket: RestartBucket, now: number): { waitMs: number; bucket: RestartBucket } {
  const tokens = Math.min(RESTART_BURST, bucket.tokens + Math.max(0, now - bucket.at) / RESTART_INTERVAL_MS);
  const waitMs = tokens >= 1 ? 0 : Math.ceil((1 - tokens) * RESTART_INTERVAL_MS);
  return { waitMs, bucket: { tokens: tokens - 1, at: now } };
}
