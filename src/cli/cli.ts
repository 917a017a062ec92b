import { SetupError } from '../common/errors.js';
import { parseCommandLine } from './command-line.js';
import { printError } from '../observe/log.js';
import { resolveOptions } from '../options/options.js';
import { runSupervisor } from '../run/supervisor.js';
import { isDaemonChild, daemonReporter, leaveWorkingDirectory, startDaemon } from '../run/daemon.js';
import { HELP_TEXT, VERSION } from './help.js';
import { passedSockets } from '../socket/activation.js';

/** The environment is read here, once; every module below is given what it needs. */
async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const context = { socketActivation: passedSockets(env).length > 0 };
  if (isDaemonChild(env)) {
    const { raw } = parseCommandLine(argv);
    return runSupervisor(leaveWorkingDirectory(resolveOptions(raw, context)), env, daemonReporter());
  }
  if (argv.length === 0) {
    process.stdout.write(HELP_TEXT);
    return 255;
  }
  const end = argv.indexOf('--');
  if ((end < 0 ? argv : argv.slice(0, end)).includes('-?')) {
    process.stdout.write(HELP_TEXT);
    return 0;
  }
  let options;
  try {
    // Loaded on use: the path to the first spawn evaluates only what it needs (issue 10).
    if (argv[0] === 'status') return await (await import('./status-command.js')).statusCommand(argv.slice(1), env);
    const { raw, help, version } = parseCommandLine(argv);
    if (help) {
      process.stdout.write(HELP_TEXT);
      return 0;
    }
    if (version) {
      process.stdout.write(`spawn-fcgi-ts v${VERSION} (ipv6) - spawns FastCGI processes\n`);
      return 0;
    }
    options = resolveOptions(raw, context);
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    printError(error.message);
    if (error.usage) process.stderr.write("Try 'spawn-fcgi-ts --help' for more information.\n");
    return error.exitCode;
  }
  if (!options.foreground) return startDaemon(argv, env);
  return runSupervisor(options, env);
}

main(process.argv.slice(2), process.env).then(
  (status) => {
    process.exitCode = status;
    // Nothing of ours is left; do not wait for stray handles (e.g. a child's stdio held by a grandchild).
    setImmediate(() => process.exit(status));
  },
  (error: unknown) => {
    printError(`internal error: ${(error as Error)?.stack ?? String(error)}`);
    process.exit(70);
  },
);
