/**
 * Load generators for supervision tests.
 *
 * - `startWrk({ url, ... })` runs `wrk` (typically against nginx in front of a pool) in the background
 *   and resolves, when it is done, with wrk's own counts: requests, non-2xx/3xx responses and socket
 *   errors (connect, read, write, timeout), parsed from its report. The test can signal the supervisor
 *   while it runs.
 * - `fcgiLoad({ target, ... })` is an in-process load loop straight at the FastCGI socket with the
 *   product's client (tools/fcgi/client.ts): `concurrency` loops each sending one request at a time,
 *   for a duration or a number of requests, recording every request's outcome (so a test can tell
 *   which failed requests a child had accepted).
 */
import { spawn } from 'node:child_process';
import { fcgiRequest, type FcgiTarget } from '../../tools/fcgi/client.js';
import { signalIfAlive } from './proc.js';

export const WRK = '/usr/bin/wrk';

// ---------------------------------------------------------------- wrk

export interface WrkOptions {
  url: string;
  /** -t (default 2) */
  threads?: number;
  /** -c (default 32) */
  connections?: number;
  /** -d in seconds (default 5) */
  durationS?: number;
  /** --timeout in seconds: a response slower than this counts as a timeout error (default 5) */
  timeoutS?: number;
}

export interface WrkSocketErrors {
  connect: number;
  read: number;
  write: number;
  timeout: number;
}

export interface WrkResult {
  /** Completed requests ("N requests in Xs"). */
  requests: number;
  /** Responses with a status other than 2xx or 3xx. */
  non2xx: number;
  socketErrors: WrkSocketErrors;
  /** connect + read + write + timeout */
  totalSocketErrors: number;
  /** requests / duration, as wrk reports it. */
  requestsPerSec: number;
  /** wrk's whole report, for diagnostics. */
  output: string;
}

export interface RunningWrk {
  pid: number;
  /** Resolves with the parsed report once wrk has exited; rejects if it failed or printed no report. */
  done: Promise<WrkResult>;
  /** SIGKILL wrk (if a test gives up early). */
  kill(): void;
}

/** Parse wrk's report (the text it prints on stdout). */
export function parseWrkOutput(output: string): WrkResult {
  const requests = /^\s*(\d+) requests in ([\d.]+)(\w+)/m.exec(output);
  if (requests === null) throw new Error(`no "N requests in" line in wrk's output:\n${output}`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const socketErrors: WrkSocketErrors =
    errors === null
      ? { connect: 0, read: 0, write: 0, timeout: 0 }
      : { connect: Number(errors[1]), read: Number(errors[2]), write: Number(errors[3]), timeout: Number(errors[4]) };
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output);
  return {
    requests: Number(requests[1]),
    non2xx: non2xx === null ? 0 : Number(non2xx[1]),
    socketErrors,
    totalSocketErrors: socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout,
    requestsPerSec: rate === null ? 0 : Number(rate[1]),
    output,
  };
}

/** Start wrk in the background; `await run.done` for the counts. wrk is killed if it outlives its duration by 15 s. */
export function startWrk(options: WrkOptions): RunningWrk {
  const durationS = options.durationS ?? 5;
  const args = [
    '-t',
    String(options.threads ?? 2),
    '-c',
    String(options.connections ?? 32),
    '-d',
    `${durationS}s`,
    '--timeout',
    `${options.timeoutS ?? 5}s`,
    options.url,
  ];
  const child = spawn(WRK, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${WRK}`);
  const pid = child.pid;
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const guard = setTimeout(() => signalIfAlive(pid, 'SIGKILL'), (durationS + 15) * 1000);
  const killOnExit = () => signalIfAlive(pid, 'SIGKILL');
  process.once('exit', killOnExit);
  const done = new Promise<WrkResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(guard);
      process.off('exit', killOnExit);
      if (code !== 0) {
        reject(new Error(`wrk ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${stdout}${stderr}`));
        return;
      }
      try {
        resolve(parseWrkOutput(stdout));
      } catch (error) {
        reject(error);
      }
    });
  });
  return { pid, done, kill: () => signalIfAlive(pid, 'SIGKILL') };
}

/** Run wrk to the end. */
export function runWrk(options: WrkOptions): Promise<WrkResult> {
  return startWrk(options).done;
}

// ---------------------------------------------------------------- in-process FastCGI load

export interface FcgiLoadOptions {
  target: FcgiTarget;
  /** Parallel request loops (default 8). */
  concurrency?: number;
  /** Stop starting requests after this long (default 2000 ms), unless `requests` is given. */
  durationMs?: number;
  /** Send exactly this many requests in all (overrides `durationMs`). */
  requests?: number;
  /** The params of request number `i` (0-based, in the order they are started). Default: an empty GET. */
  params?: (i: number) => Record<string, string>;
  /** Per-request time limit (default 10 s). */
  timeoutMs?: number;
  /** Stop starting new requests once this resolves (e.g. the supervisor exited). */
  until?: Promise<unknown>;
}

export interface FcgiOutcome {
  /** Request number, as passed to `params`. */
  i: number;
  /** A complete answer with a 2xx status and appStatus 0. */
  ok: boolean;
  /** HTTP status of a complete answer. */
  status?: number;
  body?: string;
  /** Why it failed without an answer (ECONNRESET, ECONNREFUSED, ENOENT, timeout, protocol error). */
  error?: string;
  startedAt: number;
  endedAt: number;
}

export interface FcgiLoadResult {
  /** Every request, in the order they finished. */
  outcomes: FcgiOutcome[];
  ok: number;
  failed: number;
  /** Failure reasons → count (a non-2xx status counts as `status NNN`). */
  errors: Record<string, number>;
}

/** Send requests with the product's FastCGI client from `concurrency` loops; never throws for a failed request. */
export async function fcgiLoad(options: FcgiLoadOptions): Promise<FcgiLoadResult> {
  const concurrency = options.concurrency ?? 8;
  const deadline = Date.now() + (options.durationMs ?? 2000);
  const limit = options.requests;
  let stopped = false;
  void options.until?.then(
    () => {
      stopped = true;
    },
    () => {
      stopped = true;
    },
  );
  let next = 0;
  const outcomes: FcgiOutcome[] = [];
  const more = () => !stopped && (limit !== undefined ? next < limit : Date.now() < deadline);

  const loop = async () => {
    while (more()) {
      const i = next++;
      const startedAt = Date.now();
      try {
        const response = await fcgiRequest(options.target, {
          params: options.params?.(i) ?? {},
          timeoutMs: options.timeoutMs ?? 10_000,
        });
        const ok = response.status >= 200 && response.status < 300 && response.appStatus === 0 && response.protocolStatus === 0;
        outcomes.push({ i, ok, status: response.status, body: response.body, startedAt, endedAt: Date.now() });
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        outcomes.push({ i, ok: false, error: e.code ?? e.name ?? String(error), startedAt, endedAt: Date.now() });
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));

  const errors: Record<string, number> = {};
  for (const outcome of outcomes) {
    if (outcome.ok) continue;
    const key = outcome.error ?? `status ${outcome.status}`;
    errors[key] = (errors[key] ?? 0) + 1;
  }
  const ok = outcomes.filter((o) => o.ok).length;
  return { outcomes, ok, failed: outcomes.length - ok, errors };
}
