import yargs from 'yargs';
import { SetupError, usageError } from './errors.js';
import { printError } from './log.js';
import { resolveOptions, type RawOptions } from './options.js';
import { runSupervisor } from './supervisor.js';
import { isDaemonChild, daemonReporter, startDaemon } from './daemon.js';
import { HELP_TEXT, VERSION } from './help.js';

/** spawn-fcgi's single-letter flags that take a value, and the long options that spawn-fcgi-ts adds. */
const VALUE_FLAGS = ['f', 'd', 'a', 'p', 's', 'C', 'F', 'b', 'u', 'g', 'U', 'G', 'M', 'c', 'P'] as const;
const LONG_VALUE_OPTIONS = {
  'copy-env': 'copyEnv',
  env: 'env',
  'web-server-addrs': 'webServerAddrs',
  'kill-signal': 'killSignal',
  'kill-timeout': 'killTimeout',
  'restart-delay': 'restartDelay',
  'max-restart-delay': 'maxRestartDelay',
  'stable-after': 'stableAfter',
  'max-failures': 'maxFailures',
  'start-check': 'startCheck',
  'log-format': 'logFormat',
  'log-file': 'logFile',
} as const;
const REPEATABLE = new Set(['env', 'copy-env']);

type Parsed = Record<string, unknown> & { _: (string | number)[]; '--'?: (string | number)[] };

export function parseCommandLine(argv: string[]): { raw: RawOptions; help: boolean; version: boolean } {
  const parser = yargs(argv)
    .parserConfiguration({
      'populate--': true,
      'halt-at-non-option': true,
      'camel-case-expansion': false,
      'boolean-negation': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
    })
    .help(false)
    .version(false)
    .exitProcess(false)
    .strict()
    .fail((message, error) => {
      throw usageError(message ?? error?.message ?? 'invalid command line');
    });
  for (const flag of VALUE_FLAGS) parser.option(flag, { type: 'string', requiresArg: true });
  for (const flag of ['S', 'n', 'v', 'h', 'keep-socket', 'help', 'version']) parser.option(flag, { type: 'boolean' });
  for (const name of Object.keys(LONG_VALUE_OPTIONS)) parser.option(name, { type: 'string', requiresArg: true });
  const parsed = parser.parseSync() as Parsed;

  const one = (name: string): string | undefined => {
    const value = parsed[name];
    if (value === undefined) return undefined;
    return String(Array.isArray(value) ? value[value.length - 1] : value);
  };
  const many = (name: string): string[] | undefined => {
    const value = parsed[name];
    if (value === undefined) return undefined;
    return (Array.isArray(value) ? value : [value]).map(String);
  };
  const raw: RawOptions = { S: parsed.S === true, n: parsed.n === true, keepSocket: parsed['keep-socket'] === true };
  for (const flag of VALUE_FLAGS) raw[flag] = one(flag);
  for (const [name, key] of Object.entries(LONG_VALUE_OPTIONS)) {
    (raw as Record<string, unknown>)[key] = REPEATABLE.has(name) ? many(name) : one(name);
  }
  const app = [...parsed._, ...(parsed['--'] ?? [])].map(String);
  if (app.length > 0) raw.app = app;
  return { raw, help: parsed.h === true || parsed.help === true, version: parsed.v === true || parsed.version === true };
}

async function main(argv: string[]): Promise<number> {
  if (isDaemonChild()) {
    const { raw } = parseCommandLine(argv);
    return runSupervisor(resolveOptions(raw), daemonReporter());
  }
  if (argv.length === 0) {
    process.stdout.write(HELP_TEXT);
    return 255;
  }
  if (argv[0] === '-?') {
    process.stdout.write(HELP_TEXT);
    return 0;
  }
  let options;
  try {
    const { raw, help, version } = parseCommandLine(argv);
    if (help) {
      process.stdout.write(HELP_TEXT);
      return 0;
    }
    if (version) {
      process.stdout.write(`spawn-fcgi-ts v${VERSION} (ipv6) - spawns FastCGI processes\n`);
      return 0;
    }
    options = resolveOptions(raw);
  } catch (error) {
    if (!(error instanceof SetupError)) throw error;
    printError(error.message);
    if (error.usage) process.stderr.write("Try 'spawn-fcgi-ts --help' for more information.\n");
    return error.exitCode;
  }
  if (!options.foreground) return startDaemon(argv);
  return runSupervisor(options);
}

main(process.argv.slice(2)).then(
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
