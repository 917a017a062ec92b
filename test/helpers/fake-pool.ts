/**
 * A Pool driven by hand: a fake launcher whose children exec, fail and exit when the test says so, and a
 * fake clock whose timers fire when the test advances it. No process is started.
 */
import type { Clock, Timer } from '../../src/common/clock.js';
import type { ChildExit, ExecOutcome, LaunchedChild, Launcher, LaunchSpec } from '../../src/child/launcher.js';
import type { Logger } from '../../src/observe/log.js';
import { Pool, type PoolEvent, type PoolOptions } from '../../src/pool/pool.js';

export class FakeClock implements Clock {
  private time = 1_000_000;
  private timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];
  private seq = 0;

  now(): number {
    return this.time;
  }

  after(ms: number, fn: () => void): Timer {
    const timer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Timers still to fire. */
  pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Move time forward, firing due timers in order (and letting promise reactions run after each). */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    await settle();
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.time = Math.max(this.time, due.at);
      due.cancelled = true;
      due.fn();
      await settle();
    }
    this.time = end;
    await settle();
  }
}

/** Let every pending promise reaction run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeChild implements LaunchedChild {
  readonly signals: (number | NodeJS.Signals)[] = [];
  readonly exec: Promise<ExecOutcome>;
  readonly exited: Promise<ChildExit>;
  /** The fake knows its pid at once, as a launcher that forks synchronously would. */
  readonly forked: Promise<number>;
  private resolveExec!: (outcome: ExecOutcome) => void;
  private resolveExit!: (exit: ChildExit) => void;
  private done = false;
  /** A launcher that restarts by itself (FakeLauncher.selfRestart) gives its children these. */
  restartOnExit?: (armed: boolean) => void;
  replacement?: { take(onLine: (stream: 'stdout' | 'stderr', line: string) => void): LaunchedChild };
  /** Every restartOnExit call, in order, and the signals among them (`arming + signals` history). */
  readonly history: string[] = [];
  armed = false;
  /** Makes the replacement when an armed child exits (set by a self-restarting launcher). */
  onArmedExit?: () => FakeChild;

  constructor(readonly pid: number) {
    this.forked = Promise.resolve(pid);
    this.exec = new Promise((resolve) => {
      this.resolveExec = resolve;
    });
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  signal(signal: number | NodeJS.Signals): void {
    this.signals.push(signal);
    this.history.push(`signal ${signal}`);
  }

  /** The helper exec'd the app. */
  execOk(): void {
    this.resolveExec({ ok: true });
  }

  /** The helper reported on its status pipe why it could not exec, then exited 127. */
  execFails(reason: string): void {
    this.resolveExec({ ok: false, reason });
    this.exit(127);
  }

  /** Spawn failed without a process (the 'error' event without 'exit'). */
  spawnFails(reason: string): void {
    this.resolveExec({ ok: false, reason: `spawn failed: ${reason}` });
    this.resolveExit({ code: null, signal: null });
    this.done = true;
  }

  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.done) return;
    this.done = true;
    if (this.armed && this.onArmedExit !== undefined) {
      const next = this.onArmedExit();
      this.replacement = { take: () => next };
    }
    this.resolveExec({ ok: true });
    this.resolveExit({ code, signal });
  }

  get alive(): boolean {
    return !this.done;
  }
}

export class FakeLauncher {
  readonly children: FakeChild[] = [];
  /** Make the next launches fail at once (pid -1, as a synchronous EMFILE throw does); null: launch normally. */
  failNext: (string | null)[] = [];
  /** Restart an armed child by itself when it dies, as the resident spawner does (restartOnExit). */
  selfRestart = false;
  /** Children launched by the pool (not replacements the launcher started by itself). */
  launches = 0;
  /** Applied to every child made (the harness's obedient children). */
  decorate: (child: FakeChild) => void = () => undefined;
  private nextPid = 7_000_000;

  readonly launch: Launcher = (_spec: LaunchSpec) => {
    this.launches++;
    const failure = this.failNext.shift() ?? null;
    const child = this.make(failure !== null ? -1 : this.nextPid++);
    if (failure !== null) child.spawnFails(failure);
    return child;
  };

  private make(pid: number): FakeChild {
    const child = new FakeChild(pid);
    this.children.push(child);
    if (this.selfRestart) {
      child.restartOnExit = (armed) => {
        child.armed = armed;
        child.history.push(armed ? 'arm' : 'disarm');
      };
      child.onArmedExit = () => this.make(this.nextPid++);
    }
    this.decorate(child);
    return child;
  }

  get last(): FakeChild {
    return this.children[this.children.length - 1]!;
  }

  live(): FakeChild[] {
    return this.children.filter((c) => c.alive && c.pid > 0);
  }
}

export interface Harness {
  pool: Pool;
  clock: FakeClock;
  launcher: FakeLauncher;
  events: PoolEvent[];
  lines: string[];
  giveUps: number[];
  /** Children answer every signal by exiting (as the static responder does on SIGTERM). */
  obedient: boolean;
}

/** Every harness made, so that a test file can check them all (no ignored transition, for one). */
export const harnesses: Harness[] = [];

export function harness(overrides: Partial<PoolOptions> = {}): Harness {
  const clock = new FakeClock();
  const launcher = new FakeLauncher();
  const events: PoolEvent[] = [];
  const lines: string[] = [];
  const giveUps: number[] = [];
  const log =
    (level: string) =>
    (_event: string, message: string, fields: { slot?: number; pid?: number } = {}) => {
      lines.push(`${level} [${fields.slot ?? '-'}:${fields.pid ?? '-'}] ${message}`);
    };
  const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error'), childOutput: () => undefined } as unknown as Logger;
  const h: Harness = { pool: undefined as unknown as Pool, clock, launcher, events, lines, giveUps, obedient: true };
  launcher.decorate = (child) => {
    const signal = child.signal.bind(child);
    child.signal = (s) => {
      signal(s);
      if (h.obedient || s === 'SIGKILL') child.exit(null, typeof s === 'string' ? s : 'SIGTERM');
    };
  };
  const launch: Launcher = (spec, onLine) => launcher.launch(spec, onLine);
  h.pool = new Pool({
    launchSpec: {} as LaunchSpec,
    size: 2,
    policy: { restartDelayMs: 100, maxRestartDelayMs: 1000, stableAfterMs: 10_000 },
    killSignal: 15,
    killTimeoutMs: 5000,
    startCheckMs: 1000,
    logger,
    onGiveUp: (status) => giveUps.push(status),
    onEvent: (event) => events.push(event),
    launch,
    clock,
    random: () => 0.5,
    yieldToEvents: () => new Promise((resolve) => setImmediate(resolve)),
    ...overrides,
  });
  harnesses.push(h);
  return h;
}

/** Start the pool with every child exec'ing and surviving the start check. */
export async function started(h: Harness): Promise<void> {
  const result = h.pool.start();
  // The start launches in batches: let each one exec before the next.
  do {
    await settle();
    for (const child of h.launcher.children) child.execOk();
  } while (h.launcher.children.length < h.pool.snapshot().size); // parked slots start no child
  await settle();
  await h.clock.advance(1000);
  const r = await result;
  if (!r.ok) throw new Error(`start failed: ${r.reason}`);
}
