import { isIP } from 'node:net';
import { constants as osConstants } from 'node:os';
import { usageError } from './errors.js';

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

export type SocketSpec =
  | { kind: 'unix'; path: string; abstract: boolean }
  | { kind: 'tcp'; host: string; port: number };

export interface Options {
  /** argv of the FastCGI application; with `-f` it is `/bin/sh -c "exec <path>"`. */
  app: string[];
  /** undefined only when systemd passes the socket (LISTEN_FDS). */
  socket?: SocketSpec;
  /** `--fd-name`: which passed socket to adopt. */
  fdName?: string;
  backlog: number;
  /** `-M`: applied exactly; undefined = 0660 & ~umask. */
  socketMode?: number;
  socketUser?: string;
  socketGroup?: string;
  user?: string;
  group?: string;
  chroot?: string;
  /** `-S`: bind the socket outside the chroot. */
  bindBeforeChroot: boolean;
  chdir?: string;
  /** `-C`: PHP_FCGI_CHILDREN for the children; undefined = leave the environment alone. */
  phpChildren?: number;
  /** `-F` / `--max-procs`: how many children share the socket, at most. */
  procs: number;
  /** `--min-procs`: the fewest children of a pool that sizes itself (0: on demand); equal to procs: a static pool. */
  minProcs: number;
  /** `--idle-timeout`: a child above minProcs that used no CPU for this long, with nothing queued, is stopped. */
  idleTimeoutMs: number;
  foreground: boolean;
  pidFile?: string;
  /** `--copy-env`: a clean environment with only these names; undefined = inherit everything. */
  copyEnv?: string[];
  env: Record<string, string>;
  webServerAddrs?: string;
  killSignal: number;
  killTimeoutMs: number;
  restartDelayMs: number;
  maxRestartDelayMs: number;
  stableAfterMs: number;
  /** Consecutive fast failures of one slot before the pool gives up; undefined = never give up. */
  maxFailures?: number;
  /** How long a child must stay up at start to count as started (spawn-fcgi waits 100 ms). */
  startCheckMs: number;
  keepSocket: boolean;
  logFormat: 'text' | 'json';
  logFile?: string;
  /** `--rlimit NAME=SOFT[:HARD]`, applied by the helper before exec. */
  rlimits: string[];
  /** Recycle a child above this RSS (bytes), checked every checkIntervalMs. */
  maxRssBytes?: number;
  /** Recycle a child older than this (with up to 10 % jitter). */
  maxAgeMs?: number;
  checkIntervalMs?: number;
  /** Control socket path for `spawn-fcgi-ts status`. */
  control?: string;
  /** `--metrics`: `host:port` or a unix path serving OpenMetrics at /metrics. */
  metrics?: string;
  /** `--status-page`: the metrics listener also serves the detailed status (JSON /status, the HTML page). */
  statusPage: boolean;
}

/** What the command line (or a config file) said, before validation: every value as typed. */
export interface RawOptions {
  f?: string;
  d?: string;
  a?: string;
  p?: string;
  s?: string;
  C?: string;
  F?: string;
  maxProcs?: string;
  minProcs?: string;
  idleTimeout?: string;
  b?: string;
  u?: string;
  g?: string;
  U?: string;
  G?: string;
  M?: string;
  c?: string;
  S?: boolean;
  n?: boolean;
  P?: string;
  app?: string[];
  copyEnv?: string[];
  env?: string[];
  webServerAddrs?: string;
  killSignal?: string;
  killTimeout?: string;
  restartDelay?: string;
  maxRestartDelay?: string;
  stableAfter?: string;
  maxFailures?: string;
  startCheck?: string;
  keepSocket?: boolean;
  logFormat?: string;
  logFile?: string;
  fdName?: string;
  rlimit?: string[];
  maxRss?: string;
  maxAge?: string;
  checkInterval?: string;
  control?: string;
  metrics?: string;
  statusPage?: boolean;
}

