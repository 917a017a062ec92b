import { buildChildEnvironment } from './environment.js';
import { SetupError } from './errors.js';
import { resolveCredentials, resolveSocketOwner, type Credentials, type SocketOwner } from './identity.js';
import { checkHelper, helperPath, type LaunchSpec } from './launcher.js';
import { locateApp } from './app-path.js';
import { Logger } from './log.js';
import type { Options } from './options.js';
import { checkPidFile, removePidFile, writePidFile } from './pidfile.js';
import { Pool } from './pool.js';
import { installSignalHandlers } from './signals.js';
import { bindSocket, removeSocketFile, type BoundSocket } from './socket.js';

/** Where the start-up result goes: the terminal in the foreground, the waiting parent in daemon mode. */
export interface StartReporter {
  /** spawn-fcgi's stdout line `child spawned successfully: PID: n`. */
  spawned(slot: number, pid: number): void;
  /** A start-up error message (without the program prefix). */
  stderr(message: string): void;
  /** Start-up is over; `status` is the exit status the starting command should return. */
  done(status: number): void;
}

const ROOT_ONLY = ['-u', '-g', '-U', '-G', '-c', '-S'] as const;

interface Prepared {
  credentials: Credentials;
  owner: SocketOwner;
  appPath: string;
}

/** All checks that need no socket and no child: after this, only binding and spawning can fail. */
function prepare(options: Options, logger: Logger): Prepared {
  const isRoot = process.getuid?.() === 0;
  let credentials: Credentials = {};
  let owner: SocketOwner = {};
  if (isRoot) {
    credentials = resolveCredentials(options.user, options.group);
    owner = resolveSocketOwner(options.socketUser, options.socketGroup, credentials);
    if (credentials.uid === undefined) {
      logger.warn('root', 'the FastCGI application runs as root: use -u to drop privileges');
    }
  } else {
    const given = ROOT_ONLY.filter((flag) => rootOptionGiven(options, flag));
    if (given.length > 0) logger.warn('root-only', `${given.join(' ')} only work as root: ignored (as spawn-fcgi does)`);
  }
  const chroot = isRoot ? options.chroot : undefined;
  const appPath = locateApp(options.app[0]!, { chroot, chdir: options.chdir, searchPath: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' }).path;
  const helperProblem = checkHelper(helperPath());
  if (helperProblem !== undefined) throw new SetupError(helperProblem);
  if (options.pidFile !== undefined) checkPidFile(options.pidFile);
  return { credentials, owner, appPath };
}

function rootOptionGiven(options: Options, flag: (typeof ROOT_ONLY)[number]): boolean {
  const value = { '-u': options.user, '-g': options.group, '-U': options.socketUser, '-G': options.socketGroup, '-c': options.chroot, '-S': options.bindBeforeChroot || undefined }[flag];
  return value !== undefined;
}

function foregroundReporter(logger: Logger): StartReporter {
  return {
    spawned: (slot, pid) => logger.info('spawned', `child spawned successfully: PID: ${pid}`, { slot, pid }),
    stderr: (message) => logger.error('setup', message),
    done: () => undefined,
  };
}

/**
 * One run: validate, bind, start the pool, report, then supervise until stopped.
 * Resolves with the process exit status.
 */
export async function runSupervisor(options: Options, daemonReporter?: StartReporter): Promise<number> {
  const logger = new Logger({ format: options.logFormat, file: options.logFile });
  const reporter = daemonReporter ?? foregroundReporter(logger);
  const isRoot = process.getuid?.() === 0;
  let socket: BoundSocket | undefined;
  let prepared: Prepared;
  try {
    prepared = prepare(options, logger);
    socket = await bindSocket(options.socket, {
      mode: options.socketMode,
      owner: prepared.owner,
      chroot: isRoot ? options.chroot : undefined,
      bindBeforeChroot: options.bindBeforeChroot,
    });
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    reporter.stderr(error.message);
    reporter.done(error.exitCode);
    return error.exitCode;
  }
  const boundSocket = socket;

  const launchSpec: LaunchSpec = {
    appPath: prepared.appPath,
    appArgs: options.app.slice(1),
    socketFd: boundSocket.fd,
    backlog: options.backlog,
    env: buildChildEnvironment(process.env, options),
    credentials: prepared.credentials,
    chroot: isRoot ? options.chroot : undefined,
    chdir: options.chdir,
    rlimits: [],
  };

  let giveUpStatus: number | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => { resolveStopped = resolve; });
  const pool = new Pool({
    launchSpec,
    size: options.procs,
    policy: options,
    killSignal: options.killSignal,
    killTimeoutMs: options.killTimeoutMs,
    startCheckMs: options.startCheckMs,
    logger,
    onGiveUp: (status) => {
      giveUpStatus = status;
      void shutdown('giving up');
    },
  });

  let stopping: Promise<void> | undefined;
  const shutdown = (why: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info('stop', `stopping (${why}): sending the kill signal to ${pool.livePids().length} children`);
      await pool.stop();
      cleanup();
      resolveStopped();
    })();
    return stopping;
  };
  const cleanup = () => {
    if (!options.keepSocket) removeSocketFile(boundSocket);
    boundSocket.close();
    if (options.pidFile !== undefined) removePidFile(options.pidFile, process.pid);
  };

  const removeHandlers = installSignalHandlers({
    stop: (signal) => {
      if (stopping !== undefined) {
        logger.warn('stop', `${signal} again: killing the children now`);
        pool.killNow();
        return;
      }
      void shutdown(signal);
    },
    reload: () => {
      if (stopping !== undefined) return;
      logger.info('reload', 'SIGHUP: rolling restart');
      void pool.rollingRestart().then(() => logger.info('reload', 'rolling restart done'));
    },
    forward: (signal) => pool.forward(signal),
    grow: () => pool.grow(),
    shrink: () => pool.shrink(),
    reopenLogs: () => logger.reopen(),
  });

  const started = await pool.start();
  if (!started.ok) {
    removeHandlers();
    cleanup();
    reporter.stderr(started.reason);
    reporter.done(started.status);
    return started.status;
  }
  if (options.pidFile !== undefined) {
    try {
      writePidFile(options.pidFile, process.pid);
    } catch (error) {
      await pool.stop();
      removeHandlers();
      cleanup();
      reporter.stderr((error as Error).message);
      reporter.done(255);
      return 255;
    }
  }
  started.pids.forEach((pid, slot) => reporter.spawned(slot, pid));
  logger.info('ready', `${started.pids.length} children serving on ${boundSocket.label}`);
  reporter.done(0);

  await stopped;
  removeHandlers();
  logger.info('stopped', giveUpStatus === undefined ? 'all children gone' : `all children gone; exiting with ${giveUpStatus}`);
  return giveUpStatus ?? 0;
}
