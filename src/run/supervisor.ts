import { access, fstatSync } from 'node:fs';
import { adoptPassedSocket, passedSockets, type PassedSocket } from '../socket/activation.js';
// Only what the path to the first spawn needs is imported statically; the observers, the drain, sd_notify and
// the user database (execa) load on use, after the children are up or only when asked for (issue 10).
import type { Observed } from '../observe/control.js';
import { buildChildEnvironment } from '../child/environment.js';
import { SetupError } from '../common/errors.js';
import type { Credentials, SocketOwner } from '../common/identity.js';
import { checkHelper, helperPath } from '../child/helper-binary.js';
import type { LaunchSpec } from '../child/launcher.js';
import { every, systemClock } from '../common/clock.js';
import { locateApp } from '../child/app-path.js';
import { Logger, colourPainter, count, formatMs, useColour, type LoggerOptions } from '../observe/log.js';
import { signalName, type Options } from '../options/options.js';
import { checkPidFile, removePidFile, writePidFile } from './pidfile.js';
import { Pool } from '../pool/pool.js';
import { notifyStatus } from '../pool/pool-log.js';
import { installSignalHandlers } from './signals.js';
import { bindSocket, releaseSocket, removeSocketFile, type BoundSocket } from '../socket/socket.js';
import { watchQueue, type QueueWatch } from '../pool/queue-watch.js';

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
  chroot?: string;
  /** The exec helper's path (SPAWN_FCGI_TS_HELPER, else the build's). */
  helper: string;
}

/** All checks that need no socket and no child: after this, only binding and spawning can fail. */
async function prepare(options: Options, logger: Logger, env: NodeJS.ProcessEnv): Promise<Prepared> {
  const isRoot = process.getuid?.() === 0;
  let credentials: Credentials = {};
  let owner: SocketOwner = {};
  if (isRoot) {
    // No -u/-g/-U/-G: nothing to look up (both resolve to {}), and the user database code stays unloaded.
    if ([options.user, options.group, options.socketUser, options.socketGroup].some((name) => name !== undefined)) {
      const { resolveCredentials, resolveSocketOwner } = await import('../common/identity.js');
      credentials = resolveCredentials(options.user, options.group);
      owner = resolveSocketOwner(options.socketUser, options.socketGroup, credentials);
    }
    if (credentials.uid === undefined) logger.warn('root', 'the FastCGI application runs as root: use -u to drop privileges');
  } else {
    const given = ROOT_ONLY.filter((flag) => rootOptionGiven(options, flag));
    if (given.length > 0) logger.warn('root-only', `${given.join(' ')} only work as root: ignored (as spawn-fcgi does)`);
  }
  const chroot = isRoot ? options.chroot : undefined;
  const appPath = locateApp(options.app[0]!, { chroot, chdir: options.chdir, searchPath: env.PATH ?? '/usr/local/bin:/usr/bin:/bin' }).path;
  const helper = helperPath(env);
  const helperProblem = checkHelper(helper, env);
  if (helperProblem !== undefined) throw new SetupError(helperProblem);
  if (options.pidFile !== undefined) checkPidFile(options.pidFile);
  return { credentials, owner, appPath, chroot, helper };
}

function rootOptionGiven(options: Options, flag: (typeof ROOT_ONLY)[number]): boolean {
  const value = {
    '-u': options.user,
    '-g': options.group,
    '-U': options.socketUser,
    '-G': options.socketGroup,
    '-c': options.chroot,
    '-S': options.bindBeforeChroot || undefined,
  }[flag];
  return value !== undefined;
}

/**
 * Make libuv start its thread pool now: it does on first use, and if a thread cannot be created then (a pids
 * cgroup or RLIMIT_NPROC filled by the children) Node aborts, taking the pool down on a status request or a
 * log reopen. Nothing in the path to the first spawn uses it, so it is asked for here.
 */
function startThreadPool(): void {
  access(process.execPath, () => undefined);
}

