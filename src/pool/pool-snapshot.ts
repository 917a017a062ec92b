/**
 * What observers (status, metrics, health checks, the status page) may know of the pool: plain data, copied
 * at the moment it is asked for. Observers read this, never the Pool's internals.
 */
/** 'parked': a slot of a pool that sizes itself, without a child on purpose until the pool grows into it. */
export type SlotState = 'starting' | 'running' | 'backing off' | 'stopping' | 'stopped' | 'parked';

export interface SlotSnapshot {
  index: number;
  state: SlotState;
  pid: number | null;
  startedAt: number | null;
  restarts: number;
  /** Consecutive fast failures. */
  failures: number;
  lastExit: { code: number | null; signal: string | null; at: number; reason: string } | null;
  /** When the slot's next start is due (backing off, or a restart about to happen); null otherwise. */
  nextRestartAt: number | null;
  /** Why its last child failed or could not start ('spawn failed: EAGAIN ...'); null after a clean run. */
  lastError: string | null;
}

export interface PoolSnapshot {
  /** How many children the pool is meant to have now (-F, changed by TTIN/TTOU; a pool that sizes itself: its slots not parked). */
  size: number;
  /** The bounds: --min-procs and -F (equal in a static pool). */
  min: number;
  max: number;
  /** The pool is stopping (or stopped): no more restarts. */
  stopping: boolean;
  slots: SlotSnapshot[];
}
