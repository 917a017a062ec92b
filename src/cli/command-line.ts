import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import yargs from 'yargs';
import { MAX_CONFIG_BYTES, loadConfigFile, mergeRawOptions } from '../options/config-file.js';
import { SetupError, usageError } from '../common/errors.js';
import { printError } from '../observe/log.js';
import { ALL_OPTIONS, OPTION_TABLE, optionName, type OptionEntry, type RawOptions } from '../options/option-table.js';

type Parsed = Record<string, unknown> & { _: (string | number)[]; '--'?: (string | number)[] };

export function parseCommandLine(
  argv: string[],
  warn = (message: string) => printError(`WARNING: ${message}`),
): { raw: RawOptions; help: boolean; version: boolean } {
  const { raw, help, version, config } = parseFlags(argv);
  // --config FILE: the spawn-php.sh variables, read without a shell; the command line wins over the file.
  return { raw: config === undefined ? raw : mergeRawOptions(loadConfigFile(config, readConfigText, warn), raw), help, version };
}

/** The config file's text: a regular file of at most MAX_CONFIG_BYTES (a FIFO must not block, /dev/zero not fill memory). */
export function readConfigText(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new SetupError(`reading config file '${path}' failed: not a regular file`);
    if (stat.size > MAX_CONFIG_BYTES) throw new SetupError(`config file '${path}' is larger than ${MAX_CONFIG_BYTES} bytes: refused`);
    const buffer = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (let n; length < buffer.length && (n = readSync(fd, buffer, length, buffer.length - length, null)) > 0; ) length += n;
    if (length > MAX_CONFIG_BYTES) throw new SetupError(`config file '${path}' is larger than ${MAX_CONFIG_BYTES} bytes: refused`);
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

function parseFlags(argv: string[]): { raw: RawOptions; help: boolean; version: boolean; config?: string } {
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
  // Every option by the name yargs knows it by (-F is 'F', --kill-signal is 'kill-signal'); no aliases: -v and --version are two names.
  // Declared in three calls, not one .option() per name: ~100 .option() calls were 4-5 ms of every start (issue 10).
  const names = (flags: boolean): string[] =>
    ALL_OPTIONS.filter((entry) => (entry.kind === 'flag') === flags).flatMap((entry) => [entry.short, entry.long].filter((name) => name !== undefined));
  const valued = names(false);
  parser.boolean(names(true)).string(valued).requiresArg(valued);
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
  const raw: Record<string, unknown> = {};
  for (const entry of OPTION_TABLE as readonly OptionEntry[]) {
    const name = optionName(entry);
    raw[entry.key] = entry.kind === 'flag' ? parsed[name] === true : entry.kind === 'list' ? many(name) : one(name);
  }
  const app = [...parsed._, ...(parsed['--'] ?? [])].map(String);
  if (app.length > 0) raw.app = app;
  return {
    raw: raw as RawOptions,
    help: parsed.h === true || parsed.help === true,
    version: parsed.v === true || parsed.version === true,
    config: one('config'),
  };
}
