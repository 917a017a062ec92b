import { readFileSync } from 'node:fs';
import { launch, type ChildExit, type LaunchSpec, type LaunchedChild } from './launcher.js';
import { classifyExit, describeExit, exitStatus, restartDelay, type RestartPolicy } from './restart-policy.js';
import { signalName } from './options.js';
import type { Logger } from './log.js';
import { liveGroupMembers } from './process-group.js';

import type { PoolSnapshot, SlotState } from './pool-snapshot.js';

export type { SlotState };

interface Child {
  process: LaunchedChild;
  startedAt: number;
  /** Being replaced or stopped on purpose: its exit is expected and restarts nothing. */
  retiring: boolean;
  /** The helper could not set up or exec the app; the reason it gave. */
  setupFailure?: string;
  /** Why it was retired (rolling restart, max age, max RSS), for the slot's last-exit record. */
  retireReason?: string;
  ageTimer?: NodeJS.Timeout;
  /** Under the start check of start(): its exit is reported by start(), not restarted. */
  checking?: boolean;
  /** Settles when the child has exited and no process of its group is left (php-cgi's workers...). */
  gone?: Promise<void>;
}

export interface Slot {
  index: number;
  state: SlotState;
  child?: Child;
  restarts: number;
  /** Consecutive fast failures. */
  failures: number;
  lastExit?: { exit: ChildExit; at: number; reason: string };
  timer?: NodeJS.Timeout;
  /** A replacement is being started (rolling restart or recycling). */
  replacing: boolean;
  /** The child being replaced, still serving until its replacement has started. */
  outgoing?: Child;
}

export interface PoolOptions {
  launchSpec: LaunchSpec;
  size: number;
  policy: RestartPolicy;
  killSignal: number;
  killTimeoutMs: number;
  startCheckMs: number;
  /** Recycle each child after this long, plus up to 10 % jitter so that they do not all go at once. */
  maxAgeMs?: number;
  logger: Logger;
  /** The pool gave up on a crash-looping slot (--max-failures): the supervisor should stop with this status. */
  onGiveUp: (status: number) => void;
}

export type StartResult = { ok: true; pids: number[] } | { ok: false; status: number; reason: string };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** How often a retired child's process group is looked at until it is empty (only while stopping one). */
const GROUP_POLL_MS = 25;

/** N slots sharing one socket: start, restart with backoff, rolling restart, graceful stop. */
export class Pool {
  readonly slots: Slot[] = [];
  private stopping = false;
  /** Children that left their slot (replaced, shrunk away) but have not exited yet. */
  private readonly retired = new Set<Child>();

  constructor(private readonly options: PoolOptions) {}

  /**
   * Start every slot and check each child, not only the first (spawn-fcgi's bug): each must exec and
   * stay up for the start check. On any failure the others are stopped and the first failure is reported.
   */
  async start(): Promise<StartResult> {
    for (let i = 0; i < this.options.size; i++) this.slots.push(this.newSlot(i));
    const results = await Promise.all(this.slots.map((slot) => this.startChecked(slot)));
    if (this.stopping) return { ok: false, status: 0, reason: 'stopped during start-up' };
    const failed = results.find((r) => !r.ok);
    if (failed !== undefined) {
      await this.stop();
      return failed;
    }
    return { ok: true, pids: this.slots.map((s) => s.child!.process.pid) };
  }

  private newSlot(index: number): Slot {
    return { index, state: 'stopped', restarts: 0, failures: 0, replacing: false };
  }

  private async startChecked(slot: Slot): Promise<StartResult> {
    const child = this.spawn(slot);
    child.checking = true;
    const outcome = await child.process.exec;
    if (!outcome.ok) {
      await child.process.exited;
      return { ok: false, status: 255, reason: `could not start: ${outcome.reason}` };
    }
    const early = await Promise.race([child.process.exited, sleep(this.options.startCheckMs).then(() => undefined)]);
    if (early !== undefined) {
      const reason = early.signal !== null ? `child signaled: ${early.signal}` : `child exited with: ${early.code}`;
      return { ok: false, status: exitStatus(early), reason };
    }
    child.checking = false;
    return { ok: true, pids: [child.process.pid] };
  }

