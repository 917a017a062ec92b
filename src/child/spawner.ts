import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { getSystemErrorName } from 'node:util';
import { lineSplitter, type LineSplitter } from '../common/lines.js';
import type { ChildExit, ExecOutcome, LaunchedChild } from './launcher.js';

type OnLine = (stream: 'stdout' | 'stderr', line: string) => void;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

interface OutputStream {
  decoder: StringDecoder;
  splitter: LineSplitter;
}

/** One child of the spawner (started by an 'S' request, or by the spawner as an armed child's replacement). */
interface Request {
  pid: number;
  /** Where its output lines go; a replacement's lines wait in `held` until the pool takes it. */
  onLine?: OnLine;
  held?: [stream: 'stdout' | 'stderr', line: string][];
  /** Its replacement, when it was armed and the spawner started one as it died. */
  replacement?: { take(onLine: OnLine): LaunchedChild };
  forked: Deferred<number>;
  exec: Deferred<ExecOutcome>;
  exited: Deferred<ChildExit>;
  execDone: boolean;
  exitDone: boolean;
  /** Its output pipes are at EOF ('C'); with exitDone, nothing more comes for it. */
  closed: boolean;
  /** Signals asked for before the pid was known; sent when it is. */
  queued?: (number | NodeJS.Signals)[];
  stdout?: OutputStream;
  stderr?: OutputStream;
}

const FRAME_HEADER = 12;
/** Lines of a replacement's output kept until the pool takes it (it does in the same turn of the event loop). */
const MAX_HELD_LINES = 1000;
const NO_BYTES = Buffer.alloc(0);
const MAX_ERROR_TEXT = 8192;

const SPAWN_ERRORS: Record<string, string> = {
  EAGAIN: 'the process limit is reached (RLIMIT_NPROC, a pids cgroup, or kernel.pid_max)',
  ENOENT: 'the native helper is missing',
  EACCES: 'the native helper is not executable',
  ENOEXEC: 'the native helper is not a program for this machine',
  E2BIG: 'the environment or the arguments are too large',
  EMFILE: 'too many open files in the supervisor',
  ENFILE: 'too many open files in the system',
  ENOMEM: 'out of memory',
};

/** 'spawn failed: CODE (why)' for an error from Node's spawn or an errno code from the spawner. */
export function spawnFailure(error: unknown): ExecOutcome {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const known = code !== undefined ? SPAWN_ERRORS[code] : undefined;
  const what = code ?? (error instanceof Error ? error.message : String(error));
  return { ok: false, reason: `spawn failed: ${what}${known !== undefined ? ` (${known})` : ''}` };
}

/** A child that never existed: pid -1, `exec` reports why, `exited` settles with it. */
export function failedChild(failure: Promise<ExecOutcome>): LaunchedChild {
  return { pid: -1, forked: failure.then(() => -1), exec: failure, exited: failure.then(() => ({ code: null, signal: null })), signal: () => undefined };
}

const signalNames = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

function newRequest(onLine: OnLine | undefined): Request {
  return { pid: -1, onLine, forked: deferred(), exec: deferred(), exited: deferred(), execDone: false, exitDone: false, closed: false };
}

function deliver(request: Request, stream: 'stdout' | 'stderr', line: string): void {
  if (request.onLine !== undefined) request.onLine(stream, line);
  else if (request.held !== undefined && request.held.length < MAX_HELD_LINES) request.held.push([stream, line]);
}