/** The pool's socket: the one systemd passed, else a fresh bind. */
async function acquireSocket(options: Options, prepared: Prepared, passed: PassedSocket[]): Promise<BoundSocket> {
  if (passed.length > 0) return adoptPassedSocket(passed, options.fdName, options.socket);
  return bindSocket(options.socket!, {
    mode: options.socketMode,
    owner: prepared.owner,
    chroot: prepared.chroot,
    bindBeforeChroot: options.bindBeforeChroot,
  });
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
export async function runSupervisor(options: Options, env: NodeJS.ProcessEnv, daemonReporter?: StartReporter): Promise<number> {
  const tty = process.stderr.isTTY === true;
  const loggerOptions: LoggerOptions = {
    format: options.logFormat,
    file: options.logFile,
    tty,
    colour: useColour(env, tty) && options.logFormat === 'text' ? await colourPainter() : undefined,
    debug: env.SPAWN_FCGI_TS_DEBUG !== undefined,
  };
  let logger: Logger;
  try {
    logger = new Logger(loggerOptions);
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    const reporter = daemonReporter ?? foregroundReporter(new Logger({ ...loggerOptions, file: undefined }));
    reporter.stderr(error.message);
    reporter.done(error.exitCode);
    return error.exitCode;
  }
  try {
    return await supervise(options, logger, env, daemonReporter);
  } finally {
    logger.close();
  }
}

async function supervise(options: Options, logger: Logger, env: NodeJS.ProcessEnv, daemonReporter?: StartReporter): Promise<number> {
  const startedAt = Date.now();
  const reporter = daemonReporter ?? foregroundReporter(logger);
  const notifier = env.NOTIFY_SOCKET
    ? (await import('../observe/sd-notify.js')).createNotifier(env, { onError: (line) => logger.warn('notify', line) })
    : undefined;
  const fail = (message: string, status: number): number => {
    reporter.stderr(message);
    reporter.done(status);
    void notifier?.close();
    return status;
  };

  startThreadPool();
  let socket: BoundSocket;
  const passed = passedSockets(env);
  let prepared: Prepared;
  try {
    prepared = await prepare(options, logger, env);
    socket = await acquireSocket(options, prepared, passed);
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    return fail(error.message, error.exitCode);
  }

  const launchSpec: LaunchSpec = {
    appPath: prepared.appPath,
    appArgs: options.app.slice(1),
    socketFd: socket.fd,
    backlog: options.backlog,
    env: buildChildEnvironment(env, options),
    helper: prepared.helper,
    credentials: prepared.credentials,
    chroot: prepared.chroot,
    chdir: options.chdir,
    rlimits: options.rlimits,
  };

  let giveUpStatus: number | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });
  const pool = new Pool({
    launchSpec,
    size: options.procs,
    minProcs: options.minProcs,
    idleTimeoutMs: options.idleTimeoutMs,
    policy: options,
    killSignal: options.killSignal,
    killTimeoutMs: options.killTimeoutMs,
    startCheckMs: options.startCheckMs,
    maxAgeMs: options.maxAgeMs,
    logger,
    onGiveUp: (status) => {
      giveUpStatus = status;
      void shutdown('giving up');
    },
    onEvent: (event) => {
      const text = notifyStatus(event);
      if (text !== undefined) notifier?.status(text);
    },
  });

  const closers: (() => void)[] = [];
  let stopping: Promise<void> | undefined;
  const cleanup = () => {
    for (const close of closers.splice(0)) close();
    if (!options.keepSocket) removeSocketFile(socket);
    if (options.pidFile !== undefined) removePidFile(options.pidFile, process.pid);
  };
  // A stop asked for by a signal once the pool serves first lets the children take the accept queue (src/socket/drain.ts).
  let serving = false;
  const drainAbort = new AbortController();
  let queueWatch: QueueWatch | undefined;
  const shutdown = (why: string, drain = false): Promise<void> => {
    stopping ??= (async () => {
      queueWatch?.stop();
      notifier?.stopping();
      const drained =
        drain && serving
          ? await (await import('../socket/drain.js')).drainAcceptQueue(
              {
                socket,
                spec: options.socket,
                activated: passed.length > 0,
                keepSocket: options.keepSocket,
                timeoutMs: options.killTimeoutMs,
                liveChildren: () => pool.livePids().length,
                logger,
              },
              drainAbort.signal,
            )
          : undefined;
      const live = count(pool.livePids().length, 'child', 'children');
      logger.info(
        'stop',
        `stopping (${why}): sending ${signalName(options.killSignal)} to ${live}, SIGKILL in ${formatMs(options.killTimeoutMs)} to what is left`,
      );
      const poolStopped = pool.stop();
      if (drainAbort.signal.aborted) pool.killNow();
      releaseSocket(socket);
      await poolStopped;
      drained?.finish();
      cleanup();
      resolveStopped();
    })();
    return stopping;
  };

  let reloading = false;
  const removeHandlers = installSignalHandlers({
    stop: (signal) => {
      if (stopping !== undefined) {
        logger.warn('stop', `${signal} again: killing the children now`);
        drainAbort.abort();
        pool.killNow();
        return;
      }
      void shutdown(signal, true);
    },
    reload: () => {
      if (stopping !== undefined || reloading) return;
      reloading = true;
      notifier?.reloading();
      logger.info('reload', 'SIGHUP: rolling restart');
      void pool.rollingRestart().then((complete) => {
        reloading = false;
        logger.info('reload', complete ? 'rolling restart done' : 'rolling restart stopped early');
        if (stopping === undefined) notifier?.ready(count(pool.livePids().length, 'child', 'children'));
      });
    },
    forward: (signal) => pool.forward(signal),
    grow: () => {
      pool.grow();
      notifier?.status(count(pool.snapshot().size, 'child', 'children'));
    },
    shrink: () => {
      pool.shrink();
      notifier?.status(count(pool.snapshot().size, 'child', 'children'));
    },
    reopenLogs: () => logger.reopen(),
    ignore: (signal) => logger.warn('signal', `${signal} received: ignored (TERM, INT or QUIT stop the pool)`),
  });

  // A pool that sizes itself watches its accept queue (the watcher also listens: with --min-procs 0 no child does).
  if (pool.dynamic) {
    queueWatch = watchQueue({
      helper: launchSpec.helper,
      socketFd: socket.fd,
      backlog: options.backlog,
      onSignal: (signal) => pool.onQueue(signal),
      onError: (message) => logger.warn('queue', message),
    });
    closers.push(() => queueWatch?.stop());
    await queueWatch.listening;
  }
  const started = await pool.start();
  if (!started.ok && stopping !== undefined) {
    // Asked to stop (SIGTERM...) while starting: a clean stop, not a failed start.
    await stopping;
    removeHandlers();
    logger.info('stopped', 'stopped during start-up');
    reporter.done(0);
    return 0;
  }
  if (!started.ok) {
    removeHandlers();
    cleanup();
    return fail(started.reason, started.status);
  }
  if (options.pidFile !== undefined) {
    try {
      writePidFile(options.pidFile, process.pid);
    } catch (error) {
      await pool.stop();
      removeHandlers();
      cleanup();
      return fail((error as Error).message, 255);
    }
  }

  const socketInode = fstatSync(socket.fd).ino;
  const observed: Observed = {
    snapshot: () => pool.snapshot(),
    status: async () => {
      const { collectStatus, tcpListenQueue } = await import('../observe/stats.js');
      return collectStatus(pool.snapshot(), {
        socket: socket.label,
        startedAt,
        listenQueue: () => (options.socket?.kind === 'unix' ? null : tcpListenQueue(socketInode)),
      });
    },
  };
  await startObservers({ ...options, socket: options.socket ?? socket.spec }, env, observed, logger, closers);
  if (options.maxRssBytes !== undefined && options.checkIntervalMs !== undefined) {
    const timer = every(systemClock, options.checkIntervalMs, () => pool.checkMemory(options.maxRssBytes!));
    closers.push(() => timer.cancel());
  }

  // While the pool runs, a child or a restart timer keeps the event loop busy. An empty loop would end the
  // process with status 0 as if asked to stop (-F 1 and a lost child did that): a bug, never a clean stop.
  const onIdle = () => {
    if (stopping !== undefined) return;
    giveUpStatus = 70;
    logger.error('internal', 'internal error: nothing left to supervise; stopping');
    void shutdown('internal error');
  };
  process.on('beforeExit', onIdle);
  closers.push(() => process.off('beforeExit', onIdle));

  started.pids.forEach((pid, slot) => reporter.spawned(slot, pid));
  const ready = `${count(started.pids.length, 'child', 'children')} serving on ${socket.label}${pool.dynamic ? ` (sizes itself: ${options.minProcs} to ${options.procs})` : ''}`;
  logger.info('ready', ready);
  notifier?.ready(ready);
  notifier?.startWatchdog();
  reporter.done(0);
  serving = true;

  await stopped;
  removeHandlers();
  await notifier?.close();
  logger.info('stopped', giveUpStatus === undefined ? 'all children gone' : `all children gone; exiting with ${giveUpStatus}`);
  return giveUpStatus ?? 0;
}

