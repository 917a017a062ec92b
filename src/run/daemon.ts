import { closeSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { isAbsolute, resolve } from 'node:path';
import { internalEnvName } from '../child/environment.js';
import type { Options } from '../options/options.js';
import type { StartReporter } from './supervisor.js';

const DAEMON_MARK = internalEnvName('DAEMON');
/** The daemon reports its start-up to the command that launched it on this descriptor, then closes it. */
const REPORT_FD = 3;

type Report = { type: 'spawned'; slot: number; pid: number } | { type: 'error'; message: string } | { type: 'done'; status: number };

export const isDaemonChild = (env: NodeJS.ProcessEnv): boolean => env[DAEMON_MARK] === '1';

/**
 * Without -n: run the supervisor again as a detached daemon (its own session, no terminal, stdio on
 * /dev/null) and relay its start-up report. Exits 0 only once every child serves; otherwise with the
 * status spawn-fcgi would return.
 */
export async function startDaemon(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { execa } = await import('execa'); // on use: the foreground path never evaluates execa
  const subprocess = execa(process.execPath, [...process.execArgv, process.argv[1]!, ...argv], {
    env: { ...env, [DAEMON_MARK]: '1' },
    extendEnv: false,
    detached: true,
    cleanup: false,
    buffer: false,
    reject: false,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  subprocess.catch(() => undefined);
  const stream = subprocess.stdio[REPORT_FD] as Readable;
  stream.setEncoding('utf8');
  let pending = '';
  let status: number | undefined;
  for await (const chunk of stream) {
    const lines = (pending + (chunk as string)).split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const report = JSON.parse(line) as Report;
      if (report.type === 'spawned') process.stdout.write(`spawn-fcgi-ts: child spawned successfully: PID: ${report.pid}\n`);
      else if (report.type === 'error') process.stderr.write(`spawn-fcgi-ts: ${report.message}\n`);
      else status = report.status;
    }
    if (status !== undefined) break;
  }
  stream.destroy();
  subprocess.unref();
  if (status === undefined) {
    process.stderr.write('spawn-fcgi-ts: the supervisor exited during start-up\n');
    return 255;
  }
  return status;
}

/** The daemon's side of the report pipe. */
export function daemonReporter(): StartReporter {
  let open = true;
  const send = (report: Report) => {
    if (!open) return;
    try {
      writeSync(REPORT_FD, `${JSON.stringify(report)}\n`);
    } catch {
      open = false; // the starting command is gone; nothing to tell.
    }
  };
  return {
    spawned: (slot, pid) => send({ type: 'spawned', slot, pid }),
    stderr: (message) => send({ type: 'error', message }),
    done: (status) => {
      send({ type: 'done', status });
      if (open) closeSync(REPORT_FD);
      open = false;
    },
  };
}

/**
 * The daemon leaves the caller's directory, as daemon(3) does (chdir("/")), so that it does not keep a
 * directory busy or depend on it: every relative path in the options is made absolute first, the way
 * it was meant when typed. Paths inside a chroot (-s without -S, -d, a relative app) stay relative to
 * the jail's root, as spawn-fcgi reads them after chroot() and chdir("/"). The children start in /
 * too, unless -d says otherwise.
 */
export function leaveWorkingDirectory(options: Options): Options {
  let cwd: string;
  try {
    cwd = process.cwd();
  } catch {
    process.chdir('/'); // already gone: relative paths cannot mean anything any more
    return options;
  }
  const absolute = (path: string | undefined) => (path === undefined || isAbsolute(path) ? path : resolve(cwd, path));
  const jailed = options.chroot !== undefined && process.getuid?.() === 0;
  const socket =
    options.socket?.kind === 'unix' && !options.socket.abstract && !(jailed && !options.bindBeforeChroot)
      ? { ...options.socket, path: absolute(options.socket.path)! }
      : options.socket;
  const chdir = jailed ? options.chdir : absolute(options.chdir);
  const [app, ...args] = options.app;
  const appPath = !jailed && app!.includes('/') && !isAbsolute(app!) ? resolve(chdir ?? cwd, app!) : app!;
  const metrics = options.metrics === undefined || /:\d+$/.test(options.metrics) ? options.metrics : absolute(options.metrics);
  process.chdir('/');
  return {
    ...options,
    app: [appPath, ...args],
    socket,
    chdir,
    chroot: absolute(options.chroot),
    pidFile: absolute(options.pidFile),
    logFile: absolute(options.logFile),
    control: absolute(options.control),
    metrics,
  };
}
