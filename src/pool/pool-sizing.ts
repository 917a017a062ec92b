import { readFileSync } from 'node:fs';
import type { QueueSignal } from './queue-watch.js';

/**
 * When a pool that sizes itself grows and shrinks. Pure (apart from readCpuTicks): the Pool feeds it what it
 * observed and carries out what it returns.
 *
 * Grow: by one, up to max, when a connection waits in the accept queue — at once if no child is there to
 * take it (with --min-procs 0, the first request), else when it still waits QUEUE_SETTLE_MS later — with at
 * most one start in flight (a start counts until its child has been running for GROW_SPACING_MS, the time an
 * app needs to reach accept()), and never while a slot backs off (a failing app is not helped by more children).
 * Shrink: by one, down to min, a child whose CPU time did not change for the idle timeout, when nothing
 * waited in the queue for as long; one stop at a time, the highest slot first (the low slots stay stable).
 */

export interface Bounds {
  min: number;
  max: number;
  idleTimeoutMs: number;
}

export interface Load {
  /** Slots meant to have a child now (not parked, not being parked). */
  active: number;
  /** Children launched that have not exec'd yet. */
  starting: number;
  /** Children running (exec'd). */
  running: number;
  /** Slots waiting to restart a failed child. */
  backingOff: number;
  /** Slots whose child is being stopped for idling. */
  parking: number;
}

/** A grown child counts as a start in flight this long after it was launched. */
export const GROW_SPACING_MS = 100;

export function shouldGrow(signal: QueueSignal, load: Load, bounds: Bounds, now: number, lastGrowAt: number): boolean {
  if (load.active >= bounds.max) return false;
  if (load.starting > 0 || now - lastGrowAt < GROW_SPACING_MS) return false;
  if (load.backingOff > 0) return false;
  return signal === 'waiting' || load.running === 0;
}

/** How long each child's CPU time has stayed the same, from samples taken by the Pool. */
export class IdleTracker {
  private readonly seen = new Map<number, { ticks: number; since: number }>();

  /** Record the children's CPU times now; children not in the list are forgotten. */
  observe(samples: { pid: number; ticks: number | undefined }[], now: number): void {
    const alive = new Set<number>();
    for (const { pid, ticks } of samples) {
      alive.add(pid);
      if (ticks === undefined) continue;
      const previous = this.seen.get(pid);
      if (previous === undefined || previous.ticks !== ticks) this.seen.set(pid, { ticks, since: now });
    }
    for (const pid of this.seen.keys()) if (!alive.has(pid)) this.seen.delete(pid);
  }

  /** How long the child has used no CPU, as far as the samples tell (0 for a child not seen yet). */
  idleFor(pid: number, now: number): number {
    const entry = this.seen.get(pid);
    return entry === undefined ? 0 : now - entry.since;
  }
}

/** The slot whose child should be stopped now, or undefined. */
export function pickIdle(
  children: { slot: number; pid: number }[],
  idle: IdleTracker,
  load: Load,
  bounds: Bounds,
  now: number,
  lastQueuedAt: number,
): number | undefined {
  if (load.parking > 0 || load.active <= bounds.min) return undefined;
  if (now - lastQueuedAt < bounds.idleTimeoutMs) return undefined;
  const idleOnes = children.filter((c) => idle.idleFor(c.pid, now) >= bounds.idleTimeoutMs);
  if (idleOnes.length === 0) return undefined;
  return Math.max(...idleOnes.map((c) => c.slot));
}

/** How often idle children are looked for while the pool is above min: the idle timeout is met within 1.5 of it. */
export function idleCheckInterval(idleTimeoutMs: number): number {
  return Math.max(50, Math.floor(idleTimeoutMs / 2));
}

/**
 * CPU time of a child in clock ticks: its own utime+stime, its reaped children's (cutime+cstime), and its
 * live children's (a php-cgi master with PHP_FCGI_CHILDREN uses no CPU while its workers serve).
 * undefined when the process is gone.
 */
export function readCpuTicks(pid: number): number | undefined {
  const own = statTicks(pid, true);
  if (own === undefined) return undefined;
  let sum = own;
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((w) => w !== '');
  } catch {
    // No CONFIG_PROC_CHILDREN: the child's own time only.
  }
  for (const child of children) sum += statTicks(Number(child), false) ?? 0;
  return sum;
}

function statTicks(pid: number, withReaped: boolean): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // After the last ')': state(0) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(11) stime cutime cstime
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const n = (i: number) => Number(fields[i]) || 0;
  return n(11) + n(12) + (withReaped ? n(13) + n(14) : 0);
}