/** The control socket (always, unless no path can be derived) and the metrics endpoint (when asked). */
async function startObservers(options: Options, env: NodeJS.ProcessEnv, source: Observed, logger: Logger, closers: (() => void)[]): Promise<void> {
  const { controlPathOfPidFile, defaultControlPath, startControlServer, startMetricsServer } = await import('../observe/control.js');
  const controlPaths = new Set([defaultControlPath(options, env)]);
  // `status -P PIDFILE` finds the pool there, without reading anything of the process the PID file names.
  if (options.pidFile !== undefined) controlPaths.add(controlPathOfPidFile(options.pidFile));
  for (const controlPath of controlPaths) {
    if (controlPath === undefined) continue;
    try {
      const control = await startControlServer(controlPath, source);
      closers.push(control.close);
      logger.debug('control', `control socket: ${control.path}`);
    } catch (error) {
      logger.warn('control', `no control socket: ${(error as Error).message}`);
    }
  }
  if (options.metrics !== undefined) {
    try {
      const metrics = await startMetricsServer(options.metrics, source, { statusPage: options.statusPage });
      closers.push(metrics.close);
      logger.info('metrics', `metrics at ${options.metrics} /metrics${options.statusPage ? ', status page at /' : ''}`);
    } catch (error) {
      logger.warn('metrics', `no metrics endpoint: ${(error as Error).message}`);
    }
  }
}
