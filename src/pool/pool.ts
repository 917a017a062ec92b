import { readFileSync } from 'node:fs';
import { launch as realLaunch, type ChildExit, type Launcher, type LaunchSpec, type LaunchedChild } from '../child/launcher.js';
import { describeExit, exitStatus, fullBucket, takeRestart, type RestartBucket, type RestartPolicy } from './restart-policy.js';
import { MAX_PROCS, signalName } from '../options/options.js';
import type { Logger } from '../observe/log.js';
import { liveGroupMembers } from '../child/process-group.js';
import { systemClock, type Clock, type Timer } from '../common/clock.js';
import { decide, transition, type Decision, type Ending, type SlotEvent } from './slot-machine.js';
import type { Next, PoolEvent } from './pool-events.js';
import { formatMs, logPoolEvent } from './pool-log.js';
import type { PoolSnapshot, SlotState } from './pool-snapshot.js';
import { IdleTracker, idleCheckInterval, pickIdle, readCpuTicks, shouldGrow, type Load } from './pool-sizing.js';
import type { QueueSignal } from './queue-watch.js';

export type { SlotState };
export type { PoolEvent };

/** Children launched before the start yields to the event loop, so that a SIGTERM during a big start is handled. */
export const START_BATCH = 32;

/**
 * What a child is to its slot:
 * - `checked`: under start()'s start check; a failure there fails the start instead of restarting;
 * - `serving`: the slot's child;
 * - `incoming`: a replacement under its start check, beside the serving one;
 * - `retiring`: stopped or replaced on purpose; its end restarts nothing.
 */
type Role = 'checked' | 'serving' | 'incoming' | 'retiring';

interface Child {
  process: LaunchedChild;
  startedAt: number;
  role: Role;
  /** Why it was retired (rolling restart, max age, max RSS), for the slot's last-exit record. */
  retireReason?: string;
  ageTimer?: Timer;
  /** Settles when the child has exited and no process of its group is left (php-cgi's workers...). */
  gone?: Promise<void>;
  /** Its launcher restarts it by itself if it dies (see `armIfRestartable`). */
  armed?: boolean;
}

type Replacement = NonNullable<LaunchedChild['replacement']>;
type OnLine = (stream: 'stdout' | 'stderr', line: string) => void;

export interface Slot {
  index: number;
  state: SlotState;
  /** The serving child (or the one being started into the slot). */
  child?: Child;
  /** A replacement under its start check. */
  incoming?: Child;
  restarts: number;
  /** Consecutive fast failures. */
  failures: number;
  bucket: RestartBucket;
  lastExit?: { exit: ChildExit; at: number; reason: string };
  lastError: string | null;
  /** The pending (re)start, and when it is due. */
  timer?: Timer;
  /** Its child is being stopped for idling: the slot is parked once the child is gone. */
  parking?: boolean;
  nextRestartAt: number | null;
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
  /** Every pool event, after the log has it (sd_notify, tests). */
  onEvent?: (event: PoolEvent) => void;
  /** The most children (-F, TTIN): MAX_PROCS unless given. */
  maxProcs?: number;
  /** --min-procs: below `size`, the pool sizes itself between the two (see pool-sizing.ts); default `size`. */
  minProcs?: number;
  /** --idle-timeout (10 s unless given). */
  idleTimeoutMs?: number;
  /** A child's CPU time (idle detection); /proc by default. */
  cpuTicks?: (pid: number) => number | undefined;
  /** Injected by unit tests; the real ones by default. */
  launch?: Launcher;
  clock?: Clock;
  random?: () => number;
  /** Between start batches; setImmediate by default. */
  yieldToEvents?: () => Promise<void>;
}

export type StartResult = { ok: true; pids: number[] } | { ok: false; status: number; reason: string };

/** How often a retired child's process group is looked at until it is empty (only while stopping one). */
const GROUP_POLL_MS = 25;