function sendToGroup(pid: number, signal: number | NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * The supervisor's side of the resident spawner (src/native/spawner.c): one small static process per pool,
 * started once, that forks and execs every child, relays its output and reports its exec and its exit.
 * Node forks once per pool instead of once per child (a fork of Node costs milliseconds of CPU and
 * copy-on-write faults; a fork of the spawner a fraction of that), and keeps no ChildProcess, no pipes and
 * no streams per child, only one Request until the child's output is closed.
 *
 * The children are the spawner's: it reaps them, and they die with it (their death signal, SIGTERM), as it
 * dies with the supervisor (SIGKILL). If the spawner dies, its children are reported as ended by SIGTERM
 * and the next launch starts a new spawner; a spawner that cannot be started fails each launch as a spawn
 * would (ENOENT, E2BIG...), so that the slots back off.
 */
export class Spawner {
  private readonly process: ChildProcess | undefined;
  private readonly commands: Writable | undefined;
  private readonly requests = new Map<number, Request>();
  private nextId = 0;
  private buffered: Buffer = NO_BYTES;
  private errorText = '';
  private failure: ExecOutcome | undefined;

  constructor(helper: string, args: string[], socketFd: number, env: Record<string, string>) {
    let subprocess: ChildProcess;
    try {
      subprocess = spawn(helper, args, { stdio: [socketFd, 'pipe', 'pipe', 'pipe'], env, detached: true });
    } catch (error) {
      this.failure = spawnFailure(error);
      return;
    }
    this.process = subprocess;
    subprocess.on('error', (error) => {
      const failure = spawnFailure(error);
      this.end(failure.ok ? '' : failure.reason);
    });
    subprocess.once('close', (code, signal) => {
      const text = this.errorText.trim().split('\n').pop();
      this.end(text !== undefined && text !== '' ? text : `the spawner ended (${signal !== null ? `signal ${signal}` : `exit code ${code}`})`);
    });
    const events = subprocess.stdout as Readable | null;
    const errors = subprocess.stderr as Readable | null;
    const commands = subprocess.stdio[3] as Writable | null;
    if (subprocess.pid === undefined || events === null || errors === null || commands === null) return; // 'error' follows
    this.commands = commands;
    commands.on('error', () => undefined);
    events.on('data', (chunk: Buffer) => this.onData(chunk));
    events.on('error', () => undefined);
    errors.setEncoding('utf8');
    errors.on('data', (chunk: string) => {
      if (this.errorText.length < MAX_ERROR_TEXT) this.errorText += chunk;
    });
    errors.on('error', () => undefined);
  }

  /** False once the spawner could not start or has ended: the next launch needs a new one. */
  get alive(): boolean {
    return this.failure === undefined;
  }

  launch(onLine: OnLine): LaunchedChild {
    if (this.failure !== undefined) return failedChild(Promise.resolve(this.failure));
    const id = ++this.nextId;
    const request = newRequest(onLine);
    this.requests.set(id, request);
    this.commands?.write('S'); // without it the spawn failed, and its 'error' settles the request
    return this.child(id, request);
  }

  private child(id: number, request: Request): LaunchedChild {
    return {
      get pid() {
        return request.pid;
      },
      forked: request.forked.promise,
      exec: request.exec.promise,
      exited: request.exited.promise,
      signal: (signal) => {
        if (request.pid > 0) sendToGroup(request.pid, signal);
        else if (!request.exitDone) (request.queued ??= []).push(signal);
      },
      restartOnExit: (armed) => {
        if (request.exitDone || this.failure !== undefined) return;
        const command = Buffer.alloc(5);
        command.write(armed ? 'A' : 'D', 0, 'latin1');
        command.writeUInt32LE(id, 1);
        this.commands?.write(command);
      },
      get replacement() {
        return request.replacement;
      },
    };
  }

  /** The spawner started `id` as the replacement of an armed child that died: the pool takes or retires it. */
  private replacementOf(id: number): { take(onLine: OnLine): LaunchedChild } {
    const request = newRequest(undefined);
    request.held = [];
    this.requests.set(id, request);
    let taken: LaunchedChild | undefined;
    return {
      take: (onLine) => {
        if (taken !== undefined) return taken;
        const held = request.held ?? [];
        request.held = undefined;
        request.onLine = onLine;
        // After the caller has the child in hand (its callback may name it): on the next microtask.
        if (held.length > 0) queueMicrotask(() => held.forEach(([stream, line]) => onLine(stream, line)));
        taken = this.child(id, request);
        return taken;
      },
    };
  }

  /** No more launches: the spawner exits once its last child is gone. */
  release(): void {
    this.commands?.end();
  }

  private onData(chunk: Buffer): void {
    const data = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    let at = 0;
    while (data.length - at >= FRAME_HEADER) {
      const length = data.readUInt32LE(at + 8);
      if (data.length - at - FRAME_HEADER < length) break;
      const payload = data.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length);
      this.onFrame(data[at]!, data[at + 1]!, data.readUInt32LE(at + 4), payload);
      at += FRAME_HEADER + length;
    }
    // Keep only the unfinished frame, copied, so that no 64 KiB chunk is held for a few bytes of it.
    this.buffered = at === data.length ? NO_BYTES : Buffer.from(data.subarray(at));
  }

  private onFrame(type: number, arg: number, id: number, payload: Buffer): void {
    const request = this.requests.get(id);
    if (request === undefined) return;
    switch (String.fromCharCode(type)) {
      case 'P': {
        const pid = payload.readInt32LE(0);
        if (pid < 0) {
          this.requests.delete(id);
          this.settle(request, spawnFailure({ code: getSystemErrorName(pid) }), { code: null, signal: null });
          return;
        }
        request.pid = pid;
        for (const signal of request.queued ?? []) sendToGroup(pid, signal);
        request.queued = undefined;
        request.forked.resolve(pid);
        return;
      }
      case 'O': {
        const out = this.output(request, arg === 1 ? 'stdout' : 'stderr');
        out.splitter.push(out.decoder.write(payload));
        return;
      }
      case 'E':
        request.execDone = true;
        request.exec.resolve(payload.length === 0 ? { ok: true } : { ok: false, reason: payload.toString('utf8').trim() });
        return;
      case 'X': {
        const value = payload.readInt32LE(0);
        if (payload.length >= 8) request.replacement = this.replacementOf(payload.readUInt32LE(4));
        request.exitDone = true;
        if (request.closed) this.requests.delete(id);
        request.exited.resolve(arg === 1 ? { code: null, signal: signalNames.get(value) ?? (`SIG${value}` as NodeJS.Signals) } : { code: value, signal: null });
        return;
      }
      case 'C':
        request.closed = true;
        if (request.exitDone) this.requests.delete(id);
        this.closeOutput(request);
        return;
    }
  }

  private output(request: Request, stream: 'stdout' | 'stderr'): OutputStream {
    let out = request[stream];
    if (out === undefined) {
      out = { decoder: new StringDecoder('utf8'), splitter: lineSplitter((line) => deliver(request, stream, line)) };
      request[stream] = out;
    }
    return out;
  }

  private closeOutput(request: Request): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const out = request[stream];
      if (out === undefined) continue;
      out.splitter.push(out.decoder.end());
      out.splitter.end();
    }
  }

  /** Resolve whatever is still open for a request. */
  private settle(request: Request, outcome: ExecOutcome, exit: ChildExit): void {
    if (request.pid < 0) request.forked.resolve(-1);
    if (!request.execDone) request.exec.resolve(outcome);
    if (!request.exitDone) request.exited.resolve(exit);
    request.execDone = request.exitDone = true;
    request.queued = undefined;
  }

  /** The spawner could not start or has ended: every child it had is reported, once. */
  private end(reason: string): void {
    if (this.failure !== undefined) return;
    this.failure = { ok: false, reason: reason.startsWith('spawn failed') ? reason : `spawn failed: ${reason}` };
    for (const request of this.requests.values()) {
      // Forked children were sent SIGTERM by the kernel when the spawner died (their death signal).
      if (request.pid > 0) this.settle(request, { ok: false, reason: `the spawner ended before the exec: ${reason}` }, { code: null, signal: 'SIGTERM' });
      else this.settle(request, this.failure, { code: null, signal: null });
      if (!request.closed) this.closeOutput(request);
    }
    this.requests.clear();
    this.process?.stdout?.destroy();
  }
}