  /** Launch a child into a slot and wire its exit to the restart policy. */
  private spawn(slot: Slot): Child {
    const { logger } = this.options;
    const launched = launch(this.options.launchSpec, (stream, line) => logger.childOutput(slot.index, launched.pid, stream, line));
    const child: Child = { process: launched, startedAt: Date.now(), retiring: false };
    slot.child = child;
    slot.state = 'starting';
    launched.exec.then((outcome) => {
      if (!outcome.ok) child.setupFailure = outcome.reason;
      else if (slot.child === child && slot.state === 'starting') slot.state = 'running';
    });
    // The exit can be seen before the status pipe's end: classify it once the helper's report is in.
    Promise.all([launched.exited, launched.exec]).then(([exit]) => this.onExit(slot, child, exit));
    if (this.options.maxAgeMs !== undefined) {
      const age = Math.round(this.options.maxAgeMs * (1 + 0.1 * Math.random()));
      child.ageTimer = setTimeout(() => void this.recycle(slot, child, `max age ${formatMs(this.options.maxAgeMs!)}`), age);
    }
    return child;
  }

  private onExit(slot: Slot, child: Child, exit: ChildExit): void {
    const { logger, policy } = this.options;
    const pid = child.process.pid;
    if (child.ageTimer !== undefined) clearTimeout(child.ageTimer);
    const uptimeMs = Date.now() - child.startedAt;
    const reason = child.setupFailure !== undefined ? `could not start: ${child.setupFailure}` : describeExit(exit);
    if (slot.child !== child) {
      if (child.retireReason !== undefined) slot.lastExit = { exit, at: Date.now(), reason: `${child.retireReason} (${reason})` };
      logger.debug('retired', `retired child exited (${reason})`, { slot: slot.index, pid });
      return;
    }
    slot.child = undefined;
    slot.lastExit = { exit, at: Date.now(), reason };
    if (this.stopping || child.retiring || child.checking === true) {
      slot.state = 'stopped';
      return;
    }
    const kind = child.setupFailure !== undefined ? 'fast-crash' : classifyExit(exit, uptimeMs, policy);
    if (kind === 'planned') {
      logger.info('exit', `child exited with: 0 after ${uptimeMs} ms (planned), restarting`, { slot: slot.index, pid });
      this.restart(slot, 0);
      return;
    }
    if (kind === 'stable-crash') {
      slot.failures = 0;
      logger.warn('exit', `child died (${reason}) after ${formatMs(uptimeMs)}, restarting now`, { slot: slot.index, pid });
      this.restart(slot, 0);
      return;
    }
    slot.failures++;
    if (policy.maxFailures !== undefined && slot.failures >= policy.maxFailures) {
      logger.error('give-up', `child failed ${slot.failures} times in a row (last: ${reason}): giving up (--max-failures ${policy.maxFailures})`, { slot: slot.index, pid });
      slot.state = 'stopped';
      this.options.onGiveUp(child.setupFailure !== undefined ? 255 : exitStatus(exit) || 1);
      return;
    }
    const delay = restartDelay(slot.failures, policy);
    const capped = delay >= policy.maxRestartDelayMs * 0.8 ? ' (at the cap: still crash-looping, still retrying)' : '';
    const when = delay === 0 ? `restarting now (a next fast failure waits ${restartDelay(2, policy, () => 0.5)} ms)` : `restarting in ${delay} ms${capped}`;
    logger.warn('exit', `child failed after ${formatMs(uptimeMs)} (${reason}), failure ${slot.failures}, ${when}`, { slot: slot.index, pid, delayMs: delay });
    this.restart(slot, delay);
  }