/** N slots sharing one socket: start, restart with backoff, rolling restart, graceful stop. */
export class Pool {
  readonly slots: Slot[] = [];
  private stopping = false;
  /** Children that left their slot (replaced, shrunk away, stopped) but have not exited yet. */
  private readonly retired = new Set<Child>();
  /** Replacements the launcher started by itself that a slot took (see armIfRestartable). */
  private readonly adopted = new WeakSet<Replacement>();
  private readonly clock: Clock;
  private readonly launcher: Launcher;
  private readonly maxProcs: number;
  /** The bounds of the pool's size: equal in a static pool; TTIN/TTOU move them. */
  private min: number;
  private max: number;
  /** --min-procs below -F: slots above the current size are parked, grown into when connections wait. */
  readonly dynamic: boolean;
  private readonly idle = new IdleTracker();
  private idleTimer?: Timer;
  private lastGrowAt = -Infinity;
  private lastQueuedAt = -Infinity;

  constructor(private readonly options: PoolOptions) {
    this.clock = options.clock ?? systemClock;
    this.launcher = options.launch ?? realLaunch;
    this.maxProcs = options.maxProcs ?? MAX_PROCS;
    this.max = options.size;
    this.min = Math.min(options.minProcs ?? options.size, options.size);
    this.dynamic = this.min < this.max;
  }

  private emit(event: PoolEvent): void {
    logPoolEvent(this.options.logger, this.options.policy, event);
    this.options.onEvent?.(event);
  }

  private move(slot: Slot, event: SlotEvent): boolean {
    const next = transition(slot.state, event);
    if (next === undefined) {
      this.emit({ type: 'ignored transition', slot: slot.index, state: slot.state, event });
      return false;
    }
    slot.state = next;
    return true;
  }

  private sleep(ms: number): Promise<undefined> {
    return new Promise((resolve) => this.clock.after(ms, () => resolve(undefined)));
  }

  /**
   * Start every slot and check each child, not only the first (spawn-fcgi's bug): each must exec and
   * not fail during the start check. An exit 0 there is a planned recycle (php-cgi that served its
   * PHP_FCGI_MAX_REQUESTS already): restarted, not a failure. On any failure the others are stopped and
   * the first failure is reported. Children are launched in batches, yielding to the event loop between
   * them, so that a signal during a large start is handled at once.
   */
  async start(): Promise<StartResult> {
    const size = Math.min(this.options.size, this.maxProcs);
    if (size < this.options.size) this.emit({ type: 'scale refused', size, limit: this.maxProcs });
    this.max = size;
    this.min = Math.min(this.min, size);
    for (let i = 0; i < size; i++) this.slots.push(this.newSlot(i));
    // A pool that sizes itself starts its first --min-procs slots; the others wait, parked, for connections.
    for (const slot of this.slots.slice(this.min)) this.move(slot, 'park');
    const startedSlots = this.slots.slice(0, this.min);
    const checks: Promise<StartResult>[] = [];
    let firstFailure: StartResult | undefined;
    for (const slot of startedSlots) {
      if (this.stopping || firstFailure !== undefined) break;
      const check = this.startChecked(slot);
      check.then((r) => {
        if (!r.ok) firstFailure ??= r;
      });
      checks.push(check);
      if (checks.length % START_BATCH === 0) await (this.options.yieldToEvents ?? yieldToEvents)();
    }
    const results = await Promise.all(checks);
    if (this.stopping) return { ok: false, status: 0, reason: 'stopped during start-up' };
    const failed = results.find((r) => !r.ok);
    if (failed !== undefined) {
      await this.stop();
      return failed;
    }
    // A slot whose first child exited 0 during its check reports the child that serves it now.
    return {
      ok: true,
      pids: startedSlots.map((slot, i) =>
        slot.child !== undefined && slot.child.process.pid > 0 ? slot.child.process.pid : (results[i] as { pids: number[] }).pids[0]!,
      ),
    };
  }

  private newSlot(index: number): Slot {
    return { index, state: 'stopped', restarts: 0, failures: 0, bucket: fullBucket(this.clock.now()), lastError: null, nextRestartAt: null };
  }

