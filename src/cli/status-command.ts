import yargs from 'yargs';
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { controlPathOfPidFile, defaultControlPath, fetchStatus, StatusQueryError } from '../observe/control.js';
import { escapeControl, terminalSafeJson } from '../common/display-text.js';
import { usageError } from '../common/errors.js';
import { readiness } from '../observe/health.js';
import { parsePort, parseUnixPath } from '../options/options.js';
import { useColour } from '../observe/log.js';
import { renderStatusTable } from '../observe/status-view.js';
import type { PoolStatus } from '../observe/stats.js';

/**
 * Exit codes of `status`, as LSB defines them for init scripts' status action, plus one of the range LSB
 * leaves to applications (150-199) for a pool that runs but does not serve as configured.
 */
export const STATUS_EXIT = {
  running: 0,
  deadWithPidFile: 1,
  notRunning: 3,
  unknown: 4,
  degraded: 150,
} as const;

export const STATUS_HELP = `Usage: spawn-fcgi-ts status [--control PATH | -P PIDFILE | -s SOCKET | [-a ADDR] -p PORT] [--json]

Shows the pool of a running spawn-fcgi-ts: slot, PID, state, uptime, restarts, last exit, CPU %, RSS.
The control socket is --control, else PIDFILE.control (served by the supervisor that
wrote PIDFILE), else SOCKET.control, else /run/spawn-fcgi-ts-[ADDR-]PORT.control (in
$TMPDIR when /run is not writable; ADDR with -a, when the pool was bound to one address).
Exit status (LSB): 0 running, every configured child serving; 1 not running but the
PID file exists; 3 not running; 4 unknown (no trustworthy answer); 150 degraded
(fewer children than configured, a slot backing off, or stopping).
`;

/** `spawn-fcgi-ts status ...`: asks the running supervisor over its control socket. */
export async function statusCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const parsed = yargs(argv)
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false })
    .help(false)
    .version(false)
    .exitProcess(false)
    .strict()
    .option('control', { type: 'string', requiresArg: true })
    .option('P', { type: 'string', requiresArg: true })
    .option('s', { type: 'string', requiresArg: true })
    .option('p', { type: 'string', requiresArg: true })
    .option('a', { type: 'string', requiresArg: true })
    .option('json', { type: 'boolean' })
    .option('h', { type: 'boolean', alias: 'help' })
    .fail((message, error) => {
      throw usageError(message ?? error?.message ?? 'invalid command line');
    })
    .parseSync();
  if (parsed.h === true) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const say = (message: string, code: number): number => {
    process.stderr.write(`spawn-fcgi-ts: ${escapeControl(message)}\n`);
    return code;
  };
  let expectedPid: number | undefined;
  let path: string | undefined;
  if (parsed.P !== undefined && parsed.control === undefined) {
    const found = supervisorOfPidFile(parsed.P);
    if (typeof found === 'number') return say(...pidFileProblem(parsed.P, found));
    expectedPid = found.pid;
    path = controlPathOfPidFile(parsed.P);
  } else {
    path = defaultControlPath(
      {
        control: parsed.control,
        socket:
          parsed.s !== undefined
            ? parseUnixPath(parsed.s)
            : parsed.p !== undefined
              ? { kind: 'tcp', host: parsed.a ?? '0.0.0.0', port: parsePort(parsed.p) }
              : undefined,
      },
      env,
    );
  }
  if (path === undefined) throw usageError('status needs --control PATH, -P PIDFILE, -s SOCKET or -p PORT');
  let status: PoolStatus;
  try {
    status = await fetchStatus(path);
  } catch (error) {
    if (!(error instanceof StatusQueryError)) throw error;
    if (expectedPid !== undefined && error.refused) {
      // Our supervisor's control socket is left, with nobody listening: it died, and its PID was reused.
      return say(`not running, but the PID file '${parsed.P}' exists (stale; PID ${expectedPid} is another process now)`, STATUS_EXIT.deadWithPidFile);
    }
    if (expectedPid !== undefined) {
      // The PID file names a live process, but it does not answer as a spawn-fcgi-ts supervisor.
      return say(`process ${expectedPid} of '${parsed.P}' is not a spawn-fcgi-ts supervisor that answers: ${error.message}`, STATUS_EXIT.unknown);
    }
    return say(error.message, error.exitCode);
  }
  if (expectedPid !== undefined && status.supervisorPid !== expectedPid) {
    return say(`${path} answers for supervisor ${status.supervisorPid}, not for PID ${expectedPid} of '${parsed.P}'`, STATUS_EXIT.unknown);
  }
  process.stdout.write(
    parsed.json === true ? `${terminalSafeJson(status)}\n` : renderStatusTable(status, { color: useColour(env, process.stdout.isTTY === true) }),
  );
  return readiness(status).ok ? STATUS_EXIT.running : STATUS_EXIT.degraded;
}

type PidFileFinding = { pid: number } | typeof STATUS_EXIT.notRunning | typeof STATUS_EXIT.deadWithPidFile | typeof STATUS_EXIT.unknown;

/**
 * The live process a PID file names, read without following symlinks or blocking on a FIFO, and without
 * loading anything of that process (its command line, its config): only its existence is used; the control
 * socket at PIDFILE.control must then answer with the same PID.
 */
function supervisorOfPidFile(pidFile: string): PidFileFinding {
  let text: string;
  try {
    const fd = openSync(pidFile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
    try {
      if (!fstatSync(fd).isFile()) return STATUS_EXIT.unknown;
      const buffer = Buffer.alloc(64);
      text = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? STATUS_EXIT.notRunning : STATUS_EXIT.unknown;
  }
  const match = /^(\d{1,10})\n?$/.exec(text);
  if (match === null || Number(match[1]) <= 0) return STATUS_EXIT.unknown;
  const pid = Number(match[1]);
  try {
    statSync(`/proc/${pid}`);
  } catch {
    return STATUS_EXIT.deadWithPidFile;
  }
  return { pid };
}

function pidFileProblem(pidFile: string, code: number): [string, number] {
  if (code === STATUS_EXIT.notRunning) return [`not running: no PID file '${pidFile}'`, code];
  if (code === STATUS_EXIT.deadWithPidFile) return [`not running, but the PID file '${pidFile}' exists (stale)`, code];
  return [`cannot read a PID from '${pidFile}' (not a regular file with one PID)`, code];
}
