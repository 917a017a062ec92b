import { constants as osConstants } from 'node:os';
import type { Credentials } from '../common/identity.js';
import { Spawner } from './spawner.js';

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
  /** -1 until the child is forked (see `forked`), and for a child that never existed. */
  readonly pid: number;
  /** Settles with the pid once the child is forked, or with -1 if no process could be made. */
  forked: Promise<number>;
  /** Settles when the helper has exec'd the app (the status pipe closed empty) or reports why it could not. */
  exec: Promise<ExecOutcome>;
  exited: Promise<ChildExit>;
  /** Signal the child's whole process group (php-cgi's own workers included); held until it is forked. */
  signal(signal: number | NodeJS.Signals): void;
  /**
   * Arm (or disarm) the launcher's own restart: if the child dies while armed, the launcher starts its
   * replacement at once, before the pool hears of the death, and `replacement` holds it when `exited`
   * settles. The pool arms only a child whose death its policy answers with a restart at once, and disarms
   * one before signalling it on purpose. Optional: a launcher without it leaves every restart to the pool.
   */
  restartOnExit?(armed: boolean): void;
  /** Set when `exited` settles if the launcher started a replacement: the pool takes it (adopts it, or retires it). */
  readonly replacement?: { take(onLine: (stream: 'stdout' | 'stderr', line: string) => void): LaunchedChild };
}

/**
 * The helper's options for a child, in the order it applies them (the program follows after `--`).
 * The children's death signal is SIGTERM: it lets a php-cgi master take its own workers down, where
 * SIGKILL would orphan them.
 */
export function childSetupArguments(spec: LaunchSpec): string[] {
  const args = ['--listen', String(spec.backlog)];
  for (const limit of spec.rlimits) args.push('--rlimit', limit);
  const { uid, gid, groups } = spec.credentials;
  if (gid !== undefined) args.push('--gid', String(gid));
  if (groups !== undefined && (uid !== undefined || gid !== undefined)) args.push('--groups', groups.join(','));
  if (spec.chroot !== undefined) args.push('--chroot', spec.chroot);
  if (uid !== undefined) args.push('--uid', String(uid));
  if (spec.chdir !== undefined) args.push('--chdir', spec.chdir);
  args.push('--pdeathsig', String(osConstants.signals.SIGTERM));
  return args;
}

/** Starts one child; injected into the Pool so that unit tests can drive it with a fake. */
export type Launcher = (spec: LaunchSpec, onLine: (stream: 'stdout' | 'stderr', line: string) => void) => LaunchedChild;

let current: { spec: LaunchSpec; spawner: Spawner } | undefined;

/**
 * Start one child through the pool's resident spawner (src/child/spawner.ts), starting the spawner first
 * when there is none for this spec yet or the last one ended. The spawner is a `node:child_process`
 * spawn, not execa: a failed spawn must be seen in every form (a synchronous throw for E2BIG, an 'error'
 * event without 'exit' for ENOENT/EAGAIN/EMFILE), and for EMFILE execa fails inside itself ('stdio is
 * not iterable') and leaves the error event unhandled.
 *
 * Never throws: a child that cannot be made has pid -1, its `exec` reports `spawn failed: ...` and its
 * `exited` settles with it. Each child gets its own session and process group (spawn-fcgi's setsid), so
 * a terminal's Ctrl-C reaches only the supervisor, which then stops the pool in order.
 */
export const launch: Launcher = (spec, onLine) => {
  if (current === undefined || current.spec !== spec || !current.spawner.alive) {
    current?.spawner.release();
    const args = ['--spawner', '--parent', String(process.pid), ...childSetupArguments(spec), '--', spec.appPath, ...spec.appArgs];
    current = { spec, spawner: new Spawner(spec.helper, args, spec.socketFd, spec.env) };
  }
  return current.spawner.launch(onLine);
};