  private async startChecked(slot: Slot): Promise<StartResult> {
    const child = this.spawn(slot, 'checked', 'start');
    const outcome = await child.process.exec;
    if (!outcome.ok) {
      await child.process.exited;
      return { ok: false, status: 255, reason: `could not start: ${outcome.reason}` };
    }
    const early = await Promise.race([child.process.exited, this.sleep(this.options.startCheckMs)]);
    // Still up: from now on its end is the slot's business. Ended: it stays 'checked' whichever of this
    // and its onEnd() runs first, so that a failure here is reported, not restarted.
    if (early === undefined && child.role === 'checked') {
      child.role = 'serving';
      this.armIfRestartable(slot, child);
    }
    if (early !== undefined && !(early.code === 0 && early.signal === null)) {
      const reason = early.signal !== null ? `child signaled: ${early.signal}` : `child exited with: ${early.code}`;
      return { ok: false, status: exitStatus(early), reason };
    }
    return { ok: true, pids: [child.process.pid] };
  }

  /**
   * Launch a child into a slot (as its serving child, or as a replacement) and wire its end to the slot;
   * `start` is the launcher's own replacement of the slot's last child when it started one (see onEnd).
   */
  private spawn(
    slot: Slot,
    role: Role,
    cause: 'start' | 'restart' | 'grow' | 'replace',
    start: (onLine: OnLine) => LaunchedChild = (onLine) => this.launcher(this.options.launchSpec, onLine),
  ): Child {
    const { logger } = this.options;
    const launched: LaunchedChild = start((stream, line) => logger.childOutput(slot.index, launched.pid, stream, line));
    const child: Child = { process: launched, startedAt: this.clock.now(), role };
    if (role === 'incoming') {
      slot.incoming = child;
    } else {
      slot.child = child;
      this.move(slot, 'spawn');
      slot.nextRestartAt = null;
    }
    whenForked(launched, (pid) => {
      if (cause !== 'replace') this.emit({ type: 'spawned', slot: slot.index, pid, cause: cause === 'start' ? 'start' : cause });
      if (this.options.maxAgeMs !== undefined && child.gone === undefined) {
        const age = Math.round(this.options.maxAgeMs * (1 + 0.1 * (this.options.random ?? Math.random)()));
        child.ageTimer = this.clock.after(age, () => void this.recycle(slot, child, `max age ${formatMs(this.options.maxAgeMs!)}`));
      }
    });
    launched.exec.then((outcome) => {
      if (outcome.ok && slot.child === child && slot.state === 'starting') this.move(slot, 'exec ok');
    });
    // The exit can be seen before the status pipe's end: classify it once the helper's report is in.
    Promise.all([launched.exited, launched.exec]).then(([exit, outcome]) => {
      const ending: Ending = outcome.ok
        ? { kind: 'exit', exit, uptimeMs: this.clock.now() - child.startedAt }
        : { kind: 'could not start', reason: outcome.reason, exit: launched.pid > 0 ? exit : null };
      const replacement = launched.replacement;
      this.onEnd(slot, child, ending, replacement);
      // The launcher restarted it by itself, and the slot did not take the new child: it goes.
      if (replacement !== undefined && !this.adopted.has(replacement)) this.discard(slot, replacement);
    });
    if (role === 'serving') this.armIfRestartable(slot, child);
    return child;
  }

  /**
   * Let the launcher restart this child by itself the moment it dies (as multiwatch does: a waitpid and a
   * fork, not a round trip through this event loop), when this pool would answer its death with a restart
   * at once anyway: its slot's serving child, no fast failure in a row, a restart left in the rate bound,
   * nothing stopping or replacing it. Its end still comes to onEnd, which adopts the new child, or retires
   * it if the decision differs after all (a race with a retire, the rate bound spent meanwhile).
   */
  private armIfRestartable(slot: Slot, child: Child): void {
    if (child.process.restartOnExit === undefined) return;
    const armed =
      !this.stopping &&
      child.role === 'serving' &&
      slot.child === child &&
      slot.incoming === undefined &&
      slot.failures === 0 &&
      takeRestart(slot.bucket, this.clock.now()).waitMs === 0;
    if (armed !== (child.armed ?? false)) this.setArmed(child, armed);
  }

