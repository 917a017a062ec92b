import type { Readable } from 'node:stream';
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Credentials } from '../common/identity.js';
import { splitLines } from '../common/lines.js';

/** Everything a child needs; built once per pool, the same for every slot. */
export interface LaunchSpec {
  appPath: string;
  appArgs: string[];
  socketFd: number;
  backlog: number;
  env: Record<string, string>;
  credentials: Credentials;
  chroot?: string;
  chdir?: string;
  rlimits: string[];
  /** The exec helper to run (see helper-binary.ts's helperPath). */
  helper: string;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type ExecOutcome = { ok: true } | { ok: false; reason: string };

export interface LaunchedChild {
  pid: number;
  /** Settles when the helper has exec'd the app (the status pipe closed empty) or reports why it could not. */
  exec: Promise<ExecOutcome>;
  exited: Promise<ChildExit>;
  /** Signal the child's whole process group (php-cgi's own workers included). */
  signal(signal: number | NodeJS.Signals): void;
}

/** The helper's argv: its options in the order it applies them, then the app. */
export function helperArguments(spec: LaunchSpec): string[] {
  const args = ['--status-fd', '3', '--listen', String(spec.backlog)];
  for (const limit of spec.rlimits) args.push('--rlimit', limit);
  const { uid, gid, groups } = spec.credentials;
  if (gid !== undefined) args.push('--gid', String(gid));
  if (groups !== undefined && (uid !== undefined || gid !== undefined)) args.push('--groups', groups.join(','));
  if (spec.chroot !== undefined) args.push('--chroot', spec.chroot);
  if (uid !== undefined) args.push('--uid', String(uid));
  if (spec.chdir !== undefined) args.push('--chdir', spec.chdir);
  // SIGTERM lets a php-cgi master take its own workers down; SIGKILL would orphan them.
  args.push('--pdeathsig', String(osConstants.signals.SIGTERM), '--parent', String(process.pid));
  args.push('--', spec.appPath, ...spec.appArgs);
  return args;
}

/** Starts one child; injected into the Pool so that unit tests can drive it with a fake. */
export type Launcher = (spec: LaunchSpec, onLine: (stream: 'stdout' | 'stderr', line: string) => void) => LaunchedChild;

/**
 * Start one child: the helper on fd 0 = the bound socket, stdout/stderr piped to `onLine`, fd 3 = status pipe.
 * The child gets its own session and process group (like spawn-fcgi's setsid), so a terminal's Ctrl-C
 * reaches only the supervisor, which then stops the pool in order.
 *
 * Never throws: a spawn that fails (no process: EAGAIN, ENOENT, E2BIG, ENOEXEC come as an 'error' event
 * without 'exit'; EMFILE/ENFILE can throw at once) gives a child with pid -1 whose `exec` reports
 * `spawn failed: ...` and whose `exited` settles with it.
 */
export const launch: Launcher = (spec, onLine) => {
  let subprocess: ChildProcess;
  try {
    // child_process rather than execa: a failed spawn must be seen in every form (a synchronous throw for
    // E2BIG/ENOEXEC, an 'error' event without 'exit' for EAGAIN/ENOENT/EMFILE), and for EMFILE execa
    // fails inside itself ('stdio is not iterable') and leaves the error event unhandled.
    subprocess = spawn(spec.helper, helperArguments(spec), {
      stdio: [spec.socketFd, 'pipe', 'pipe', 'pipe'],
      env: spec.env,
      detached: true,
    });
  } catch (error) {
    return failedChild(Promise.resolve(spawnFailure(error)));
  }
  const pid = subprocess.pid;
  if (pid === undefined) {
    return failedChild(new Promise((resolve) => subprocess.once('error', (error) => resolve(spawnFailure(error)))));
  }
  subprocess.on('error', () => undefined);
  const status = subprocess.stdio[3] as Readable | null;
  if (subprocess.stdout === null || subprocess.stderr === null || status === null) {
    subprocess.kill('SIGKILL');
    return failedChild(Promise.resolve({ ok: false, reason: 'spawn failed: its pipes are missing' }));
  }
  const exited = new Promise<ChildExit>((resolve) => {
    subprocess.once('exit', (code, signal) => resolve({ code, signal }));
  });
  splitLines(subprocess.stdout, (line) => onLine('stdout', line));
  splitLines(subprocess.stderr, (line) => onLine('stderr', line));
  const exec = readStatus(status);
  return {
    pid,
    exec,
    exited,
    signal: (signal) => {
      try {
        process.kill(-pid, signal);
      } catch {
        // The group is already gone.
      }
    },
  };
};

function failedChild(failure: Promise<ExecOutcome>): LaunchedChild {
  const exec = failure;
  return { pid: -1, exec, exited: exec.then(() => ({ code: null, signal: null })), signal: () => undefined };
}

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

function spawnFailure(error: unknown): ExecOutcome {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const known = code !== undefined ? SPAWN_ERRORS[code] : undefined;
  const what = code ?? (error instanceof Error ? error.message : String(error));
  return { ok: false, reason: `spawn failed: ${what}${known !== undefined ? ` (${known})` : ''}` };
}

function readStatus(stream: Readable): Promise<ExecOutcome> {
  return new Promise((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      text += chunk;
    });
    stream.once('close', () => resolve(text === '' ? { ok: true } : { ok: false, reason: text.trim() }));
    stream.once('error', () => undefined);
  });
}
