import yargs from 'yargs';
import { defaultControlPath, fetchStatus } from './control.js';
import { readFileSync } from 'node:fs';
import { parseCommandLine } from './command-line.js';
import { SetupError, usageError } from './errors.js';
import { readPidFile } from './pidfile.js';
import { parsePort, parseUnixPath } from './options.js';
import { useColour } from './log.js';
import { renderStatusTable } from './status-view.js';

export const STATUS_HELP = `Usage: spawn-fcgi-ts status [--control PATH | -P PIDFILE | -s SOCKET | [-a ADDR] -p PORT] [--json]

Shows the pool of a running spawn-fcgi-ts: slot, PID, state, uptime, restarts, last exit, CPU %, RSS.
The control socket is --control, else SOCKET.control, else the one of the pool whose
PID is in PIDFILE, else /run/spawn-fcgi-ts-[ADDR-]PORT.control (in $TMPDIR when /run
is not writable; ADDR with -a, when the pool was bound to one address).
`;

/**
 * With -P: the supervisor named in the PID file was started with some options; its command line
 * (from /proc) says where its control socket is, exactly as it computed it.
 */
function controlPathOfRunningPool(pidFile: string): string | undefined {
  const pid = readPidFile(pidFile);
  if (pid === undefined) throw new SetupError(`no PID in '${pidFile}'`);
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    throw new SetupError(`the pool of '${pidFile}' (PID ${pid}) is not running`, { exitCode: 3 });
  }
  const options = argv.findIndex((arg) => /cli\.m?[jt]s$|spawn-fcgi-ts$/.test(arg));
  const { raw } = parseCommandLine(argv.slice(options + 1));
  return defaultControlPath({
    control: raw.control,
    pidFile: raw.P ?? pidFile,
    socket: raw.s !== undefined ? parseUnixPath(raw.s) : raw.p !== undefined ? { kind: 'tcp', host: raw.a ?? '0.0.0.0', port: parsePort(raw.p) } : undefined,
  });
}

/** `spawn-fcgi-ts status ...`: asks the running supervisor over its control socket. */
export async function statusCommand(argv: string[]): Promise<number> {
  const parsed = yargs(argv)
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false })
    .help(false).version(false).exitProcess(false).strict()
    .option('control', { type: 'string', requiresArg: true })
    .option('P', { type: 'string', requiresArg: true })
    .option('s', { type: 'string', requiresArg: true })
    .option('p', { type: 'string', requiresArg: true })
    .option('a', { type: 'string', requiresArg: true })
    .option('json', { type: 'boolean' })
    .option('h', { type: 'boolean', alias: 'help' })
    .fail((message, error) => { throw usageError(message ?? error?.message ?? 'invalid command line'); })
    .parseSync();
  if (parsed.h === true) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const path = parsed.control ?? (parsed.P !== undefined ? controlPathOfRunningPool(parsed.P) : defaultControlPath({
    socket: parsed.s !== undefined ? parseUnixPath(parsed.s) : parsed.p !== undefined ? { kind: 'tcp', host: parsed.a ?? '0.0.0.0', port: parsePort(parsed.p) } : undefined,
  }));
  if (path === undefined) throw usageError('status needs --control PATH, -P PIDFILE, -s SOCKET or -p PORT');
  let status;
  try {
    status = await fetchStatus(path);
  } catch (error) {
    process.stderr.write(`spawn-fcgi-ts: no pool answers on ${path}: ${(error as Error).message}\n`);
    return 3;
  }
  process.stdout.write(parsed.json === true ? `${JSON.stringify(status, null, 2)}\n` : renderStatusTable(status, { color: useColour(process.env, process.stdout.isTTY === true) }));
  return 0;
}
