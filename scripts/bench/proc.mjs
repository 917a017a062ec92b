// /proc readers and the process tracker that finds a spawner's workers.
//
// pid_max is 32768 on these machines and other test suites fork a lot, so a pid is never trusted
// alone: every process is identified by (pid, starttime), and a zombie counts as gone (PID 1 reaps
// orphans late here).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { directChildren, listPids, readStat as readProcStat } from '../../dist-tools/proc.mjs';

// The /proc/<pid>/stat parser, the pid list and freePort are the repo's one /proc module (tools/proc/proc.ts).
export { CLK_TCK, freePort, listPids } from '../../dist-tools/proc.mjs';

/** /proc/<pid>/stat parsed, or null when the process is gone. */
export const readStat = (pid) => readProcStat(pid) ?? null;

export const isDeadState = (state) => state === 'Z' || state === 'X';

/** Is this exact process (pid + starttime) still alive (not a zombie)? */
export function isAlive(pid, starttime) {
  const st = readStat(pid);
  return st !== null && !isDeadState(st.state) && (starttime === undefined || st.starttime === starttime);
}

/** Send a signal to pid only if it is still the process we know (starttime check against pid reuse). */
export function signalIfSame(pid, starttime, signal) {
  if (!isAlive(pid, starttime)) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** On-CPU time of all threads of pid in ns (schedstat), or null if gone. */
export function cpuNs(pid) {
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  let total = 0;
  for (const tid of tids) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
    } catch {
      // thread ended meanwhile
    }
  }
  return total;
}

/**
 * CPU (ns) of a supervisor and of its children that are not workers (a resident spawner, a notify
 * helper), keyed by pid and start time: compare two samples with cpuDeltaNs.
 */
export function cpuSample(pid, workerRe) {
  const sample = new Map();
  for (const p of [pid, ...directChildren(pid)]) {
    const st = readStat(p);
    if (st === null || (p !== pid && workerRe.test(st.comm))) continue;
    const ns = cpuNs(p);
    if (ns !== null) sample.set(`${p}:${st.starttime}`, ns);
  }
  return sample;
}

/** CPU used between two cpuSample()s by the processes in the later one (those that started since: all of theirs). */
export function cpuDeltaNs(before, after) {
  let total = 0;
  for (const [key, ns] of after) total += ns - (before.get(key) ?? 0);
  return total;
}

/** VmRSS, VmHWM (kB) from status and Pss (kB) from smaps_rollup. */
export function memKb(pid) {
  const out = {};
  try {
    for (const line of readFileSync(`/proc/${pid}/status`, 'latin1').split('\n')) {
      if (line.startsWith('VmRSS:') || line.startsWith('VmHWM:')) out[line.slice(0, 5)] = Number(line.split(/\s+/)[1]);
    }
  } catch {
    return null;
  }
  try {
    const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    if (m) out.Pss = Number(m[1]);
  } catch {
    // no smaps_rollup (old kernel): PSS stays unknown
  }
  return out;
}

/** Inodes of listening unix sockets bound to path. */
export function socketInodes(path) {
  const inodes = new Set();
  const tcp = /^tcp:127\.0\.0\.1:(\d+)$/.exec(path);
  if (tcp) {
    // /proc/net/tcp: local_address 0100007F:PPPP, st 0A = LISTEN, inode in column 10
    const local = `0100007F:${Number(tcp[1]).toString(16).toUpperCase().padStart(4, '0')}`;
    try {
      for (const line of readFileSync('/proc/net/tcp', 'latin1').split('\n').slice(1)) {
        const parts = line.trim().split(/\s+/);
        if (parts.length >= 10 && parts[1] === local && parts[3] === '0A') inodes.add(parts[9]);
      }
    } catch {
      // no /proc/net/tcp
    }
    return inodes;
  }
  try {
    const lines = readFileSync('/proc/net/unix', 'latin1').split('\n').slice(1);
    for (const line of lines) {
      const parts = line.trim().split(/\s+/);
      if (parts.length >= 8 && parts[7] === path && (parseInt(parts[3], 16) & 0x10000) !== 0) inodes.add(parts[6]);
    }
  } catch {
    // no /proc/net/unix
  }
  return inodes;
}