  private setArmed(child: Child, armed: boolean): void {
    child.armed = armed;
    child.process.restartOnExit?.(armed);
  }

  /** Not to be restarted by its launcher: before any signal sent on purpose (stop, replace, shrink...). */
  private disarm(child: Child): void {
    if (child.armed === true) this.setArmed(child, false);
  }

  /** A child the launcher started in place of a dead one that the slot did not take: stopped like any retired child. */
  private discard(slot: Slot, replacement: Replacement): void {
    const { logger } = this.options;
    const launched: LaunchedChild = replacement.take((stream, line) => logger.childOutput(slot.index, launched.pid, stream, line));
    const child: Child = { process: launched, startedAt: this.clock.now(), role: 'retiring' };
    void this.retire(child, 'a restart the slot did not want');
    Promise.all([launched.exited, launched.exec]).then(([exit]) => {
      if (launched.pid > 0) this.emit({ type: 'retired', slot: slot.index, pid: launched.pid, reason: describeExit(exit) });
    });
  }

  /** A child ended: record it, and unless it was retired or its start check reports it, decide what follows. */
  private onEnd(slot: Slot, child: Child, ending: Ending, replacement?: Replacement): void {
    child.ageTimer?.cancel();
    const now = this.clock.now();
    const pid = child.process.pid;
    const exit: ChildExit = ending.exit ?? { code: null, signal: null };
    const reason = ending.kind === 'could not start' ? `could not start: ${ending.reason}` : describeExit(ending.exit);
    if (child.role === 'retiring' || (slot.child !== child && slot.incoming !== child)) {
      if (child.retireReason !== undefined && pid > 0) slot.lastExit = { exit, at: now, reason: `${child.retireReason} (${reason})` };
      this.emit({ type: 'retired', slot: slot.index, pid, reason });
      return;
    }
    if (child.role === 'incoming') return; // replace() reports it
    slot.child = undefined;
    slot.lastExit = { exit, at: now, reason };
    const uptimeMs = now - child.startedAt;
    const failedCheck = child.role === 'checked' && !(ending.kind === 'exit' && ending.exit.code === 0 && ending.exit.signal === null);
    if (this.stopping || failedCheck) {
      this.move(slot, 'stop without child');
      this.emitEnd(slot, child, ending, reason, uptimeMs, { action: 'none' });
      return;
    }
    const decision = decide(ending, slot, this.options.policy, now, this.options.random);
    this.carryOut(slot, child, ending, reason, uptimeMs, decision, replacement);
  }

  private emitEnd(slot: Slot, child: Child, ending: Ending, reason: string, uptimeMs: number, next: Next): void {
    const pid = child.process.pid;
    if (ending.kind === 'could not start') {
      this.emit({ type: 'spawn failed', slot: slot.index, pid: pid > 0 ? pid : null, reason: ending.reason, uptimeMs, next });
    } else {
      this.emit({ type: 'exited', slot: slot.index, pid, exit: ending.exit, reason, uptimeMs, next });
    }
  }

  private carryOut(slot: Slot, child: Child, ending: Ending, reason: string, uptimeMs: number, decision: Decision, replacement?: Replacement): void {
    slot.failures = decision.failures;
    if (ending.kind === 'could not start') slot.lastError = reason;
    else if (decision.next === 'restart' && decision.why === 'planned') slot.lastError = null;
    else slot.lastError = reason;
    if (decision.next === 'give up') {
      this.move(slot, 'ended, give up');
      this.emitEnd(slot, child, ending, reason, uptimeMs, { action: 'give up', failures: decision.failures });
      const pid = child.process.pid;
      this.emit({
        type: 'gave up',
        slot: slot.index,
        pid: pid > 0 ? pid : null,
        failures: decision.failures,
        maxFailures: this.options.policy.maxFailures!,
        reason,
        status: decision.status,
      });
      this.options.onGiveUp(decision.status);
      return;
    }
    slot.bucket = decision.bucket;
    this.emitEnd(slot, child, ending, reason, uptimeMs, {
      action: 'restart',
      why: decision.why,
      delayMs: decision.delayMs,
      rateBound: decision.rateBound,
      failures: decision.failures,
    });
    this.scheduleRestart(slot, decision.delayMs, reason, replacement);
  }

