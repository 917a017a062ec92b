import { closeSync, openSync, writeSync } from 'node:fs';
import { chalkStderr } from 'chalk';

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
}

const PROGRAM = 'spawn-fcgi-ts';

/**
 * The supervisor's own lines and its children's output, one line per write so that nothing is split.
 * Text on a terminal: time, level, [slot:pid], message, in colour. Text elsewhere: `spawn-fcgi-ts: ...`
 * (time added in a log file). JSON: one object per line.
 */
export class Logger {
  private fd: number;
  private readonly tty: boolean;

  constructor(private readonly options: LoggerOptions) {
    this.fd = options.file === undefined ? 2 : openSync(options.file, 'a', 0o640);
    this.tty = options.file === undefined && options.format === 'text' && process.stderr.isTTY === true;
  }

  /** Reopen the log file (after logrotate moved it). No-op when logging to stderr. */
  reopen(): void {
    if (this.options.file === undefined) return;
    const next = openSync(this.options.file, 'a', 0o640);
    const previous = this.fd;
    this.fd = next;
    closeSync(previous);
  }

  debug(event: string, message: string, fields: LogFields = {}): void { this.write('debug', event, message, fields); }
  info(event: string, message: string, fields: LogFields = {}): void { this.write('info', event, message, fields); }
  warn(event: string, message: string, fields: LogFields = {}): void { this.write('warn', event, message, fields); }
  error(event: string, message: string, fields: LogFields = {}): void { this.write('error', event, message, fields); }

  /** A line a child wrote on its stdout or stderr. */
  childOutput(slot: number, pid: number, stream: 'stdout' | 'stderr', line: string): void {
    if (this.options.format === 'json') {
      this.emit(JSON.stringify({ time: new Date().toISOString(), level: 'info', event: 'output', slot, pid, stream, line }));
    } else {
      this.emit(this.textLine('info', `${slotTag({ slot, pid })}${line}`, true));
    }
  }

  write(level: Level, event: string, message: string, fields: LogFields): void {
    if (level === 'debug' && process.env.SPAWN_FCGI_TS_DEBUG === undefined) return;
    if (this.options.format === 'json') {
      const { slot, pid, ...rest } = fields;
      this.emit(JSON.stringify({ time: new Date().toISOString(), level, event, slot, pid, msg: message, ...rest }));
      return;
    }
    this.emit(this.textLine(level, `${slotTag(fields)}${message}`, false));
  }

  private textLine(level: Level, text: string, childOutput: boolean): string {
    if (this.tty) {
      const time = new Date().toTimeString().slice(0, 8);
      const paint = { debug: chalkStderr.gray, info: chalkStderr.cyan, warn: chalkStderr.yellow, error: chalkStderr.red }[level];
      return `${chalkStderr.dim(time)} ${paint(level.padEnd(5))} ${childOutput ? chalkStderr.dim(text) : text}`;
    }
    const label = level === 'warn' ? 'WARNING: ' : '';
    const line = `${PROGRAM}: ${label}${text}`;
    return this.options.file === undefined ? line : `${new Date().toISOString()} ${line}`;
  }

  private emit(line: string): void {
    try {
      writeSync(this.fd, `${line}\n`);
    } catch {
      // stderr closed or the disk is full: losing a log line must not take the pool down.
    }
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
