/**
 * Run the real spawn-fcgi-ts command (`node dist/cli.cjs`, built by `npm run build`) from end-to-end tests.
 *
 * - `startPool(args)` starts a supervisor in the foreground (`-n` is prepended) and resolves once its
 *   socket answers a FastCGI request, every `-F` child is up and the supervisor has said that start-up is
 *   over. Returns handles to its output, its children and a `stop()` that waits for the exit.
 * - `runCli(args)` runs a command that is expected to exit by itself (bad input, `-v`, daemon mode).
 * - `track(pid)` hands any other process (a daemonized supervisor...) to the same clean-up.
 *
 * Everything started here is registered and, when the test file ends (pass or fail), sent SIGTERM
 * and then SIGKILL together with the descendants it had, so a failing test leaves nothing running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { fcgiRequest, parseCgiResponse, type FcgiRequestOptions, type FcgiResponse, type FcgiTarget } from './fcgi-mini.js';
import { childrenOf, cmdline, descendants, isGone, signalIfAlive, sleep, waitFor } from './proc.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The bundled command line (npm run build). */
export const CLI = join(ROOT, 'dist', 'cli.cjs');
/** The static C FastCGI responder (npm run build:helper): answers with its pid, ids, groups, cwd, environment. */
export const RESPONDER = join(ROOT, 'build', 'static-responder');
/** PHP scripts used through php-cgi. */
export const PHP_FIXTURES = join(ROOT, 'test', 'fixtures', 'php');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// ---------------------------------------------------------------- clean-up registry

const tracked = new Set<number>();

/** Have `pid` (and the descendants it has at clean-up time) stopped when the test file ends. */
export function track(pid: number): void {
  tracked.add(pid);
}

/** Stop tracking a process that the test has already stopped itself. */
export function untrack(pid: number): void {
  tracked.delete(pid);
}

/** SIGTERM every tracked process, wait up to `graceMs`, then SIGKILL it and every descendant seen. */
export async function cleanupAll(graceMs = 5000): Promise<void> {
  const pids = [...tracked].filter((pid) => !isGone(pid));
  tracked.clear();
  if (pids.length === 0) return;
  const family = new Set<number>();
  for (const pid of pids) for (const d of descendants(pid)) family.add(d);
  for (const pid of pids) signalIfAlive(pid, 'SIGTERM');
  await waitFor(() => pids.every(isGone), { timeoutMs: graceMs, what: 'tracked processes to exit' }).catch(() => undefined);
  for (const pid of pids) {
    for (const d of descendants(pid)) family.add(d);
    signalIfAlive(pid, 'SIGKILL');
  }
  for (const pid of family) signalIfAlive(pid, 'SIGKILL');
}

after(() => cleanupAll());
// Last resort if the runner is interrupted: no waiting possible here, so SIGKILL at once.
process.once('exit', () => {
  for (const pid of tracked) signalIfAlive(pid, 'SIGKILL');
});

// ---------------------------------------------------------------- starting the command

export interface CommandOptions {
  /** The whole environment of the command (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run under this umask (through `sh -c 'umask X; exec node ...'`; the pid stays the same). */
  umask?: string;
}