  private scheduleRestart(slot: Slot, delayMs: number, reason: string, replacement?: Replacement): void {
    slot.timer?.cancel();
    if (delayMs > 0) {
      this.move(slot, 'ended, back off');
      slot.nextRestartAt = this.clock.now() + delayMs;
      this.emit({ type: 'backing off', slot: slot.index, delayMs, failures: slot.failures, reason });
    } else {
      this.move(slot, 'ended, restart now');
      slot.nextRestartAt = this.clock.now();
      if (replacement !== undefined && this.restartable(slot)) {
        // The launcher has started it already: the restart is done.
        this.adopted.add(replacement);
        slot.timer?.cancel();
        slot.timer = undefined;
        slot.restarts++;
        this.spawn(slot, 'serving', 'restart', (onLine) => replacement.take(onLine));
        return;
      }
    }
    this.armRestart(slot, delayMs);
  }

  /** Nothing is in the way of a (re)start of the slot now. */
  private restartable(slot: Slot): boolean {
    return !this.stopping && this.slots.includes(slot) && slot.child === undefined && slot.incoming === undefined;
  }

  private armRestart(slot: Slot, delayMs: number): void {
    slot.timer?.cancel();
    // Never spawn from inside the exit callback: spawning there, death after death, starves the event loop.
    slot.timer = this.clock.after(delayMs, () => {
      slot.timer = undefined;
      // A replacement under its check takes the slot if it passes; replace() re-arms this if it fails.
      if (!this.restartable(slot)) return;
      slot.restarts++;
      this.spawn(slot, 'serving', 'restart');
    });
  }

  /**
   * Send the kill signal to a child's process group, then SIGKILL to the group if anything of it is still
   * there after the kill timeout. `gone` settles when the child has exited and its group is empty: a
   * php-cgi master may exit before the worker that is finishing a request. A child that never existed
   * (spawn failed) is gone at once.
   */
  private retire(child: Child, reason?: string): Promise<void> {
    if (child.gone !== undefined) return child.gone;
    this.disarm(child);
    child.role = 'retiring';
    child.retireReason = reason;
    child.ageTimer?.cancel();
    const { pid } = child.process;
    if (pid > 0) {
      child.gone = this.killAndWait(child, pid);
    } else {
      // Not forked yet (its launch is in flight) or never: the kill waits for the pid, if one comes.
      this.retired.add(child);
      child.gone = child.process.forked.then((forked) => {
        if (forked > 0) return this.killAndWait(child, forked);
        this.retired.delete(child);
        return child.process.exited.then(() => undefined);
      });
    }
    return child.gone;
  }

  private killAndWait(child: Child, pid: number): Promise<void> {
    this.retired.add(child);
    child.process.signal(this.options.killSignal);
    let killed = false;
    const timer = this.clock.after(this.options.killTimeoutMs, () => {
      killed = true;
      this.emit({ type: 'kill escalated', pid, signal: signalName(this.options.killSignal), timeoutMs: this.options.killTimeoutMs });
      child.process.signal('SIGKILL');
    });
    return child.process.exited.then(async () => {
      for (let members = liveGroupMembers(pid); members.length > 0; members = liveGroupMembers(pid)) {
        if (killed) child.process.signal('SIGKILL');
        await this.sleep(GROUP_POLL_MS);
      }
      timer.cancel();
      this.retired.delete(child);
    });
  }

