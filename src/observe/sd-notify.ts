/**
 * systemd notifications (sd_notify) for the supervisor: READY=1, RELOADING=1, STOPPING=1, STATUS=, WATCHDOG=1.
 *
 * Node has no AF_UNIX SOCK_DGRAM, so the datagrams are sent by a small native program
 * (build/spawn-fcgi-ts-notify, src/native/notify.c) that reads NUL-terminated messages on its stdin.
 * It is started once, on the first message, and dies with the supervisor (stdin EOF, PR_SET_PDEATHSIG).
 * As root it is given `--pid <our pid>` so that the datagrams carry the supervisor's pid and
 * `NotifyAccess=main` accepts them.
 */
import { existsSync } from 'node:fs';
import { nativeBinaryPath } from '../child/helper-binary.js';
import type { Readable, Writable } from 'node:stream';
import { execa } from 'execa';
import { splitLines } from '../common/lines.js';

export type NotifyValue = string | number | bigint;
export type NotifyFields = Record<string, NotifyValue>;

export interface Notifier {
  /** $NOTIFY_SOCKET as given: an absolute path or @abstract-name. */
  readonly socket: string;
  /** Send one message (one datagram) with these fields, in this order; see formatNotification. */
  notify(fields: NotifyFields): void;
  /** READY=1 (and STATUS=status): the pool serves. Also the end of a reload. */
  ready(status?: string): void;
  /** RELOADING=1 + MONOTONIC_USEC (systemd >= 253 wants it for Type=notify-reload); follow with ready(). */
  reloading(status?: string): void;
  /** STOPPING=1: the supervisor is shutting the pool down. */
  stopping(status?: string): void;
  /** STATUS=text: shown by `systemctl status`. */
  status(text: string): void;
  /** WATCHDOG=1: one keep-alive ping. */
  watchdog(): void;
  /**
   * When $WATCHDOG_USEC is set and $WATCHDOG_PID is unset or our pid: ping now and every WATCHDOG_USEC/2
   * (an unref'd timer). Returns the interval in ms, or undefined when systemd asked for no watchdog.
   * Calling it again does not start a second timer.
   */
  startWatchdog(): number | undefined;
  /** Stop the watchdog, send what is queued and wait (at most timeoutMs) for the notifier to exit. */
  close(timeoutMs?: number): Promise<void>;
}

export interface NotifierOptions {
  /** Lines the notifier writes to stderr (send errors, "binary not found", unexpected exits). */
  onError?: (line: string) => void;
  /** Our pid, the one systemd should see (default process.pid); tests only. */
  pid?: number;
}

const NOTIFY_NAME = 'spawn-fcgi-ts-notify';
/** systemd ignores notification datagrams of 4096 bytes or more; a long status must not cost us READY=1. */
export const MAX_STATUS_BYTES = 1024;
const NAME_RE = /^[A-Z_][A-Z0-9_]*$/;

/** build/ sits next to dist/ and src/, so the same relative URL works from the bundle and from the sources. */
export function notifierPath(env: NodeJS.ProcessEnv): string {
  const fromEnv = env.SPAWN_FCGI_TS_NOTIFY;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return nativeBinaryPath(NOTIFY_NAME);
}

/**
 * One sd_notify message: `NAME=value` lines joined by '\n' (no trailing newline), in the fields' order.
 * Names must be upper-case sd_notify names (a TypeError otherwise: a programming error). Values are made
 * safe: a newline or NUL would split or end the message, so each becomes a space; STATUS is cut to
 * MAX_STATUS_BYTES of UTF-8 (on a character boundary). Numbers must be finite integers.
 */
export function formatNotification(fields: NotifyFields): string {
  const lines: string[] = [];
  for (const [name, raw] of Object.entries(fields)) {
    if (!NAME_RE.test(name)) throw new TypeError(`invalid sd_notify field name ${JSON.stringify(name)}: expected upper-case letters, digits and _`);
    let value: string;
    if (typeof raw === 'number') {
      if (!Number.isSafeInteger(raw)) throw new TypeError(`sd_notify field ${name} must be an integer, got ${raw}`);
      value = String(raw);
    } else if (typeof raw === 'bigint') {
      value = raw.toString();
    } else if (typeof raw === 'string') {
      value = raw.replace(/[\r\n\0]/g, ' ');
    } else {
      throw new TypeError(`sd_notify field ${name} must be a string or a number, got ${typeof raw}`);
    }
    if (name === 'STATUS') value = truncateUtf8(value, MAX_STATUS_BYTES);
    lines.push(`${name}=${value}`);
  }
  return lines.join('\n');
}

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const size = Buffer.byteLength(ch);
    if (bytes + size > maxBytes - 3) break;
    out += ch;
    bytes += size;
  }
  return `${out}...`;
}

/**
 * The watchdog ping interval in ms (half of WATCHDOG_USEC, at least 1), or undefined when systemd asked
 * for no watchdog, or asked it of another process (WATCHDOG_PID set and not `pid`).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number = process.pid): number | undefined {
  const usecText = env.WATCHDOG_USEC;
  if (usecText === undefined || !/^[0-9]+$/.test(usecText)) return undefined;
  const usec = Number(usecText);
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
  const pidText = env.WATCHDOG_PID;
  if (pidText !== undefined && pidText !== '' && Number(pidText) !== pid) return undefined;
  // setInterval takes at most 2^31-1 ms; systemd's longest useful timeouts are far below that.
  return Math.min(Math.max(1, Math.floor(usec / 2000)), 2 ** 31 - 1);
}

/** The notifier's argv: the socket, then `--pid` when we may speak for our pid (root). */
export function notifierArguments(socket: string, pid: number, isRoot: boolean): string[] {
  return isRoot ? [socket, '--pid', String(pid)] : [socket];
}

