import type { ChildExit } from './launcher.js';

export interface RestartPolicy {
  restartDelayMs: number;
  maxRestartDelayMs: number;
  stableAfterMs: number;
  maxFailures?: number;
}

/**
 * A child that exits 0 sooner than this after its start did not serve anything: a misconfigured app
 * (`true`, a script that forgot to loop) is a crash loop, not a recycle. php-cgi needs more than this
 * just to start.
 */
export const QUICK_EXIT_MS = 10;

/**
 * - `planned`: exit 0 (php-cgi after PHP_FCGI_MAX_REQUESTS): replace at once, count nothing.
 * - `stable-crash`: died after running stably: replace at once, reset the failure count.
 * - `fast-crash`: died soon after its start: back off, count a failure.
 */
export type ExitKind = 'planned' | 'stable-crash' | 'fast-crash';

export function classifyExit(exit: ChildExit, uptimeMs: number, policy: RestartPolicy): ExitKind {
  if (exit.code === 0 && uptimeMs >= QUICK_EXIT_MS) return 'planned';
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
export const exitStatus = (exit: ChildExit): number => (exit.code ?? 1);

export function describeExit(exit: ChildExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}
