/**
 * The life of one slot, in one place: its states, the events that move it, and what follows a child's end.
 * Pure: no timers, no processes. The Pool feeds it what happened and carries out what it returns.
 *
 *            spawn                  exec ok
 *   stopped ───────► starting ─────────────► running
 *      ▲               │  ▲                    │
 *      │ gave up       │  │ spawn (timer)      │ ended (exit, crash, could not start)
 *      │               ▼  │                    ▼
 *      └──────────── backing off ◄──────────(decide)──► starting (no child yet: an immediate restart)
 *
 *   stop: any state with a child → stopping → (the child and its group gone) → stopped; without a child → stopped.
 *   A replacement (rolling restart, recycling) runs beside the serving child and does not change the state
 *   until it takes over ('replaced': → running).
 *
 *   A pool that sizes itself (--min-procs below -F) has -F slots; those above its current size are parked:
 *            park                              spawn (grow: connections wait)
 *   stopped ──────► parked ◄──── stopping ◄──────────── running ... ◄── starting ◄──── parked
 *                          park        stop with child (shrink: idle)
 *   A parked slot is not a failure: it has no child on purpose, and the pool stops it as a stopped one.
 */
import type { SlotState } from './pool-snapshot.js';
import { classifyExit, restartDelay, takeRestart, type RestartBucket, type RestartPolicy } from './restart-policy.js';
import type { ChildExit } from '../child/launcher.js';

export type SlotEvent =
  /** A child is being launched into the slot. */
  | 'spawn'
  /** The helper exec'd the app. */
  | 'exec ok'
  /** The child ended (exit, signal, or it never started); `decide()` said what comes next. */
  | 'ended, restart now'
  | 'ended, back off'
  | 'ended, give up'
  /** A replacement passed its start check and serves now. */
  | 'replaced'
  /** The pool stops: with or without a child to wait for. */
  | 'stop with child'
  | 'stop without child'
  /** The stopped child and its process group are gone. */
  | 'gone'
  /** The slot waits without a child until the pool grows into it (at start above --min-procs; after an idle stop). */
  | 'park';

const TABLE: Record<SlotState, Partial<Record<SlotEvent, SlotState>>> = {
  stopped: { spawn: 'starting', 'stop without child': 'stopped', park: 'parked' },
  parked: { spawn: 'starting', 'stop without child': 'stopped' },
  starting: {
    spawn: 'starting',
    'exec ok': 'running',
    'ended, restart now': 'starting',
    'ended, back off': 'backing off',
    'ended, give up': 'stopped',
    replaced: 'running',
    'stop with child': 'stopping',
    'stop without child': 'stopped',
  },
  running: {
    'ended, restart now': 'starting',
    'ended, back off': 'backing off',
    'ended, give up': 'stopped',
    replaced: 'running',
    'stop with child': 'stopping',
    'stop without child': 'stopped',
  },
  'backing off': { spawn: 'starting', replaced: 'running', 'stop without child': 'stopped' },
  stopping: { gone: 'stopped', park: 'parked', 'stop with child': 'stopping', 'stop without child': 'stopping' },
};

/** The state after `event`, or undefined if the event cannot happen in `state` (a bug, reported by the caller). */
export function transition(state: SlotState, event: SlotEvent): SlotState | undefined {
  return TABLE[state][event];
}

/** How a child ended, as far as the slot is concerned. */
export type Ending =
  | { kind: 'exit'; exit: ChildExit; uptimeMs: number }
  /** It never ran the app: the spawn itself failed, or the helper reported why it could not exec. */
  | { kind: 'could not start'; reason: string; exit: ChildExit | null };

export type Decision =
  | { next: 'restart'; why: 'planned' | 'stable crash' | 'fast crash'; delayMs: number; rateBound: boolean; failures: number; bucket: RestartBucket }
  | { next: 'give up'; failures: number; status: number };

/**
 * What follows a child's end: restart at once (a planned exit, a crash after a stable run, the first fast
 * failure), after a backoff (repeated fast failures), or give up (--max-failures). Every immediate restart
 * takes from the slot's rate bound.
 */
export function decide(
  ending: Ending,
  slot: { failures: number; bucket: RestartBucket },
  policy: RestartPolicy,
  now: number,
  random: () => number = Math.random,
): Decision {
  const why =
    ending.kind === 'could not start'
      ? 'fast crash'
      : ({ planned: 'planned', 'stable-crash': 'stable crash', 'fast-crash': 'fast crash' } as const)[classifyExit(ending.exit, ending.uptimeMs, policy)];
  let failures = slot.failures;
  if (why === 'stable crash') failures = 0;
  if (why === 'fast crash') failures++;
  if (why === 'fast crash' && policy.maxFailures !== undefined && failures >= policy.maxFailures) {
    const status = ending.kind === 'could not start' ? 255 : (ending.exit.code ?? 1) || 1;
    return { next: 'give up', failures, status };
  }
  const backoff = why === 'fast crash' ? restartDelay(failures, policy, random) : 0;
  const taken = takeRestart(slot.bucket, now);
  const delayMs = Math.max(backoff, taken.waitMs);
  return { next: 'restart', why, delayMs, rateBound: taken.waitMs > backoff, failures, bucket: taken.bucket };
}