/** A notifier for $NOTIFY_SOCKET, or undefined when systemd did not ask for notifications. */
export function createNotifier(env: NodeJS.ProcessEnv, options: NotifierOptions = {}): Notifier | undefined {
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return undefined;
  return new NativeNotifier(socket, env, options);
}

type Subprocess = ReturnType<typeof execa>;

class NativeNotifier implements Notifier {
  private subprocess: Subprocess | undefined;
  private exited: Promise<void> | undefined;
  /** Set for good once the notifier cannot work (no binary, usage error) or after close(). */
  private disabled = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private watchdogMs: number | undefined;
  private readonly pid: number;
  private readonly onError: (line: string) => void;

  constructor(
    readonly socket: string,
    private readonly env: NodeJS.ProcessEnv,
    options: NotifierOptions,
  ) {
    this.pid = options.pid ?? process.pid;
    this.onError = options.onError ?? (() => undefined);
  }

  notify(fields: NotifyFields): void {
    const message = formatNotification(fields);
    if (message === '' || this.closed || this.disabled) return;
    const stdin = this.start();
    if (stdin === undefined) return;
    stdin.write(`${message}\0`);
  }

  ready(status?: string): void {
    this.notify(status === undefined ? { READY: 1 } : { READY: 1, STATUS: status });
  }

  reloading(status?: string): void {
    const fields: NotifyFields = { RELOADING: 1, MONOTONIC_USEC: process.hrtime.bigint() / 1000n };
    if (status !== undefined) fields.STATUS = status;
    this.notify(fields);
  }

  stopping(status?: string): void {
    this.notify(status === undefined ? { STOPPING: 1 } : { STOPPING: 1, STATUS: status });
  }

  status(text: string): void {
    this.notify({ STATUS: text });
  }

  watchdog(): void {
    this.notify({ WATCHDOG: 1 });
  }

  startWatchdog(): number | undefined {
    if (this.closed) return undefined;
    if (this.timer !== undefined) return this.watchdogMs;
    const interval = watchdogIntervalMs(this.env, this.pid);
    if (interval === undefined) return undefined;
    this.watchdogMs = interval;
    this.watchdog();
    this.timer = setInterval(() => this.watchdog(), interval);
    this.timer.unref();
    return interval;
  }

  async close(timeoutMs = 2000): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    const subprocess = this.subprocess;
    const exited = this.exited;
    if (subprocess === undefined || exited === undefined) return;
    subprocess.stdin?.end();
    let timeout: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timeout = setTimeout(() => resolve('late'), timeoutMs);
    });
    if ((await Promise.race([exited, late])) === 'late') {
      subprocess.kill('SIGKILL');
      await exited;
    }
    clearTimeout(timeout);
  }

  /** The notifier's stdin, starting it on first use (and again after it was killed). */
  private start(): Writable | undefined {
    if (this.subprocess !== undefined) return this.subprocess.stdin ?? undefined;
    const binary = notifierPath(this.env);
    if (!existsSync(binary)) {
      this.disable(`sd_notify helper not found at ${binary}: run 'npm run build:helper' (needs a C compiler); notifications disabled`);
      return undefined;
    }
    const args = notifierArguments(this.socket, this.pid, process.getuid?.() === 0);
    const subprocess = execa(binary, args, {
      stdin: 'pipe',
      stdout: 'ignore',
      stderr: 'pipe',
      detached: false,
      cleanup: true,
      buffer: false,
      reject: false,
    });
    subprocess.catch(() => undefined);
    this.subprocess = subprocess;
    this.exited = new Promise<void>((resolve) => {
      // 'close' rather than 'exit': by then every stderr line has been relayed.
      subprocess.once('close', (code, signal) => {
        if (this.subprocess === subprocess) this.subprocess = undefined;
        if (this.closed) {
          // the end we asked for
        } else if (code !== 0 && signal === null) {
          // 1: usage (e.g. an unsupported NOTIFY_SOCKET, reported on stderr above); anything else: a broken binary.
          this.disable(`sd_notify helper ${binary} ${args.join(' ')} exited with code ${code}; notifications disabled`);
        } else {
          // Killed, or stopped by a signal it handles (exit 0): a fresh one is started on demand.
          this.onError(`sd_notify helper exited unexpectedly (${signal ?? `code ${code}`}); restarting it on the next message`);
        }
        resolve();
      });
      subprocess.once('error', (error) => {
        if (subprocess.pid !== undefined) return; // 'close' follows
        if (this.subprocess === subprocess) this.subprocess = undefined;
        this.disable(`sd_notify: cannot start ${binary}: ${error.message}; notifications disabled`);
        resolve();
      });
    });
    const stdin = subprocess.stdin!;
    stdin.on('error', () => undefined); // EPIPE after an unexpected exit: reported on 'close'
    splitLines(subprocess.stderr!, this.onError);
    // The notifier never keeps the supervisor alive.
    subprocess.unref();
    unrefStream(stdin);
    unrefStream(subprocess.stderr!);
    return stdin;
  }

  private disable(line: string): void {
    if (this.disabled) return;
    this.disabled = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.onError(line);
  }
}

function unrefStream(stream: Readable | Writable): void {
  (stream as unknown as { unref?: () => void }).unref?.();
}