export interface ResolveContext {
  /** systemd passed listening sockets: -s/-p become optional. */
  socketActivation: boolean;
}

export const DEFAULTS = {
  backlog: 1024,
  procs: 1,
  killSignal: 'TERM',
  killTimeout: '10s',
  restartDelay: '100ms',
  maxRestartDelay: '30s',
  stableAfter: '10s',
  startCheck: '100ms',
  idleTimeout: '10s',
} as const;

export function resolveOptions(raw: RawOptions, context: ResolveContext = { socketActivation: false }): Options {
  const app = resolveApp(raw);
  const socket = resolveSocket(raw, context.socketActivation);
  const procs = resolveProcs(raw);
  const minProcs = raw.minProcs === undefined ? procs : parseInteger('--min-procs', raw.minProcs, { min: 0, max: MAX_PROCS });
  if (minProcs > procs) throw usageError(`--min-procs ${minProcs} is more than -F/--max-procs ${procs}`);
  const options: Options = {
    app,
    socket,
    backlog: raw.b === undefined ? DEFAULTS.backlog : parseInteger('-b', raw.b, { min: 1, max: MAX_BACKLOG }),
    socketMode: raw.M === undefined ? undefined : parseMode(raw.M, '-M'),
    socketUser: nonEmpty('-U', raw.U),
    socketGroup: nonEmpty('-G', raw.G),
    user: nonEmpty('-u', raw.u),
    group: nonEmpty('-g', raw.g),
    chroot: nonEmpty('-c', raw.c),
    bindBeforeChroot: raw.S ?? false,
    chdir: nonEmpty('-d', raw.d),
    phpChildren: raw.C === undefined ? undefined : parsePhpChildren(raw.C),
    procs,
    minProcs,
    idleTimeoutMs: parseDuration('--idle-timeout', raw.idleTimeout ?? DEFAULTS.idleTimeout),
    foreground: raw.n ?? false,
    pidFile: nonEmpty('-P', raw.P),
    copyEnv: raw.copyEnv === undefined ? undefined : parseNameList(raw.copyEnv),
    env: parseEnvAssignments(raw.env ?? []),
    webServerAddrs: raw.webServerAddrs,
    killSignal: parseKillSignal('--kill-signal', raw.killSignal ?? DEFAULTS.killSignal),
    killTimeoutMs: parseDuration('--kill-timeout', raw.killTimeout ?? DEFAULTS.killTimeout),
    restartDelayMs: parseDuration('--restart-delay', raw.restartDelay ?? DEFAULTS.restartDelay),
    maxRestartDelayMs: parseDuration('--max-restart-delay', raw.maxRestartDelay ?? DEFAULTS.maxRestartDelay),
    stableAfterMs: parseDuration('--stable-after', raw.stableAfter ?? DEFAULTS.stableAfter),
    maxFailures: raw.maxFailures === undefined ? undefined : parseInteger('--max-failures', raw.maxFailures, { min: 1, max: 1_000_000_000 }),
    startCheckMs: parseDuration('--start-check', raw.startCheck ?? DEFAULTS.startCheck),
    keepSocket: raw.keepSocket ?? false,
    logFormat: parseLogFormat(raw.logFormat),
    logFile: nonEmpty('--log-file', raw.logFile),
    fdName: nonEmpty('--fd-name', raw.fdName),
    rlimits: (raw.rlimit ?? []).map(parseRlimit),
    maxRssBytes: raw.maxRss === undefined ? undefined : parseInteger('--max-rss', raw.maxRss, { min: 1, max: MAX_RSS_MB }) * 1024 * 1024,
    maxAgeMs: raw.maxAge === undefined ? undefined : parseDuration('--max-age', raw.maxAge),
    checkIntervalMs: raw.checkInterval === undefined ? undefined : parseDuration('--check-interval', raw.checkInterval),
    control: nonEmpty('--control', raw.control),
    metrics: nonEmpty('--metrics', raw.metrics),
    statusPage: raw.statusPage ?? false,
  };
  if (options.maxRssBytes !== undefined && options.checkIntervalMs === undefined) {
    throw usageError('--max-rss needs --check-interval (how often to look at the children)');
  }
  if (options.idleTimeoutMs < 100) throw usageError('--idle-timeout must be at least 100ms');
  if (options.checkIntervalMs !== undefined && options.checkIntervalMs < 100) throw usageError('--check-interval must be at least 100ms');
  if (options.maxRestartDelayMs < options.restartDelayMs) {
    throw usageError(`--max-restart-delay (${options.maxRestartDelayMs} ms) is shorter than --restart-delay (${options.restartDelayMs} ms)`);
  }
  return options;
}

