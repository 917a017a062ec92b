import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';
import { SetupError, errnoText } from '../common/errors.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface LogFields {
  slot?: number;
  pid?: number;
  [key: string]: unknown;
}

export interface LoggerOptions {
  format: 'text' | 'json';
  /** Write here (appending) instead of stderr; reopened by `reopen()` (SIGUSR1, logrotate's postrotate). */
  file?: string;
  /** Colour the text log with these (see `useColour` and `colourPainter`); default: never. */
  colour?: Painter;
  /** stderr is a terminal: text lines get a time and a padded level instead of the program prefix. */
  tty?: boolean;
  /** Write debug lines too (SPAWN_FCGI_TS_DEBUG set); default: not. */
  debug?: boolean;
}

const PROGRAM = 'spawn-fcgi-ts';

/** The colours a text log line uses (a chalk instance is one). */
export interface Painter {
  gray(text: string): string;
  cyan(text: string): string;
  yellow(text: string): string;
  red(text: string): string;
  dim(text: string): string;
}

const plain = (text: string): string => text;
const NO_COLOUR: Painter = { gray: plain, cyan: plain, yellow: plain, red: plain, dim: plain };

/**
 * chalk, for a log that is coloured: loaded only then (evaluating it, with the terminal probing it does on
 * load, was ~2 ms of every start, and a supervisor under systemd or in a container never colours; issue 10).
 */
export async function colourPainter(): Promise<Painter> {
  const { Chalk } = await import('chalk');
  return new Chalk({ level: 1 });
}
/** Lines (bytes) kept for a stderr that is not keeping up; beyond this, lines are counted and dropped. */
export const MAX_QUEUED_BYTES = 1024 * 1024;
/** How often a full queue is retried. */
const RETRY_MS = 20;
/** At exit, how long to wait for a slow stderr to take what is queued. */
const DRAIN_AT_EXIT_MS = 2000;

/**
 * Whether to use colour, from the environment and whether the output is a terminal:
 * NO_COLOR (any non-empty value) disables, FORCE_COLOR=0 disables and 1-3 forces, TERM=dumb disables.
 */
export function useColour(env: NodeJS.ProcessEnv, isTTY: boolean): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  const force = env.FORCE_COLOR;
  if (force === '0' || force === 'false') return false;
  if (force === '' || force === '1' || force === '2' || force === '3' || force === 'true') return true;
  if (env.TERM === 'dumb') return false;
  return isTTY;
}

/** `1 child`, `2 children`. */
export const count = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

/** `500 ms`, `10 s`, `2.5 s`. */
export const formatMs = (ms: number): string => (ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`);

/**
 * Control characters (C0 but tab, DEL, C1) and the Unicode line separators as visible escapes: a child's
 * output must not forge log lines (`\r`, `\n`) nor drive the operator's terminal (ESC sequences).
 */
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
  });
}

/**
 * Opens the log file for appending without following a symbolic link as its last component, and only if
 * it is a regular file with one link: root writes it in directories that others may control.
 * O_NONBLOCK keeps a planted FIFO from blocking the open; it has no effect on a regular file, so it stays.
 */
export function openLogFile(path: string): number {
  const { O_WRONLY, O_APPEND, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = constants;
  let fd: number;
  try {
    // libuv adds O_CLOEXEC to every open.
    fd = openSync(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0o640);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ELOOP' ? 'it is a symbolic link (refused)' : code === 'ENXIO' ? 'it is not a regular file (refused)' : errnoText(error);
    throw new SetupError(`can't open log file '${path}': ${why}`, { cause: error });
  }
  const stat = fstatSync(fd);
  const problem = !stat.isFile() ? 'it is not a regular file (refused)' : stat.nlink > 1 ? 'it has more than one hard link (refused)' : undefined;
  if (problem !== undefined) {
    closeSync(fd);
    throw new SetupError(`can't open log file '${path}': ${problem}`);
  }
  return fd;
}

/**
 * The supervisor's own lines and its children's output, one line per write so that nothing is split.
 * Text on a terminal: time, level, [slot:pid], message, in colour. Text elsewhere: `spawn-fcgi-ts: ...`
 * (time added in a log file). JSON: one object per line. Control characters are escaped in text lines
 * (JSON.stringify escapes them in JSON lines).
 *
 * Writing never blocks and never throws: when stderr (a pipe) is full, lines wait in a bounded queue that
 * is retried every RETRY_MS; when the queue is full they are counted, and the count is logged once the
 * reader catches up.
 */
export class Logger {
  private fd: number;
  private readonly pretty: boolean;
  private readonly paint: Painter;
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private retry: NodeJS.Timeout | undefined;

  /** Throws a SetupError when the log file cannot be opened (see `openLogFile`). */
  constructor(private readonly options: LoggerOptions) {
    this.fd = options.file === undefined ? 2 : openLogFile(options.file);
    this.pretty = options.file === undefined && options.format === 'text' && options.tty === true;
    this.paint = options.colour !== undefined && options.format === 'text' ? options.colour : NO_COLOUR;
  }

  /**
   * Reopen the log file (after logrotate moved it). No-op when logging to stderr. Never throws: when the
   * file cannot be opened (directory gone, EACCES, EMFILE, a planted symlink) the old file stays in use,
   * a warning says why (in the log and on stderr), and the next SIGUSR1 tries again.
   */
  reopen(): void {
    if (this.options.file === undefined) return;
    let next: number;
    try {
      next = openLogFile(this.options.file);
    } catch (error) {
      const message = `${error instanceof SetupError ? error.message.replace("can't open", "can't reopen") : `can't reopen log file: ${errnoText(error)}`}; still writing to the file opened before (the next SIGUSR1 tries again)`;
      this.warn('log', message);
      // Also on stderr, where an operator watching a foreground pool sees it (the file may be gone).
      if (this.fd !== 2) this.writeTo(2, Buffer.from(`${PROGRAM}: WARNING: ${escapeControl(message)}\n`));
      return;
    }
    this.flush();
    const previous = this.fd;
    this.fd = next;
    try {
      closeSync(previous);
    } catch {
      // already gone: nothing to close.
    }
  }