  private restart(slot: Slot, delayMs: number): void {
    const go = () => {
      slot.timer = undefined;
      if (this.stopping || slot.state === 'stopped') return;
      slot.restarts++;
      const child = this.spawn(slot);
      this.options.logger.info('spawn', `child spawned: PID: ${child.process.pid}`, { slot: slot.index, pid: child.process.pid });
    };
    if (delayMs <= 0) {
      // Never from inside the exit callback: spawning there, death after death, starves the event loop
      // (timers late by seconds, and every ChildProcess kept alive).
      slot.timer = setTimeout(go, 0);
      return;
    }
    slot.state = 'backing off';
    slot.timer = setTimeout(go, delayMs);
  }

  /**
   * Send the kill signal to a child's process group, then SIGKILL to the group if anything of it is still
   * there after the kill timeout. `gone` settles when the child has exited and its group is empty: a
   * php-cgi master may exit before the worker that is finishing a request.
   */
  private retire(child: Child, reason?: string): Promise<void> {
    if (child.gone !== undefined) return child.gone;
    child.retiring = true;
    child.retireReason = reason;
    this.retired.add(child);
    const { pid } = child.process;
    child.process.signal(this.options.killSignal);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.options.logger.warn('kill', `child did not exit ${this.options.killTimeoutMs} ms after ${signalName(this.options.killSignal)}: sending SIGKILL to its process group`, { pid });
      child.process.signal('SIGKILL');
    }, this.options.killTimeoutMs);
    child.gone = child.process.exited.then(async () => {
      for (let members = liveGroupMembers(pid); members.length > 0; members = liveGroupMembers(pid)) {
        if (killed) child.process.signal('SIGKILL');
        await sleep(GROUP_POLL_MS);
      }
      clearTimeout(timer);
      this.retired.delete(child);
    });
    return child.gone;
  }

  /** Stop every child with the kill signal, escalate after the timeout, and wait until all are gone. */
  async stop(): Promise<void> {
    this.stopping = true;
    const waits: Promise<unknown>[] = [];
    for (const slot of this.slots) {
      if (slot.timer !== undefined) clearTimeout(slot.timer);
      slot.timer = undefined;
      if (slot.child !== undefined) {
        slot.state = 'stopping';
        waits.push(this.retire(slot.child));
      } else {
        slot.state = 'stopped';
      }
      if (slot.outgoing !== undefined) waits.push(this.retire(slot.outgoing));
    }
    for (const child of this.retired) waits.push(this.retire(child));
    await Promise.all(waits);
  }

  /** A second stop request: no more waiting. */
  killNow(): void {
    for (const slot of this.slots) {
      slot.child?.process.signal('SIGKILL');
      slot.outgoing?.process.signal('SIGKILL');
    }
    for (const child of this.retired) child.process.signal('SIGKILL');
  }

  /** Send a signal to every child as it is (SIGUSR2, multiwatch's convention). */
  forward(signal: NodeJS.Signals): void {
    for (const slot of this.slots) slot.child?.process.signal(signal);
  }

  /**
   * Replace each child in turn (SIGHUP). The socket's accept queue holds connections meanwhile, and the
   * pool never has fewer than N children accepting. Stops at the first replacement that fails to start.
   */
  async rollingRestart(): Promise<boolean> {
    for (const slot of [...this.slots]) {
      if (this.stopping) return false;
      if (!this.slots.includes(slot)) continue;
      if (!(await this.replace(slot, 'rolling restart'))) return false;
    }
    return true;
  }

  /** Replace one child because of its age or memory; nothing happens if its slot is already being replaced. */
  async recycle(slot: Slot, child: Child, reason: string): Promise<void> {
    if (this.stopping || slot.child !== child || slot.replacing) return;
    this.options.logger.info('recycle', `recycling child: ${reason}`, { slot: slot.index, pid: child.process.pid });
    await this.replace(slot, `recycled: ${reason}`);
  }

  /**
   * Start the new child first, wait until it has exec'd and passed the start check, then retire the old one
   * with the kill signal. If the new one fails, the old one keeps serving.
   */
  private async replace(slot: Slot, reason: string): Promise<boolean> {
    if (slot.replacing) return false;
    slot.replacing = true;
    const old = slot.child;
    slot.outgoing = old;
    try {
      if (slot.timer !== undefined) {
        clearTimeout(slot.timer);
        slot.timer = undefined;
      }
      const fresh = this.spawn(slot);
      this.options.logger.info('replace', `${reason}: new child PID: ${fresh.process.pid}${old ? `, replacing ${old.process.pid}` : ''}`, { slot: slot.index, pid: fresh.process.pid });
      const outcome = await fresh.process.exec;
      const early = outcome.ok ? await Promise.race([fresh.process.exited, sleep(this.options.startCheckMs).then(() => undefined)]) : undefined;
      if (!outcome.ok || early !== undefined) {
        const why = !outcome.ok ? outcome.reason : describeExit(early!);
        this.options.logger.error('replace', `${reason}: the new child failed to start (${why})${old ? '; the old one keeps serving' : ''}`, { slot: slot.index, pid: fresh.process.pid });
        if (old !== undefined && !this.stopping) {
          fresh.retiring = true;
          if (slot.timer !== undefined) clearTimeout(slot.timer);
          slot.timer = undefined;
          slot.child = old;
          slot.state = 'running';
        }
        return false;
      }
      if (old !== undefined) this.retire(old, reason);
      slot.restarts++;
      slot.failures = 0;
      return true;
    } finally {
      slot.replacing = false;
      slot.outgoing = undefined;
    }
  }

  /** SIGTTIN: one more slot. */
  grow(): void {
    if (this.stopping) return;
    const slot = this.newSlot(this.slots.length);
    this.slots.push(slot);
    const child = this.spawn(slot);
    this.options.logger.info('scale', `pool grows to ${this.slots.length}: PID: ${child.process.pid}`, { slot: slot.index, pid: child.process.pid });
  }

  /** SIGTTOU: one slot less (never below one). */
  shrink(): void {
    if (this.stopping || this.slots.length <= 1) return;
    const slot = this.slots.pop()!;
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.state = 'stopped';
    if (slot.child !== undefined) {
      const child = slot.child;
      slot.child = undefined;
      this.retire(child);
    }
    this.options.logger.info('scale', `pool shrinks to ${this.slots.length}`, { slot: slot.index });
  }

  /** Children above the memory limit (VmRSS of the child itself, read from /proc) are recycled. */
  checkMemory(maxRssBytes: number): void {
    for (const slot of this.slots) {
      const child = slot.child;
      if (child === undefined || slot.state !== 'running') continue;
      const rss = readRssBytes(child.process.pid);
      if (rss !== undefined && rss > maxRssBytes) {
        void this.recycle(slot, child, `rss ${(rss / 1048576).toFixed(1)} MB > ${(maxRssBytes / 1048576).toFixed(0)} MB`);
      }
    }
  }

  /** A copy of the pool's state for observers. */
  snapshot(): PoolSnapshot {
    return {
      size: this.slots.length,
      stopping: this.stopping,
      slots: this.slots.map((slot) => ({
        index: slot.index,
        state: slot.state,
        pid: slot.child?.process.pid ?? null,
        startedAt: slot.child?.startedAt ?? null,
        restarts: slot.restarts,
        failures: slot.failures,
        lastExit: slot.lastExit === undefined ? null : {
          code: slot.lastExit.exit.code,
          signal: slot.lastExit.exit.signal,
          at: slot.lastExit.at,
          reason: slot.lastExit.reason,
        },
      })),
    };
  }

  livePids(): number[] {
    return this.slots.flatMap((s) => (s.child ? [s.child.process.pid] : []));
  }
}

function readRssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

const formatMs = (ms: number): string => (ms < 10_000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`);
