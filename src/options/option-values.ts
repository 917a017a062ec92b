/**
 * How one option's value is read: the parsers the option table, the config file and the status command share.
 * Every error has one shape where it can: `invalid value for -b: '0' (expected an integer from 1 to 65535)`.
 */
import { isIP } from 'node:net';
import { constants as osConstants } from 'node:os';
import { usageError } from '../common/errors.js';

/** Linux `sizeof(sockaddr_un.sun_path) - 1`: the longest socket path spawn-fcgi accepts. */
export const MAX_UNIX_PATH_BYTES = 107;

/**
 * The most children one supervisor runs (-F, and TTIN). Each child costs the supervisor two pipe fds,
 * a ChildProcess and its timers (a few kB), and the box one process with its own memory (1-2 MB for a
 * tiny C app, 20-50 MB for php-cgi): 4096 children are ~8,200 fds and 4-200 GB of RSS, beyond any
 * sensible pool on one socket, while -F 100000 would exhaust fds and pids long before it served.
 */
export const MAX_PROCS = 4096;
/** listen(2)'s backlog: the kernel silently caps it at net.core.somaxconn; more than 65535 is a typo. */
export const MAX_BACKLOG = 65535;
/** The longest duration any option takes: 10 years (timers beyond 2^31-1 ms are chained by the pool). */
export const MAX_DURATION_MS = 10 * 365 * 24 * 3_600_000;
/** Signals that do not end a process: with one of them every stop would wait the whole --kill-timeout. */
const NON_STOPPING_SIGNALS = ['STOP', 'TSTP', 'TTIN', 'TTOU', 'CONT', 'WINCH', 'CHLD', 'URG'];

export type SocketSpec = { kind: 'unix'; path: string; abstract: boolean } | { kind: 'tcp'; host: string; port: number };

const RLIMITS = [
  'as',
  'core',
  'cpu',
  'data',
  'fsize',
  'locks',
  'memlock',
  'msgqueue',
  'nice',
  'nofile',
  'nproc',
  'rss',
  'rtprio',
  'rttime',
  'sigpending',
  'stack',
];

/** `nofile=4096`, `core=0`, `as=1073741824:unlimited`: checked here so that a typo is a usage error, not N failed children. */
export function parseRlimit(text: string): string {
  const match = /^([A-Za-z]+)=(\d+|unlimited|infinity)(?::(\d+|unlimited|infinity))?$/.exec(text);
  const [, name, soft, hard] = match ?? [];
  if (name === undefined || !RLIMITS.includes(name.toLowerCase())) {
    throw usageError(`invalid --rlimit '${text}' (NAME=SOFT[:HARD] with NAME one of ${RLIMITS.join(', ')})`);
  }
  return `${name.toLowerCase()}=${soft}${hard === undefined ? '' : `:${hard}`}`;
}

export function parseUnixPath(path: string): SocketSpec {
  if (path === '' || path === '@') throw usageError('the Unix domain socket path is empty');
  if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) {
    throw usageError(`path of the Unix domain socket is too long (${Buffer.byteLength(path)} bytes, at most ${MAX_UNIX_PATH_BYTES})`);
  }
  return { kind: 'unix', path, abstract: path.startsWith('@') };
}

/** `invalid value for -b: '0' (expected an integer from 1 to 65535)`: the flag, the value given, what is allowed. */
export const invalidValue = (flag: string, text: string, expected: string) => usageError(`invalid value for ${flag}: '${text}' (expected ${expected})`);

/** spawn-fcgi's `invalid port: N`, followed by the flag and the range. */
export function parsePort(text: string, flag = '-p'): number {
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw usageError(`invalid port: ${text} (${flag}: expected an integer from 1 to 65535)`);
  return port;
}

/** An IP literal, or a name such as `localhost` that the socket module resolves. Brackets are optional for IPv6. */
export function parseHost(text: string, flag = '-a'): string {
  const host = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (isIP(host) !== 0) return host;
  if (/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) return host;
  throw usageError(`'${text}' is not a valid IP address (${flag}: expected an IPv4 or IPv6 address or a host name)`);
}

export function parseMode(text: string, flag = '-M'): number {
  if (!/^[0-7]{1,4}$/.test(text)) throw invalidValue(flag, text, 'an octal mode from 0 to 7777, such as 0660');
  return parseInt(text, 8);
}

export function parsePhpChildren(text: string): number | undefined {
  const n = parseInteger('-C', text, { min: -1, max: 65535 });
  return n < 0 ? undefined : n;
}

/** --max-rss in MB: 16 TiB is more memory than any one child has. */
export const MAX_RSS_MB = 16 * 1024 * 1024;

export function parseInteger(flag: string, text: string, { min, max }: { min?: number; max?: number }): number {
  const value = /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(value) || (min !== undefined && value < min) || (max !== undefined && value > max)) {
    const range = max === undefined ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
    throw invalidValue(flag, text, range);
  }
  return value;
}

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `10`, `2.5`, `10s`, `500ms`, `1m`, `6h`, `2d`: a bare number is seconds; at most MAX_DURATION_MS. */
export function parseDuration(flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const ms = match === null ? NaN : Math.round(Number(match[1]) * DURATION_UNITS[(match[2] ?? 's') as keyof typeof DURATION_UNITS]);
  if (!Number.isSafeInteger(ms) || ms > MAX_DURATION_MS) {
    throw invalidValue(flag, text, 'a duration from 0 to 10 years: seconds, or a number with ms, s, m, h or d');
  }
  return ms;
}

/** `TERM`, `SIGTERM`, `sigusr1`, `15`: the signal number. */
export function parseSignal(flag: string, text: string): number {
  const signals = osConstants.signals as Record<string, number>;
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (Object.values(signals).includes(n)) return n;
  } else {
    const name = text.toUpperCase().replace(/^SIG/, '');
    const n = signals[`SIG${name}`];
    if (n !== undefined) return n;
  }
  throw invalidValue(flag, text, 'a signal name such as TERM or USR1, or a number');
}

/** A signal that stops a process: STOP, CONT, WINCH... would make every stop wait the whole --kill-timeout. */
export function parseKillSignal(flag: string, text: string): number {
  const signal = parseSignal(flag, text);
  const name = signalName(signal).replace(/^SIG/, '');
  if (NON_STOPPING_SIGNALS.includes(name)) {
    throw invalidValue(flag, text, `a signal that ends a process, such as TERM, INT, QUIT, USR1 or KILL; SIG${name} does not`);
  }
  return signal;
}

export function signalName(signal: number): string {
  const entry = Object.entries(osConstants.signals).find(([, n]) => n === signal);
  return entry === undefined ? String(signal) : entry[0];
}

export function parseNameList(values: string[]): string[] {
  const names = values.flatMap((v) => v.split(/[,\s]+/)).filter((n) => n !== '');
  for (const name of names) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw usageError(`invalid variable name for --copy-env: '${name}'`);
  }
  return names;
}

export function parseEnvAssignments(values: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const assignment of values) {
    const eq = assignment.indexOf('=');
    const name = eq < 0 ? '' : assignment.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw usageError(`invalid --env '${assignment}' (expected NAME=VALUE)`);
    env[name] = assignment.slice(eq + 1);
  }
  return env;
}

export function parseLogFormat(text: string | undefined): 'text' | 'json' {
  if (text === undefined || text === 'text') return 'text';
  if (text === 'json') return 'json';
  throw usageError(`invalid --log-format '${text}' (text or json)`);
}

export function nonEmpty(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value === '') throw usageError(`${flag} needs a value`);
  return value;
}