  debug(event: string, message: string, fields: LogFields = {}): void {
    this.write('debug', event, message, fields);
  }
  info(event: string, message: string, fields: LogFields = {}): void {
    this.write('info', event, message, fields);
  }
  warn(event: string, message: string, fields: LogFields = {}): void {
    this.write('warn', event, message, fields);
  }
  error(event: string, message: string, fields: LogFields = {}): void {
    this.write('error', event, message, fields);
  }

  /** A line a child wrote on its stdout or stderr. */
  childOutput(slot: number, pid: number, stream: 'stdout' | 'stderr', line: string): void {
    if (this.options.format === 'json') {
      this.emit(JSON.stringify({ time: new Date().toISOString(), level: 'info', event: 'output', slot, pid, stream, line }));
    } else {
      this.emit(this.textLine('info', `${slotTag({ slot, pid })}${line}`, true));
    }
  }

  write(level: Level, event: string, message: string, fields: LogFields): void {
    if (level === 'debug' && this.options.debug !== true) return;
    if (this.options.format === 'json') {
      const { slot, pid, ...rest } = fields;
      this.emit(JSON.stringify({ time: new Date().toISOString(), level, event, slot, pid, msg: message, ...rest }));
      return;
    }
    this.emit(this.textLine(level, `${slotTag(fields)}${message}`, false));
  }

  /**
   * Before exit: give a slow stderr up to DRAIN_AT_EXIT_MS to take the queued lines, then report what
   * was dropped. Later lines are still written (or queued) as before.
   */
  close(): void {
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.retry = undefined;
    const deadline = Date.now() + DRAIN_AT_EXIT_MS;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (!this.flush() && Date.now() < deadline) Atomics.wait(pause, 0, 0, 5);
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.retry = undefined;
    if (this.queue.length === 0) return;
    // The reader did not take them in time: say so, if there is room for one more line.
    this.dropped += this.queue.length;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.flush();
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.retry = undefined;
  }

  private textLine(level: Level, text: string, childOutput: boolean): string {
    const safe = escapeControl(text);
    const paint = this.paint;
    if (this.pretty) {
      const time = new Date().toTimeString().slice(0, 8);
      const colour = { debug: paint.gray, info: paint.cyan, warn: paint.yellow, error: paint.red }[level];
      return `${paint.dim(time)} ${colour(level.padEnd(5))} ${childOutput ? paint.dim(safe) : safe}`;
    }
    const label = level === 'warn' ? paint.yellow('WARNING: ') : '';
    const line = `${PROGRAM}: ${label}${level === 'error' ? paint.red(safe) : safe}`;
    return this.options.file === undefined ? line : `${new Date().toISOString()} ${line}`;
  }

  private emit(line: string): void {
    const bytes = Buffer.from(`${line}\n`);
    if (this.queue.length === 0 && this.dropped === 0) {
      const rest = this.writeTo(this.fd, bytes);
      if (rest.length > 0) this.enqueue(rest);
    } else {
      this.enqueue(bytes);
      this.flush();
    }
  }

  private enqueue(bytes: Buffer): void {
    if (this.queuedBytes + bytes.length > MAX_QUEUED_BYTES) {
      this.dropped++;
    } else {
      this.queue.push(bytes);
      this.queuedBytes += bytes.length;
    }
    this.retryLater();
  }

  /** Writes what is queued, then the count of dropped lines; true when nothing is left. */
  private flush(): boolean {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const rest = this.writeTo(this.fd, head);
      this.queuedBytes -= head.length - rest.length;
      if (rest.length > 0) {
        this.queue[0] = rest;
        this.retryLater();
        return false;
      }
      this.queue.shift();
    }
    if (this.dropped > 0) {
      const what = this.fd === 2 ? 'stderr' : 'the log file';
      const notice = Buffer.from(`${this.textLine('warn', `${count(this.dropped, 'log line', 'log lines')} dropped: ${what} is not keeping up`, false)}\n`);
      const rest = this.writeTo(this.fd, notice);
      if (rest.length === notice.length) {
        this.retryLater();
        return false;
      }
      this.dropped = 0;
      if (rest.length > 0) {
        this.queue.push(rest);
        this.queuedBytes += rest.length;
        this.retryLater();
        return false;
      }
    }
    return true;
  }

  private retryLater(): void {
    this.retry ??= setTimeout(() => {
      this.retry = undefined;
      this.flush();
    }, RETRY_MS);
  }

  /**
   * Writes as much of `bytes` as the descriptor takes now; returns what is left (empty when all of it went).
   * A full pipe (EAGAIN) leaves it; any other error (stderr closed, disk full) drops the line: losing a log
   * line must not take the pool down.
   */
  private writeTo(fd: number, bytes: Buffer): Buffer {
    let rest = bytes;
    try {
      while (rest.length > 0) {
        const written = writeSync(fd, rest);
        if (written <= 0) break;
        rest = rest.subarray(written);
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return rest.subarray(rest.length);
    }
    return rest;
  }
}

const slotTag = ({ slot, pid }: LogFields): string => {
  if (slot === undefined) return '';
  return pid === undefined ? `[${slot}] ` : `[${slot}:${pid}] `;
};

/** A setup error, as spawn-fcgi prints it: one line on stderr. */
export function printError(message: string): void {
  process.stderr.write(`${PROGRAM}: ${message}\n`);
}