export function holdsSocket(pid, inodes) {
  let fds;
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith('socket:[') && inodes.has(link.slice(8, -1))) return true;
    } catch {
      // fd closed meanwhile
    }
  }
  return false;
}

/**
 * The processes of one run: the spawner (root) and its descendants, found incrementally.
 * A full /proc scan costs ~2.5 ms here, too much for a 2 ms poll, so poll() reads only the pids that
 * appeared since the previous poll (a new process is ours when its parent is ours) plus the known
 * members. resync() does the full scan (descendants, and for a daemonizing spawner the processes
 * holding the listening socket).
 */
export class Tracker {
  constructor({ workerRe, sockPath, daemonizes }) {
    this.workerRe = workerRe;
    this.sockPath = sockPath;
    this.daemonizes = daemonizes;
    /** pid -> {pid, starttime, comm, state, ppid} of live members. */
    this.members = new Map();
    /** every member ever seen (for cleanup), pid -> starttime */
    this.everMembers = new Map();
    this.seen = new Set(listPids());
    this.rootPid = null;
  }

  /** Call right after spawning the root. */
  setRoot(pid) {
    this.rootPid = pid;
    const st = readStat(pid);
    if (st) this.add(st);
  }

  add(st) {
    this.members.set(st.pid, st);
    if (!this.everMembers.has(st.pid)) this.everMembers.set(st.pid, st.starttime);
  }

  poll() {
    const list = listPids();
    let inodes = null;
    for (const pid of list) {
      if (this.seen.has(pid)) continue;
      const st = readStat(pid);
      if (!st || isDeadState(st.state)) continue;
      if (this.members.has(st.ppid)) {
        this.add(st);
      } else if (this.daemonizes) {
        // spawn-fcgi forks the later children and exits within a millisecond: they are often
        // already orphans when first seen. They hold the listening socket.
        inodes ??= socketInodes(this.sockPath);
        if (inodes.size > 0 && holdsSocket(pid, inodes)) this.add(st);
      }
    }
    this.seen = new Set(list);
    this.refresh();
  }

  refresh() {
    for (const [pid, old] of this.members) {
      const st = readStat(pid);
      if (st === null || st.starttime !== old.starttime || isDeadState(st.state)) this.members.delete(pid);
      else this.members.set(pid, st);
    }
  }

  resync() {
    const all = new Map();
    const children = new Map();
    for (const pid of listPids()) {
      const st = readStat(pid);
      if (!st || isDeadState(st.state)) continue;
      all.set(pid, st);
      if (!children.has(st.ppid)) children.set(st.ppid, []);
      children.get(st.ppid).push(pid);
    }
    this.seen = new Set(all.keys());
    this.refresh();
    const stack = [...this.members.keys()];
    if (this.daemonizes || this.members.size === 0) {
      const inodes = socketInodes(this.sockPath);
      if (inodes.size > 0) {
        for (const st of all.values()) {
          if (!this.members.has(st.pid) && this.workerRe.test(st.comm) && holdsSocket(st.pid, inodes)) stack.push(st.pid);
        }
      }
    }
    while (stack.length > 0) {
      const pid = stack.pop();
      const st = all.get(pid);
      if (!st) continue;
      if (!this.members.has(pid)) this.add(st);
      for (const c of children.get(pid) ?? []) if (!this.members.has(c)) stack.push(c);
    }
  }

  /**
   * workers: members whose comm matches the worker pattern and that have no matching member child
   * (a php-cgi or php-fpm master counts as a supervisor); supervisors: every other live member.
   */
  classify() {
    const masters = new Set();
    for (const st of this.members.values()) {
      if (this.workerRe.test(st.comm) && this.members.has(st.ppid) && this.workerRe.test(this.members.get(st.ppid).comm)) masters.add(st.ppid);
    }
    const workers = [];
    const supervisors = [];
    for (const st of this.members.values()) {
      if (this.workerRe.test(st.comm) && !masters.has(st.pid)) workers.push(st);
      else supervisors.push(st);
    }
    return { workers, supervisors };
  }

  workers() {
    return this.classify().workers;
  }

  /** Live members (pid, starttime), root included if alive. */
  live() {
    return [...this.members.values()].map((st) => ({ pid: st.pid, starttime: st.starttime }));
  }
}