function spawnCli(args: string[], options: CommandOptions): ChildProcess {
  const [command, argv] =
    options.umask === undefined
      ? [process.execPath, [CLI, ...args]]
      : ['/bin/sh', ['-c', `umask ${options.umask} && exec "$0" "$@"`, process.execPath, CLI, ...args]];
  const child = spawn(command, argv, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  track(child.pid);
  return child;
}

function collect(child: ChildProcess): { stdout: () => string; stderr: () => string } {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return { stdout: () => stdout, stderr: () => stderr };
}

export interface CliResult extends Exit {
  pid: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `node dist/cli.cjs ...args` to completion (no `-n` added). Rejects if it is still running after
 * `timeoutMs` (it is then killed), with its output in the message.
 */
export async function runCli(args: string[], options: CommandOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawnCli(args, options);
  const output = collect(child);
  const timeoutMs = options.timeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  const exit = await new Promise<Exit | undefined>((resolve) => {
    // 'close': the exit and the end of both pipes, so the output is complete.
    child.once('close', (code, signal) => resolve({ code, signal }));
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  clearTimeout(timer);
  if (exit === undefined) {
    signalIfAlive(child.pid!, 'SIGKILL');
    throw new Error(`spawn-fcgi-ts ${args.join(' ')} still running after ${timeoutMs} ms\nstdout: ${output.stdout()}\nstderr: ${output.stderr()}`);
  }
  untrack(child.pid!);
  return { pid: child.pid!, ...exit, stdout: output.stdout(), stderr: output.stderr() };
}

// ---------------------------------------------------------------- a running pool

export interface PoolOptions extends CommandOptions {
  /** Where to send the readiness probe (default: derived from -s/-c/-S or -a/-p in `args`). */
  target?: FcgiTarget;
  /** FastCGI params of the readiness probe (default: a GET with no script; any complete answer counts). */
  probeParams?: Record<string, string>;
  /** Give up waiting for readiness after this long (default 15 s). */
  readyTimeoutMs?: number;
  /** Resolve (instead of rejecting) when the command exits before it serves; check `exitStatus()`. */
  allowExit?: boolean;
  /**
   * Start-up is over when stderr matches this (the supervisor's "N children serving on ..." line, text or
   * JSON); until then a child may still be inside its start check. null: do not wait for a line
   * (automatic with --log-file, whose lines do not reach stderr).
   */
  readyPattern?: RegExp | null;
}

export const READY_LINE = /(?:child|children) serving on |"event":"ready"/;

export interface RunningPool {
  /** The supervisor's pid. */
  pid: number;
  /** Where the pool serves. */
  target: FcgiTarget;
  stdout(): string;
  stderr(): string;
  /** The pool's live FastCGI apps (from /proc), sorted: its spawner's children (see `poolChildren`). */
  childPids(): number[];
  /** Every live direct child of the supervisor: its spawner and auxiliary programs (notify, queue watcher). */
  allChildPids(): number[];
  /** Settles when the supervisor has exited. */
  exited: Promise<Exit>;
  /** The exit, once it happened. */
  exitStatus(): Exit | undefined;
  /** One FastCGI request to the pool (fcgi-mini), with the CGI answer split into headers and body. */
  request(params?: Record<string, string>, options?: FcgiRequestOptions): Promise<FcgiAnswer>;
  /** Send `signal` (default SIGTERM) and wait for the exit (rejects after `timeoutMs`, default 15 s). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
  /** SIGKILL, no waiting. */
  kill(): void;
}

export interface FcgiAnswer extends FcgiResponse {
  headers: Record<string, string>;
  body: string;
}

/** The supervisor's resident spawners (the helper in its --spawner mode): the parents of its FastCGI children. */
export function spawnersOf(supervisorPid: number): number[] {
  return childrenOf(supervisorPid).filter((pid) => cmdline(pid).includes(' --spawner '));
}

/**
 * Live FastCGI apps of a supervisor (or children about to exec one), sorted: the children of its spawner,
 * which are its grandchildren in the process tree.
 */
export function poolChildren(supervisorPid: number): number[] {
  return spawnersOf(supervisorPid)
    .flatMap((spawner) => childrenOf(spawner))
    .sort((a, b) => a - b);
}

/** The value of the last occurrence of `-flag` in a spawn-fcgi argv (before `--`). */
export function flagValue(args: string[], flag: string): string | undefined {
  const end = args.indexOf('--');
  const options = end < 0 ? args : args.slice(0, end);
  let value: string | undefined;
  for (let i = 0; i < options.length - 1; i++) if (options[i] === flag) value = options[i + 1];
  return value;
}

/** Where a pool started with these spawn-fcgi arguments can be reached from outside (the supervisor's view). */
export function targetOf(args: string[]): FcgiTarget {
  const end = args.indexOf('--');
  const options = end < 0 ? args : args.slice(0, end);
  const path = flagValue(args, '-s');
  if (path !== undefined) {
    if (path.startsWith('@')) return { path: `\0${path.slice(1)}` };
    const chroot = flagValue(args, '-c');
    return { path: chroot !== undefined && !options.includes('-S') ? join(chroot, path) : path };
  }
  const port = flagValue(args, '-p');
  if (port === undefined) throw new Error(`no -s or -p in ${args.join(' ')}: give PoolOptions.target`);
  let host = (flagValue(args, '-a') ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return { host, port: Number(port) };
}

export async function fcgiGet(target: FcgiTarget, params: Record<string, string> = {}, options: FcgiRequestOptions = {}): Promise<FcgiAnswer> {
  const response = await fcgiRequest(target, { REQUEST_METHOD: 'GET', ...params }, options);
  return { ...response, ...parseCgiResponse(response.stdout) };
}

/**
 * Start `node dist/cli.cjs -n ...args` and wait until it serves: a FastCGI request through its socket
 * gets a complete answer, it has as many children as `-F` asks (default 1; `--min-procs` when given), and its stderr has the
 * start-up-is-over line (`readyPattern`). Rejects with the output if it exits first (unless `allowExit`)
 * or is not ready after `readyTimeoutMs`; the process stays registered for the clean-up either way.
 */
export async function startPool(args: string[], options: PoolOptions = {}): Promise<RunningPool> {
  const argv = ['-n', ...args];
  const target = options.target ?? targetOf(args);
  // A pool that sizes itself starts --min-procs children.
  const procs = Number(flagValue(args, '--min-procs') ?? flagValue(args, '-F') ?? '1');
  const child = spawnCli(argv, options);
  const pid = child.pid!;
  const output = collect(child);
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const pool: RunningPool = {
    pid,
    target,
    stdout: output.stdout,
    stderr: output.stderr,
    childPids: () => poolChildren(pid),
    allChildPids: () => childrenOf(pid),
    exited,
    exitStatus: () => exit,
    request: (params = {}, requestOptions = {}) => fcgiGet(target, params, requestOptions),
    stop: async (signal = 'SIGTERM', timeoutMs = 15_000) => {
      if (exit === undefined) process.kill(pid, signal);
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        exited,
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (result === undefined) throw new Error(`supervisor ${pid} still running ${timeoutMs} ms after ${signal}\nstderr: ${output.stderr()}`);
      // The pipes may trail the exit a little: let the last output arrive.
      await sleep(20);
      untrack(pid);
      return result;
    },
    kill: () => signalIfAlive(pid, 'SIGKILL'),
  };

  const readyPattern = options.readyPattern !== undefined ? options.readyPattern : args.includes('--log-file') ? null : READY_LINE;
  const timeoutMs = options.readyTimeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (exit === undefined) {
    try {
      await fcgiGet(target, options.probeParams ?? {}, { timeoutMs: 2000 });
      const count = poolChildren(pid).length;
      if (count >= procs && (readyPattern === null || readyPattern.test(output.stderr()))) return pool;
      lastError = `${count} of ${procs} children${readyPattern === null ? '' : `, waiting for ${readyPattern} on stderr`}`;
    } catch (error) {
      lastError = (error as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(`spawn-fcgi-ts ${argv.join(' ')} not serving after ${timeoutMs} ms (${lastError})\nstderr: ${output.stderr()}`);
    }
    await sleep(50);
  }
  await sleep(20);
  if (options.allowExit) return pool;
  throw new Error(`spawn-fcgi-ts ${argv.join(' ')} exited before serving (${JSON.stringify(exit)})\nstdout: ${output.stdout()}\nstderr: ${output.stderr()}`);
}

// ---------------------------------------------------------------- other clients and fixtures

/**
 * One request through libfcgi's `cgi-fcgi -bind -connect <socket|host:port>` (IPv4 or a unix path
 * only: libfcgi cannot connect to IPv6). CGI variables go in through its environment.
 */
export function cgiFcgi(connect: string, cgiEnv: Record<string, string>, timeoutMs = 10_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('cgi-fcgi', ['-bind', '-connect', connect], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', REQUEST_METHOD: 'GET', ...cgiEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = collect(child);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cgi-fcgi -connect ${connect} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ pid: child.pid ?? -1, code, signal, stdout: output.stdout(), stderr: output.stderr() });
    });
  });
}

/** What build/static-responder says about the process that answered. */
export interface ResponderInfo {
  pid: number;
  ppid: number;
  uid: number;
  euid: number;
  gid: number;
  egid: number;
  groups: number[];
  cwd: string;
  /** Names of the environment variables, in order. */
  envNames: string[];
  /** The environment, from the `envval:NAME=value` lines. */
  env: Record<string, string>;
}

export function parseResponder(body: string): ResponderInfo {
  const line = (name: string): string => {
    const match = new RegExp(`^${name}=(.*)$`, 'm').exec(body);
    if (match === null) throw new Error(`no ${name}= line in the responder's answer:\n${body}`);
    return match[1]!;
  };
  const pair = (name: string): [number, number] => {
    const match = new RegExp(`^${name}=(\\d+) e${name}=(\\d+)$`, 'm').exec(body);
    if (match === null) throw new Error(`no ${name}= line in the responder's answer:\n${body}`);
    return [Number(match[1]), Number(match[2])];
  };
  const env: Record<string, string> = {};
  for (const match of body.matchAll(/^envval:([^=\n]*)=(.*)$/gm)) env[match[1]!] = match[2]!;
  const [uid, euid] = pair('uid');
  const [gid, egid] = pair('gid');
  const groups = line('groups');
  const names = line('env');
  return {
    pid: Number(line('pid')),
    ppid: Number(line('ppid')),
    uid,
    euid,
    gid,
    egid,
    groups: groups === '' ? [] : groups.split(',').map(Number),
    cwd: line('cwd'),
    envNames: names === '' ? [] : names.split(','),
    env,
  };
}

/** Fail early with a useful message when the build outputs are missing. */
export function requireBuild(): void {
  for (const file of [CLI, RESPONDER, join(ROOT, 'build', 'spawn-fcgi-ts-helper')]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run 'npm run build' first`);
  }
}
