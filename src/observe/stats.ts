import { readFileSync } from 'node:fs';
import type { PoolSnapshot, SlotState } from '../pool/pool-snapshot.js';

/** One slot as `status` and `/metrics` show it. */
export interface SlotStatus {
  slot: number;
  pid: number | null;
  state: SlotState;
  startedAt: number | null;
  restarts: number;
  failures: number;
  lastExit: { code: number | null; signal: string | null; at: number; reason: string } | null;
  cpuPercent: number | null;
  cpuSeconds: number | null;
  rssBytes: number | null;
  /** When a backing-off slot starts its next child (epoch ms), where the pool says. */
  nextRestartAt?: number | null;
  /** The last setup or spawn failure of the slot, where the pool says. */
  lastError?: string | null;
}

export interface PoolStatus {
  supervisorPid: number;
  socket: string;
  startedAt: number;
  now: number;
  /** How many children the pool is meant to have (-F, changed by TTIN/TTOU). */
  configured: number;
  /** The bounds: --min-procs and -F (equal in a static pool; absent from older answers). */
  min?: number;
  max?: number;
  /** The pool is stopping: no more restarts. */
  stopping: boolean;
  /** Children running now. */
  children: number;
  restarts: number;
  listenQueue: number | null;
  slots: SlotStatus[];
}

interface Usage {
  cpu: number;
  memory: number;
  ctime: number;
}

/**
 * The pool's state, with CPU and memory from pidusage sampled now (on demand only: nothing samples on a timer).
 * pidusage is loaded on the first request, so a pool that is never asked does not pay for it.
 */
export async function collectStatus(pool: PoolSnapshot, meta: { socket: string; startedAt: number; listenQueue: () => number | null }): Promise<PoolStatus> {
  const pids = pool.slots.flatMap((s) => (s.pid === null ? [] : [s.pid]));
  const usage = await sampleUsage(pids);
  const slots: SlotStatus[] = pool.slots.map((slot) => {
    const pid = slot.pid;
    const u = pid === null ? undefined : usage.get(pid);
    return {
      slot: slot.index,
      pid,
      state: slot.state,
      startedAt: slot.startedAt,
      restarts: slot.restarts,
      failures: slot.failures,
      lastExit: slot.lastExit,
      cpuPercent: u === undefined ? null : round(u.cpu, 1),
      cpuSeconds: u === undefined ? null : u.ctime / 1000,
      rssBytes: u === undefined ? null : u.memory,
      nextRestartAt: slot.nextRestartAt,
      lastError: slot.lastError,
    };
  });
  return {
    supervisorPid: process.pid,
    socket: meta.socket,
    startedAt: meta.startedAt,
    now: Date.now(),
    configured: pool.size,
    min: pool.min,
    max: pool.max,
    stopping: pool.stopping,
    children: pids.length,
    restarts: slots.reduce((sum, s) => sum + s.restarts, 0),
    listenQueue: meta.listenQueue(),
    slots,
  };
}

async function sampleUsage(pids: number[]): Promise<Map<number, Usage>> {
  const result = new Map<number, Usage>();
  if (pids.length === 0) return result;
  const { default: pidusage } = await import('pidusage');
  // One pid at a time: a child that exits between listing and sampling must not hide the others.
  await Promise.all(
    pids.map(async (pid) => {
      try {
        result.set(pid, await pidusage(pid));
      } catch {
        // Gone meanwhile.
      }
    }),
  );
  return result;
}

/** The listen queue of a TCP socket: rx_queue of its LISTEN row in /proc/net/tcp{,6}, found by the socket's inode. */
export function tcpListenQueue(inode: number): number | null {
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[9] === String(inode) && fields[3] === '0A') return parseInt(fields[4]!.split(':')[1]!, 16);
    }
  }
  return null;
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;
