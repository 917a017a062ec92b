/**
 * Process and file-system probes for end-to-end tests, read straight from /proc (Linux only).
 *
 * PID 1 on the test machines reaps orphans late: a dead orphan lingers as a zombie and `kill -0`
 * still succeeds on it. Every "is it gone?" question here therefore reads `State:` from
 * /proc/<pid>/status and treats a zombie (or a missing entry) as gone.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { directChildren, freePort, processTable, readStat } from '../../tools/proc/proc.js';

export { sleep };

/** The fields of /proc/<pid>/status that tests look at. Ids are numbers; VmRSS is in kB (absent for zombies). */
export interface ProcStatus {
  name: string;
  /** One letter: R, S, D, Z, T... */
  state: string;
  ppid: number;
  /** real, effective, saved, filesystem */
  uid: [number, number, number, number];
  gid: [number, number, number, number];
  groups: number[];
  vmRssKb?: number;
}

/** Parsed /proc/<pid>/status, or undefined when the process does not exist (any more). */
export function readStatus(pid: number): ProcStatus | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const field = (name: string): string => {
    const match = new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text);
    return match === null ? '' : match[1]!.trim();
  };
  const ids = (name: string) => field(name).split(/\s+/).map(Number) as [number, number, number, number];
  const rss = /^(\d+)/.exec(field('VmRSS'));
  return {
    name: field('Name'),
    state: field('State').charAt(0),
    ppid: Number(field('PPid')),
    uid: ids('Uid'),
    gid: ids('Gid'),
    groups: field('Groups') === '' ? [] : field('Groups').split(/\s+/).map(Number),
    vmRssKb: rss === null ? undefined : Number(rss[1]),
  };
}

/** True when the process no longer exists or is a zombie. */
export function isGone(pid: number): boolean {
  const status = readStatus(pid);
  return status === undefined || status.state === 'Z';
}

/** A live (not zombie) process. */
export const isAlive = (pid: number): boolean => !isGone(pid);

/** The process group id (field 5 of /proc/<pid>/stat), or undefined if the process is gone. */
export function pgid(pid: number): number | undefined {
  return readStat(pid)?.pgid;
}

/** The session id (field 6 of /proc/<pid>/stat), or undefined if the process is gone. */
export function sid(pid: number): number | undefined {
  return readStat(pid)?.sid;
}

export { directChildren, processTable };

/** Live (non-zombie) direct children of a process. */
export function childrenOf(pid: number): number[] {
  const result: number[] = [];
  for (const [child, parent] of processTable()) if (parent === pid && isAlive(child)) result.push(child);
  return result.sort((a, b) => a - b);
}

/** Live (non-zombie) descendants of a process, at any depth. */
export function descendants(pid: number): number[] {
  const table = processTable();
  const byParent = new Map<number, number[]>();
  for (const [child, parent] of table) byParent.set(parent, [...(byParent.get(parent) ?? []), child]);
  const result: number[] = [];
  const queue = [...(byParent.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift()!;
    if (isAlive(next)) result.push(next);
    queue.push(...(byParent.get(next) ?? []));
  }
  return result.sort((a, b) => a - b);
}

/** The command line of a process, arguments joined by spaces ('' if gone or a kernel thread). */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((s) => s !== '')
      .join(' ');
  } catch {
    return '';
  }
}

/**
 * Live processes whose command line contains `text` (e.g. a unique temp path a test put in the argv),
 * this process excluded. The way to prove that a failed start left nothing running.
 */
export function processesMentioning(text: string): number[] {
  const result: number[] = [];
  for (const pid of processTable().keys()) {
    if (pid === process.pid || !isAlive(pid)) continue;
    if (cmdline(pid).includes(text)) result.push(pid);
  }
  return result.sort((a, b) => a - b);
}

/** Number of open descriptors of a process (entries of /proc/<pid>/fd). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * The descriptor count of a process once it has stopped changing (the same in `reads` reads `intervalMs`
 * apart): what to compare against after a start-up whose pipes close at their own pace on a busy machine.
 */
export async function settledFdCount(pid: number, options: { reads?: number; intervalMs?: number; timeoutMs?: number } = {}): Promise<number> {
  const { reads = 4, intervalMs = 100, timeoutMs = 20_000 } = options;
  const seen: number[] = [];
  return waitFor(
    () => {
      seen.push(fdCount(pid));
      const last = seen.slice(-reads);
      // A process always holds some descriptors, so the count is never a falsy 0.
      return last.length === reads && last.every((n) => n === last[0]) ? last[0] : undefined;
    },
    { timeoutMs, intervalMs, what: `a steady descriptor count of ${pid}` },
  );
}

/** Send a signal if the process is still there; never throws. */
export function signalIfAlive(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (isGone(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    // exited in between
  }
}

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Poll this often (default 50 ms). */
  intervalMs?: number;
  /** Named in the timeout error. */
  what?: string;
}

/**
 * Poll `predicate` until it returns a truthy value and resolve with that value; reject with a clear
 * error (including the last value or exception seen) after `timeoutMs`.
 */
export async function waitFor<T>(predicate: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const { timeoutMs = 10_000, intervalMs = 50, what = 'condition' } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(intervalMs);
  }
}

/** A path under /tmp that does not exist yet, unique to this run: `/tmp/<prefix>-<pid>-<random>`. */
export function tmpPath(prefix: string): string {
  return join('/tmp', `${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** A fresh directory under /tmp (mode 0700); remove it with `removePath`. */
export function tmpDir(prefix: string): string {
  return mkdtempSync(join('/tmp', `${prefix}-`));
}

/** rm -rf, never throwing. */
export function removePath(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    // already gone
  }
}

export { freePort };
