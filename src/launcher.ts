import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { constants as osConstants } from 'node:os';
import { helperPath } from './helper-binary.js';
import type { Credentials } from './identity.js';
import { splitLines } from './lines.js';

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

/**
 * Start one child: the helper on fd 0 = the bound socket, stdout/stderr piped to `onLine`, fd 3 = status pipe.
 * The child gets its own session and process group (like spawn-fcgi's setsid), so a terminal's Ctrl-C
 * reaches only the supervisor, which then stops the pool in order.
 */
export function launch(spec: LaunchSpec, onLine: (stream: 'stdout' | 'stderr', line: string) => void): LaunchedChild {
  const subprocess = execa(helperPath(), helperArguments(spec), {
    // execa's types name descriptors 3-9 only; any open descriptor is passed to child_process.spawn as is.
    stdio: [spec.socketFd as 3, 'pipe', 'pipe', 'pipe'],
    env: spec.env,
    extendEnv: false,
    detached: true,
    cleanup: false,
    buffer: false,
    reject: false,
    stripFinalNewline: false,
  });
  // execa's own promise waits for the pipes too, which a grandchild may hold open; 'exit' is what counts.
  subprocess.catch(() => undefined);
  const exited = new Promise<ChildExit>((resolve) => {
    subprocess.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const pid = subprocess.pid;
  if (pid === undefined) {
    const failed = new Promise<ExecOutcome>((resolve) => subprocess.once('error', (e) => resolve({ ok: false, reason: `spawn failed: ${e.message}` })));
    return { pid: -1, exec: failed, exited, signal: () => undefined };
  }
  splitLines(subprocess.stdout!, (line) => onLine('stdout', line));
  splitLines(subprocess.stderr!, (line) => onLine('stderr', line));
  const exec = readStatus(subprocess.stdio[3] as Readable);
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
}

function readStatus(stream: Readable): Promise<ExecOutcome> {
  return new Promise((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => { text += chunk; });
    stream.once('close', () => resolve(text === '' ? { ok: true } : { ok: false, reason: text.trim() }));
    stream.once('error', () => undefined);
  });
}
