import type { PoolSnapshot } from '../pool/pool-snapshot.js';

/** A probe's answer: ok or not, and one line saying why. */
export interface Verdict {
  ok: boolean;
  reason: string;
  /** What is wrong besides the counts (slots backing off...), for a reader that shows the counts itself. */
  problems?: string[];
}

/** The pool at the moment of a probe: a snapshot, or the same fields of a status answer. */
export interface PoolShape {
  stopping: boolean;
  configured: number;
  /** --min-procs of a pool that sizes itself (absent from older answers: then `configured`). */
  min?: number;
  slots: { slot: number; state: string; pid: number | null; lastExit: { reason: string } | null }[];
}

export function shapeOfSnapshot(snapshot: PoolSnapshot): PoolShape {
  return {
    stopping: snapshot.stopping,
    configured: snapshot.size,
    min: snapshot.min,
    slots: snapshot.slots.map((s) => ({ slot: s.index, state: s.state, pid: s.pid, lastExit: s.lastExit })),
  };
}

/** /healthz: the supervisor is alive and supervising (not stopping). */
export function liveness(pool: PoolShape): Verdict {
  return pool.stopping ? { ok: false, reason: 'stopping' } : { ok: true, reason: 'supervising' };
}

/**
 * /readyz and `status`: at least the configured number of children running, none backing off, not stopping.
 * A pool that sizes itself needs --min-procs running: one with --min-procs 0 and no child is ready (idle,
 * its socket listening; the first connection starts a child), and parked slots are no problem.
 */
export function readiness(pool: PoolShape): Verdict {
  const running = pool.slots.filter((s) => s.state === 'running' && s.pid !== null).length;
  const needed = pool.min !== undefined && pool.min < pool.configured ? pool.min : pool.configured;
  const counted = `${running} of ${pool.configured} ${pool.configured === 1 ? 'child' : 'children'} running`;
  if (pool.stopping) return { ok: false, reason: `stopping, ${counted}`, problems: ['stopping'] };
  const troubled = pool.slots.filter((s) => s.state === 'backing off' || (s.state !== 'running' && s.state !== 'stopping' && s.state !== 'parked'));
  if (running >= needed && !troubled.some((s) => s.state === 'backing off')) return { ok: true, reason: counted };
  const why = troubled.slice(0, 3).map((s) => `slot ${s.slot} ${s.state}${s.lastExit === null ? '' : ` (${s.lastExit.reason})`}`);
  return { ok: false, reason: [counted, ...why].join(', '), problems: why };
}
