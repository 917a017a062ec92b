/**
 * The Options type and `resolveOptions`: what the command line and the config file said (`RawOptions`)
 * becomes checked values. Each option's own check is in the option table; the checks between options are here.
 */
import { usageError } from '../common/errors.js';
import { OPTION_TABLE, type OptionEntry, type RawOptions } from './option-table.js';
import { MAX_PROCS, parseHost, parseInteger, parsePort, parseUnixPath, type SocketSpec } from './option-values.js';

export type { RawOptions } from './option-table.js';
export { DEFAULTS } from './option-table.js';
export {
  MAX_BACKLOG,
  MAX_DURATION_MS,
  MAX_PROCS,
  MAX_UNIX_PATH_BYTES,
  invalidValue,
  parseDuration,
  parseEnvAssignments,
  parseHost,
  parseInteger,
  parseKillSignal,
  parseMode,
  parsePort,
  parseRlimit,
  parseSignal,
  parseUnixPath,
  signalName,
  type SocketSpec,
} from './option-values.js';

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

export interface ResolveContext {
  /** systemd passed listening sockets: -s/-p become optional. */
  socketActivation: boolean;
}

export function resolveOptions(raw: RawOptions, context: ResolveContext = { socketActivation: false }): Options {
  const fields: Record<string, unknown> = { app: resolveApp(raw), socket: resolveSocket(raw, context.socketActivation) };
  for (const entry of OPTION_TABLE as readonly OptionEntry[]) {
    if (entry.field === undefined || entry.resolve === undefined) continue;
    fields[entry.field] = (entry.resolve as (value: unknown) => unknown)(raw[entry.key as keyof RawOptions]);
  }
  const options = fields as unknown as Options;
  resolvePoolBounds(raw, options);
  if (options.idleTimeoutMs < 100) throw usageError('--idle-timeout must be at least 100ms');
  if (options.maxRssBytes !== undefined && options.checkIntervalMs === undefined) {
    throw usageError('--max-rss needs --check-interval (how often to look at the children)');
  }
  if (options.checkIntervalMs !== undefined && options.checkIntervalMs < 100) throw usageError('--check-interval must be at least 100ms');
  if (options.maxRestartDelayMs < options.restartDelayMs) {
    throw usageError(`--max-restart-delay (${options.maxRestartDelayMs} ms) is shorter than --restart-delay (${options.restartDelayMs} ms)`);
  }
  return options;
}

/** -F and --max-procs are one option (both given with different values is an error); --min-procs defaults to it. */
function resolvePoolBounds(raw: RawOptions, options: Options): void {
  if (raw.maxProcs !== undefined) {
    const max = parseInteger('--max-procs', raw.maxProcs, { min: 1, max: MAX_PROCS });
    if (raw.F !== undefined && options.procs !== max) throw usageError(`-F ${options.procs} and --max-procs ${max} disagree (they are the same option)`);
    options.procs = max;
  }
  options.minProcs = raw.minProcs === undefined ? options.procs : parseInteger('--min-procs', raw.minProcs, { min: 0, max: MAX_PROCS });
  if (options.minProcs > options.procs) throw usageError(`--min-procs ${options.minProcs} is more than -F/--max-procs ${options.procs}`);
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
