import type { ChildExit } from '../child/launcher.js';

/**
 * What the pool tells the world. The Pool only emits these; pool-log.ts puts them into words for the log,
 * and the supervisor may pass some on (sd_notify status).
 */
export type PoolEvent =
  | { type: 'spawned'; slot: number; pid: number; cause: 'start' | 'restart' | 'grow' }
  /** The child never ran the app: no process (EAGAIN, ENOENT, EMFILE, E2BIG...) or the helper's exec failed. */
  | { type: 'spawn failed'; slot: number; pid: number | null; reason: string; uptimeMs: number; next: Next }
  | { type: 'exited'; slot: number; pid: number; exit: ChildExit; reason: string; uptimeMs: number; next: Next }
  /** A child that was being stopped or replaced ended. */
  | { type: 'retired'; slot: number; pid: number; reason: string }
  | { type: 'backing off'; slot: number; delayMs: number; failures: number; reason: string }
  | { type: 'gave up'; slot: number; pid: number | null; failures: number; maxFailures: number; reason: string; status: number }
  | { type: 'recycling'; slot: number; pid: number; reason: string }
  | { type: 'replacing'; slot: number; pid: number; oldPid: number | null; reason: string }
  | { type: 'replaced'; slot: number; pid: number; oldPid: number | null; reason: string }
  | { type: 'replace failed'; slot: number; pid: number | null; reason: string; why: string; oldKeepsServing: boolean }
  /** TTIN/TTOU (no `why`), or a pool that sizes itself: connections waited, or the child idled. */
  | { type: 'scaled'; size: number; slot: number; pid: number | null; direction: 'grow' | 'shrink'; why?: 'queued' | 'idle'; min?: number; max?: number }
  | { type: 'scale refused'; size: number; limit: number }
  | { type: 'kill escalated'; pid: number; signal: string; timeoutMs: number }
  | { type: 'stopping'; children: number }
  | { type: 'stopped' }
  /** An event the slot's state cannot take: a bug, logged instead of thrown (it would come from a timer). */
  | { type: 'ignored transition'; slot: number; state: string; event: string };

/** What happens after a child's end. */
export type Next =
  | { action: 'restart'; why: 'planned' | 'stable crash' | 'fast crash'; delayMs: number; rateBound: boolean; failures: number }
  | { action: 'give up'; failures: number }
  /** Nothing: the pool is stopping, or the start check reports it. */
  | { action: 'none' };
