/**
 * The repo's /proc readers, shared by the tests (test/helpers/proc.ts, through tsx) and the benchmark
 * (scripts/bench/proc.mjs, through dist-tools/proc.mjs, which `npm run build` bundles). Linux only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';

/** The fields of /proc/<pid>/stat the tools read. */
export interface ProcStat {
  pid: number;
  /** The command name, as the kernel keeps it (bytes read as latin1; it may hold spaces and parentheses). */
  comm: string;
  /** One letter: R, S, D, Z, T, X... */
  state: string;
  ppid: number;
  pgid: number;
  sid: number;
  /** CPU time in clock ticks (see CLK_TCK). */
  utime: number;
  stime: number;
  threads: number;
  /** Clock ticks after boot: with the pid, names one process even when pids are reused. */
  starttime: number;
}

/**
 * Direct children of `pid`, zombies included, from /proc/<pid>/task/<tid>/children: cheaper than a scan
 * of /proc, so fit for polling a supervisor thousands of times. Empty when the process is gone.
 */
export function directChildren(pid: number): number[] {
  const result: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return result;
  }
  for (const task of tasks) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const word of text.trim().split(/\s+/)) if (word !== '') result.push(Number(word));
  }
  return result;
}

/** USER_HZ: the unit of utime, stime and starttime on Linux. */
export const CLK_TCK = 100;

/** /proc/<pid>/stat parsed, or undefined when the process does not exist (any more). */
export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  // after "pid (comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime ...
  const rest = text.slice(close + 2).split(' ');
  const number = (index: number): number => Number(rest[index] ?? NaN);
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: rest[0] ?? '',
    ppid: number(1),
    pgid: number(2),
    sid: number(3),
    utime: number(11),
    stime: number(12),
    threads: number(17),
    starttime: number(19),
  };
}

/** Every pid in /proc, ascending (a snapshot: processes may vanish while it is taken). */
export function listPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b);
}

/** Every process on the machine: pid → ppid. */
export function processTable(): Map<number, number> {
  const table = new Map<number, number>();
  for (const pid of listPids()) {
    const stat = readStat(pid);
    if (stat !== undefined) table.set(pid, stat.ppid);
  }
  return table;
}

/**
 * A TCP port that was free on `host` a moment ago (bind to port 0, read it, close). Another process
 * may take it before the caller binds it; the range the kernel hands out makes that rare.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('freePort: no TCP address'));
      server.close(() => resolve(address.port));
    });
  });
}