/** -F and --max-procs are one option: both given with different values is an error. */
function resolveProcs(raw: RawOptions): number {
  const f = raw.F === undefined ? undefined : parseInteger('-F', raw.F, { min: 1, max: MAX_PROCS });
  const max = raw.maxProcs === undefined ? undefined : parseInteger('--max-procs', raw.maxProcs, { min: 1, max: MAX_PROCS });
  if (f !== undefined && max !== undefined && f !== max) throw usageError(`-F ${f} and --max-procs ${max} disagree (they are the same option)`);
  return f ?? max ?? DEFAULTS.procs;
}

function resolveApp(raw: RawOptions): string[] {
  if (raw.app !== undefined && raw.app.length > 0) return raw.app;
  // spawn-fcgi's deprecated -f: the shell splits the words, so "-f '/x/app arg'" works.
  if (raw.f !== undefined && raw.f !== '') return ['/bin/sh', '-c', `exec ${raw.f}`];
  throw usageError('no FastCGI application given');
}

function resolveSocket(raw: RawOptions, socketActivation: boolean): SocketSpec | undefined {
  const hasPort = raw.p !== undefined;
  const hasPath = raw.s !== undefined;
  if (hasPort && hasPath) throw usageError('either a Unix domain socket or a TCP-port, but not both');
  if (hasPath) return parseUnixPath(raw.s!);
  if (hasPort) {
    const port = parsePort(raw.p!, '-p');
    return { kind: 'tcp', host: parseHost(raw.a ?? '0.0.0.0', '-a'), port };
  }
  if (socketActivation) return undefined;
  throw usageError('no socket given (use either -p or -s)');
}

const RLIMITS = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/** `nofile=4096`, `core=0`, `as=1073741824:unlimited`: checked here so that a typo is a usage error, not N failed children. */
export function parseRlimit(text: string): string {
  const match = /^([A-Za-z]+)=(\d+|unlimited|infinity)(?::(\d+|unlimited|infinity))?$/.exec(text);
  if (match === null || !RLIMITS.includes(match[1]!.toLowerCase())) {
    throw usageError(`invalid --rlimit '${text}' (NAME=SOFT[:HARD] with NAME one of ${RLIMITS.join(', ')})`);
  }
  return `${match[1]!.toLowerCase()}=${match[2]}${match[3] === undefined ? '' : `:${match[3]}`}`;
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

function parsePhpChildren(text: string): number | undefined {
  const n = parseInteger('-C', text, { min: -1, max: 65535 });
  return n < 0 ? undefined : n;
}

/** --max-rss in MB: 16 TiB is more memory than any one child has. */
const MAX_RSS_MB = 16 * 1024 * 1024;

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

function parseNameList(values: string[]): string[] {
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

function parseLogFormat(text: string | undefined): 'text' | 'json' {
  if (text === undefined || text === 'text') return 'text';
  if (text === 'json') return 'json';
  throw usageError(`invalid --log-format '${text}' (text or json)`);
}

function nonEmpty(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value === '') throw usageError(`${flag} needs a value`);
  return value;
}