  /** Stop every child with the kill signal, escalate after the timeout, and wait until all are gone. */
  async stop(): Promise<void> {
    const first = !this.stopping;
    this.stopping = true;
    if (first) this.emit({ type: 'stopping', children: this.livePids().length });
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    const waits: Promise<unknown>[] = [];
    for (const slot of this.slots) {
      slot.timer?.cancel();
      slot.timer = undefined;
      slot.nextRestartAt = null;
      if (slot.incoming !== undefined) waits.push(this.retire(slot.incoming));
      const child = slot.child;
      if (child !== undefined) {
        this.move(slot, 'stop with child');
        waits.push(
          this.retire(child).then(() => {
            if (slot.child === child) slot.child = undefined;
            if (slot.state === 'stopping') this.move(slot, 'gone');
          }),
        );
      } else {
        this.move(slot, 'stop without child');
      }
    }
    for (const child of this.retired) waits.push(this.retire(child));
    await Promise.all(waits);
    if (first) this.emit({ type: 'stopped' });
  }

  /** A second stop request: no more waiting (stop() has retired, and so disarmed, every child). */
  killNow(): void {
    for (const slot of this.slots) {
      slot.child?.process.signal('SIGKILL');
      slot.incoming?.process.signal('SIGKILL');
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
   * A slot without a running child (backing off) is left to its own restart, which runs the new program.
   */
  async rollingRestart(): Promise<boolean> {
    for (const slot of [...this.slots]) {
      if (this.stopping) return false;
      if (!this.slots.includes(slot) || slot.state !== 'running') continue;
      if (!(await this.replace(slot, 'rolling restart'))) return false;
    }
    return true;
  }

  /** Replace one child because of its age or memory; nothing happens if its slot is already being replaced. */
  async recycle(slot: Slot, child: Child, reason: string): Promise<void> {
    if (this.stopping || slot.child !== child || slot.incoming !== undefined || slot.state !== 'running') return;
    this.emit({ type: 'recycling', slot: slot.index, pid: child.process.pid, reason });
    await this.replace(slot, `recycled: ${reason}`);
  }

  /**
   * Start the new child first, wait until it has exec'd and passed the start check, then retire the old one
   * with the kill signal. If the new one fails, the old one keeps serving. A new one that exits 0 during the
   * check did start: it takes over and its slot restarts it as any planned exit.
   */
  private async replace(slot: Slot, reason: string): Promise<boolean> {
    if (slot.incoming !== undefined) return false;
    const old = slot.child;
    const oldPid = old !== undefined && old.process.pid > 0 ? old.process.pid : null;
    if (old !== undefined) this.disarm(old); // its end now waits for this replacement
    const fresh = this.spawn(slot, 'incoming', 'replace');
    let freshPid: number | null = null;
    whenForked(fresh.process, (pid) => {
      freshPid = pid;
      this.emit({ type: 'replacing', slot: slot.index, pid, oldPid, reason });
    });
    const outcome = await fresh.process.exec;
    const early = outcome.ok ? await Promise.race([fresh.process.exited, this.sleep(this.options.startCheckMs)]) : await fresh.process.exited;
    if (slot.incoming === fresh) slot.incoming = undefined;
    if (this.stopping || !this.slots.includes(slot)) {
      void this.retire(fresh);
      return false;
    }
    const cleanExit = early !== undefined && early.code === 0 && early.signal === null;
    if (!outcome.ok || (early !== undefined && !cleanExit)) {
      const why = !outcome.ok ? outcome.reason : describeExit(early!);
      slot.lastError = `${reason}: ${why}`;
      this.emit({ type: 'replace failed', slot: slot.index, pid: freshPid, reason, why, oldKeepsServing: old !== undefined && slot.child === old });
      void this.retire(fresh);
      // The old child ended meanwhile and its restart was held back for this replacement: start it now.
      if (slot.child === undefined && slot.timer === undefined) this.armRestart(slot, 0);
      else if (old !== undefined && slot.child === old) this.armIfRestartable(slot, old);
      return false;
    }
    // The old child may have ended meanwhile, its slot waiting for a restart: the new one takes its place.
    slot.timer?.cancel();
    slot.timer = undefined;
    slot.nextRestartAt = null;
    fresh.role = 'serving';
    slot.child = fresh;
    this.move(slot, 'replaced');
    if (old !== undefined && old !== fresh) void this.retire(old, reason);
    slot.restarts++;
    slot.failures = 0;
    slot.lastError = null;
    this.emit({ type: 'replaced', slot: slot.index, pid: fresh.process.pid, oldPid, reason });
    this.armIfRestartable(slot, fresh);
    if (early !== undefined) {
      // It exited 0 during the check (its onEnd was held back while it was incoming): a planned exit.
      this.onEnd(slot, fresh, { kind: 'exit', exit: early, uptimeMs: this.clock.now() - fresh.startedAt });
    }
    return true;
  }

  /**
   * SIGTTIN: one more slot, up to maxProcs. It moves the upper bound: a static pool (min = max) stays static
   * and starts a child; a pool that sizes itself gets a parked slot to grow into.
   */
  grow(): void {
    if (this.stopping) return;
    if (this.slots.length >= this.maxProcs) {
      this.emit({ type: 'scale refused', size: this.slots.length, limit: this.maxProcs });
      return;
    }
    const slot = this.newSlot(this.slots.length);
    this.slots.push(slot);
    const isStatic = this.min === this.max;
    this.max++;
    if (isStatic) this.min++;
    const bounds = this.dynamic ? { min: this.min, max: this.max } : {};
    if (!isStatic) {
      this.move(slot, 'park');
      this.emit({ type: 'scaled', direction: 'grow', size: this.activeCount(), slot: slot.index, pid: null, ...bounds });
      return;
    }
    const child = this.spawn(slot, 'serving', 'grow');
    this.emit({
      type: 'scaled',
      direction: 'grow',
      size: this.dynamic ? this.activeCount() : this.slots.length,
      slot: slot.index,
      pid: child.process.pid > 0 ? child.process.pid : null,
      ...bounds,
    });
  }

  /** SIGTTOU: one slot less (never below one): the upper bound, and the lower one with it if it was above. */
  shrink(): void {
    if (this.stopping || this.slots.length <= 1) return;
    this.max--;
    this.min = Math.min(this.min, this.max);
    const slot = this.slots.pop()!;
    slot.timer?.cancel();
    slot.timer = undefined;
    slot.nextRestartAt = null;
    if (slot.incoming !== undefined) void this.retire(slot.incoming);
    const child = slot.child;
    if (child !== undefined) {
      this.move(slot, 'stop with child');
      void this.retire(child).then(() => {
        if (slot.child === child) slot.child = undefined;
        if (slot.state === 'stopping') this.move(slot, 'gone');
      });
    } else {
      this.move(slot, 'stop without child');
    }
    if (this.dynamic) this.emit({ type: 'scaled', direction: 'shrink', size: this.activeCount(), slot: slot.index, pid: null, min: this.min, max: this.max });
    else this.emit({ type: 'scaled', direction: 'shrink', size: this.slots.length, slot: slot.index, pid: null });
  }

  /** Slots meant to have a child now: all but the parked ones and those being parked. */
  private activeCount(): number {
    return this.slots.filter((s) => s.state !== 'parked' && !s.parking).length;
  }

  private load(): Load {
    const count = (state: SlotState) => this.slots.filter((s) => s.state === state && !s.parking).length;
    return {
      active: this.activeCount(),
      starting: count('starting'),
      running: count('running'),
      backingOff: count('backing off'),
      parking: this.slots.filter((s) => s.parking).length,
    };
  }

  private bounds() {
    return { min: this.min, max: this.max, idleTimeoutMs: this.options.idleTimeoutMs ?? 10_000 };
  }

  /** The queue watcher saw a connection wait (queue-watch.ts): grow by one into a parked slot if the sizing says so. */
  onQueue(signal: QueueSignal): void {
    if (this.stopping || !this.dynamic) return;
    const now = this.clock.now();
    this.lastQueuedAt = now;
    if (!shouldGrow(signal, this.load(), this.bounds(), now, this.lastGrowAt)) return;
    const slot = this.slots.find((s) => s.state === 'parked');
    if (slot === undefined) return;
    this.lastGrowAt = now;
    const child = this.spawn(slot, 'serving', 'grow');
    const pid = child.process.pid > 0 ? child.process.pid : null;
    this.emit({ type: 'scaled', direction: 'grow', why: 'queued', size: this.activeCount(), slot: slot.index, pid, min: this.min, max: this.max });
    this.armIdleCheck();
  }

  /** While the pool is above its minimum, look for idle children every half idle timeout; at the minimum, nothing runs. */
  private armIdleCheck(): void {
    if (this.idleTimer !== undefined || this.stopping || !this.dynamic) return;
    if (this.activeCount() <= this.min) return;
    this.idleTimer = this.clock.after(idleCheckInterval(this.bounds().idleTimeoutMs), () => {
      this.idleTimer = undefined;
      this.checkIdle();
      this.armIdleCheck();
    });
  }

  private checkIdle(): void {
    if (this.stopping) return;
    const now = this.clock.now();
    const running = this.slots.filter((s) => s.state === 'running' && !s.parking && s.child !== undefined && s.child.process.pid > 0);
    const children = running.map((s) => ({ slot: s.index, pid: s.child!.process.pid }));
    const read = this.options.cpuTicks ?? readCpuTicks;
    this.idle.observe(
      children.map((c) => ({ pid: c.pid, ticks: read(c.pid) })),
      now,
    );
    const index = pickIdle(children, this.idle, this.load(), this.bounds(), now, this.lastQueuedAt);
    if (index === undefined) return;
    const slot = this.slots.find((s) => s.index === index)!;
    this.park(slot);
  }

  /** Stop an idle slot's child with the kill signal (it finishes what it serves); the slot waits, parked. */
  private park(slot: Slot): void {
    const child = slot.child!;
    slot.parking = true;
    slot.timer?.cancel();
    slot.timer = undefined;
    slot.nextRestartAt = null;
    if (slot.incoming !== undefined) void this.retire(slot.incoming);
    this.move(slot, 'stop with child');
    this.emit({
      type: 'scaled',
      direction: 'shrink',
      why: 'idle',
      size: this.activeCount(),
      slot: slot.index,
      pid: child.process.pid,
      min: this.min,
      max: this.max,
    });
    void this.retire(child, `idle ${formatMs(this.bounds().idleTimeoutMs)}`).then(() => {
      slot.parking = false;
      if (slot.child === child) slot.child = undefined;
      if (slot.state === 'stopping') this.move(slot, this.stopping || !this.slots.includes(slot) ? 'gone' : 'park');
    });
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
      size: this.dynamic ? this.activeCount() : this.slots.length,
      min: this.min,
      max: this.max,
      stopping: this.stopping,
      slots: this.slots.map((slot) => {
        const pid = slot.child !== undefined && slot.child.process.pid > 0 ? slot.child.process.pid : null;
        return {
          index: slot.index,
          state: slot.state,
          pid,
          startedAt: pid === null ? null : slot.child!.startedAt,
          restarts: slot.restarts,
          failures: slot.failures,
          lastExit:
            slot.lastExit === undefined
              ? null
              : {
                  code: slot.lastExit.exit.code,
                  signal: slot.lastExit.exit.signal,
                  at: slot.lastExit.at,
                  reason: slot.lastExit.reason,
                },
          nextRestartAt: slot.nextRestartAt,
          lastError: slot.lastError,
        };
      }),
    };
  }

  livePids(): number[] {
    return this.slots.flatMap((s) => (s.child !== undefined && s.child.process.pid > 0 ? [s.child.process.pid] : []));
  }
}

const yieldToEvents = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function readRssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** Run `then` with the child's pid: at once when the launcher knew it at once, else when it is forked. */
function whenForked(child: LaunchedChild, then: (pid: number) => void): void {
  if (child.pid > 0) then(child.pid);
  else
    child.forked.then((pid) => {
      if (pid > 0) then(pid);
    });
}
