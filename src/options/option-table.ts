/**
 * Every option of `spawn-fcgi-ts [options]` in one place: its flag, what it holds, its line in --help,
 * the spawn-php.sh variables that set it in a --config file, and how its value becomes a field of `Options`.
 * The yargs definitions (command-line.ts), the help text (help.ts), the config-file mapping (config-file.ts),
 * `RawOptions` and the resolution (options.ts) all come from this table, in its order (the order of --help).
 *
 * Adding an option: one entry here (plus its field in `Options`, which the type check below asks for),
 * then its behaviour, the man page and the README.
 */
import type { ConfigVariable } from './config-file.js';
import type { Options } from './options.js';
import {
  MAX_BACKLOG,
  MAX_PROCS,
  MAX_RSS_MB,
  parseDuration,
  parseEnvAssignments,
  parseInteger,
  parseKillSignal,
  parseLogFormat,
  parseMode,
  parseNameList,
  parsePhpChildren,
  parseRlimit,
  nonEmpty,
} from './option-values.js';

/** `string`: one value (the last one given wins); `list`: repeatable, every value kept; `flag`: no value. */
export type OptionKind = 'string' | 'list' | 'flag';
export type OptionValue<Kind extends OptionKind> = Kind extends 'flag' ? boolean : Kind extends 'list' ? string[] : string;

/** The groups of --help, in their order (help.ts gives them their headings). */
export type HelpSection = 'main' | 'root' | 'config' | 'env' | 'supervision' | 'sizing' | 'recycling' | 'operation';

export interface OptionEntry<Key extends string = string, Kind extends OptionKind = OptionKind, Field extends keyof Options = keyof Options> {
  /** The name in `RawOptions`: the letter of a short flag, the camelCase of a long one. */
  key: Key;
  kind: Kind;
  /** `-f` is `short: 'f'`; `--kill-signal` is `long: 'kill-signal'`. */
  short?: string;
  long?: string;
  section: HelpSection;
  /** The --help row: `label` in the left column, `text` its lines in the right one. */
  help: { label: string; text: readonly string[] };
  /** spawn-php.sh variables that set this option in a --config file, the first one set wins. */
  config?: readonly ConfigVariable[];
  /** The field of `Options` this option becomes; none for -f, -a, -p, -s (app and socket are resolved together). */
  field?: Field;
  /** Validates the value as given (undefined: not given) and makes the field's value; throws a usage `SetupError`. */
  resolve?: (value: OptionValue<Kind> | undefined) => Options[Field];
}

/** Keeps each entry's key and kind as literal types (for `RawOptions`) and checks `resolve` against its field. */
const option = <const Key extends string, const Kind extends OptionKind, Field extends keyof Options = never>(
  entry: OptionEntry<Key, Kind, Field>,
): OptionEntry<Key, Kind, Field> => entry;

export const DEFAULTS = {
  backlog: 1024,
  procs: 1,
  killSignal: 'TERM',
  killTimeout: '10s',
  restartDelay: '100ms',
  maxRestartDelay: '30s',
  stableAfter: '10s',
  startCheck: '100ms',
  idleTimeout: '10s',
} as const;

const duration = (flag: string, fallback: string) => (value: string | undefined) => parseDuration(flag, value ?? fallback);
const optionalDuration = (flag: string) => (value: string | undefined) => (value === undefined ? undefined : parseDuration(flag, value));
const flag = (value: boolean | undefined) => value ?? false;

export const OPTION_TABLE = [
  option({
    key: 'f',
    kind: 'string',
    short: 'f',
    section: 'main',
    help: { label: '-f <path>', text: ['filename of the fcgi-application (deprecated; ignored if', '<fcgiapp> is given; needs /bin/sh)'] },
  }),
  option({
    key: 'd',
    kind: 'string',
    short: 'd',
    section: 'main',
    config: ['FCGIDIR'],
    field: 'chdir',
    resolve: (v) => nonEmpty('-d', v),
    help: { label: '-d <directory>', text: ['chdir to directory before spawning'] },
  }),
  option({
    key: 'a',
    kind: 'string',
    short: 'a',
    section: 'main',
    config: ['FCGIADDR'],
    help: { label: '-a <address>', text: ['bind to IPv4/IPv6 address (defaults to 0.0.0.0)'] },
  }),
  option({
    key: 'p',
    kind: 'string',
    short: 'p',
    section: 'main',
    config: ['FCGIPORT'],
    help: { label: '-p <port>', text: ['bind to TCP-port'] },
  }),
  option({
    key: 's',
    kind: 'string',
    short: 's',
    section: 'main',
    config: ['FCGISOCKET'],
    help: { label: '-s <path>', text: ['bind to Unix domain socket (@name: abstract, passed by systemd)'] },
  }),
  option({
    key: 'M',
    kind: 'string',
    short: 'M',
    section: 'main',
    config: ['SOCKMODE'],
    field: 'socketMode',
    resolve: (v) => (v === undefined ? undefined : parseMode(v, '-M')),
    help: {
      label: '-M <mode>',
      text: ['change Unix domain socket mode (octal integer, default: allow', 'read+write for user and group as far as umask allows it)'],
    },
  }),
  option({
    key: 'C',
    kind: 'string',
    short: 'C',
    section: 'main',
    config: ['PHP_FCGI_CHILDREN'],
    field: 'phpChildren',
    resolve: (v) => (v === undefined ? undefined : parsePhpChildren(v)),
    help: {
      label: '-C <children>',
      text: ['(PHP only) numbers of childs to spawn (default: not setting', 'the PHP_FCGI_CHILDREN environment variable - PHP defaults to 0)'],
    },
  }),
  option({
    key: 'F',
    kind: 'string',
    short: 'F',
    section: 'main',
    config: ['FCGIPROCS', 'FCGI_CHILDREN'],
    field: 'procs',
    resolve: (v) => (v === undefined ? DEFAULTS.procs : parseInteger('-F', v, { min: 1, max: MAX_PROCS })),
    help: { label: '-F <children>', text: [`number of children to fork and supervise (1-${MAX_PROCS}, default ${DEFAULTS.procs})`] },
  }),
  option({
    key: 'b',
    kind: 'string',
    short: 'b',
    section: 'main',
    config: ['FCGI_BACKLOG'],
    field: 'backlog',
    resolve: (v) => (v === undefined ? DEFAULTS.backlog : parseInteger('-b', v, { min: 1, max: MAX_BACKLOG })),
    help: { label: '-b <backlog>', text: [`backlog to allow on the socket (1-${MAX_BACKLOG}, default ${DEFAULTS.backlog})`] },
  }),
  option({
    key: 'P',
    kind: 'string',
    short: 'P',
    section: 'main',
    config: ['FCGIPIDFILE'],
    field: 'pidFile',
    resolve: (v) => nonEmpty('-P', v),
    help: { label: '-P <path>', text: ['name of PID-file for the supervisor'] },
  }),
  option({
    key: 'n',
    kind: 'flag',
    short: 'n',
    section: 'main',
    field: 'foreground',
    resolve: flag,
    help: { label: '-n', text: ['no fork: stay in the foreground (systemd, runit, containers)'] },
  }),
  option({
    key: 'c',
    kind: 'string',
    short: 'c',
    section: 'root',
    config: ['FCGICHROOT', 'CHROOT'],
    field: 'chroot',
    resolve: (v) => nonEmpty('-c', v),
    help: { label: '-c <directory>', text: ['chroot to directory'] },
  }),
  option({
    key: 'S',
    kind: 'flag',
    short: 'S',
    section: 'root',
    field: 'bindBeforeChroot',
    resolve: flag,
    help: { label: '-S', text: ['create socket before chroot() (default is to create the socket', 'in the chroot)'] },
  }),
  option({
    key: 'u',
    kind: 'string',
    short: 'u',
    section: 'root',
    config: ['USERID'],
    field: 'user',
    resolve: (v) => nonEmpty('-u', v),
    help: { label: '-u <user>', text: ['change to user-id'] },
  }),
  option({
    key: 'g',
    kind: 'string',
    short: 'g',
    section: 'root',
    config: ['GROUPID'],
    field: 'group',
    resolve: (v) => nonEmpty('-g', v),
    help: { label: '-g <group>', text: ['change to group-id (default: primary group of user if -u', 'is given)'] },
  }),
  option({
    key: 'U',
    kind: 'string',
    short: 'U',
    section: 'root',
    config: ['SOCKUSERID'],
    field: 'socketUser',
    resolve: (v) => nonEmpty('-U', v),
    help: { label: '-U <user>', text: ['change Unix domain socket owner to user-id'] },
  }),
  option({
    key: 'G',
    kind: 'string',
    short: 'G',
    section: 'root',
    config: ['SOCKGROUPID'],
    field: 'socketGroup',
    resolve: (v) => nonEmpty('-G', v),
    help: { label: '-G <group>', text: ['change Unix domain socket group to group-id'] },
  }),
  option({
    key: 'copyEnv',
    kind: 'list',
    long: 'copy-env',
    section: 'env',
    field: 'copyEnv',
    resolve: (v) => (v === undefined ? undefined : parseNameList(v)),
    help: { label: '--copy-env NAME[,NAME...]', text: ['clean environment with only these variables'] },
  }),
  option({
    key: 'env',
    kind: 'list',
    long: 'env',
    section: 'env',
    field: 'env',
    resolve: (v) => parseEnvAssignments(v ?? []),
    help: { label: '--env NAME=VALUE', text: ['add or override a variable (repeatable)'] },
  }),
  option({
    key: 'webServerAddrs',
    kind: 'string',
    long: 'web-server-addrs',
    section: 'env',
    config: ['FCGI_WEB_SERVER_ADDRS'],
    field: 'webServerAddrs',
    resolve: (v) => v,
    help: { label: '--web-server-addrs LIST', text: ['set FCGI_WEB_SERVER_ADDRS'] },
  }),
  option({
    key: 'killSignal',
    kind: 'string',
    long: 'kill-signal',
    section: 'supervision',
    config: ['KILL_SIGNAL'],
    field: 'killSignal',
    resolve: (v) => parseKillSignal('--kill-signal', v ?? DEFAULTS.killSignal),
    help: {
      label: '--kill-signal SIG',
      text: [`signal that stops a child (default ${DEFAULTS.killSignal}; USR1 for`, 'libfcgi applications; not STOP, CONT, WINCH...)'],
    },
  }),
  option({
    key: 'killTimeout',
    kind: 'string',
    long: 'kill-timeout',
    section: 'supervision',
    config: ['KILL_TIMEOUT'],
    field: 'killTimeoutMs',
    resolve: duration('--kill-timeout', DEFAULTS.killTimeout),
    help: { label: '--kill-timeout DURATION', text: [`SIGKILL after this long (default ${DEFAULTS.killTimeout})`] },
  }),
  option({
    key: 'restartDelay',
    kind: 'string',
    long: 'restart-delay',
    section: 'supervision',
    field: 'restartDelayMs',
    resolve: duration('--restart-delay', DEFAULTS.restartDelay),
    help: {
      label: '--restart-delay DURATION',
      text: ['wait after a second fast failure in a row, doubling', `after each further one (${DEFAULTS.restartDelay}; the first restarts`, 'at once)'],
    },
  }),
  option({
    key: 'maxRestartDelay',
    kind: 'string',
    long: 'max-restart-delay',
    section: 'supervision',
    field: 'maxRestartDelayMs',
    resolve: duration('--max-restart-delay', DEFAULTS.maxRestartDelay),
    help: { label: '--max-restart-delay DUR', text: [`backoff cap (default ${DEFAULTS.maxRestartDelay})`] },
  }),
  option({
    key: 'stableAfter',
    kind: 'string',
    long: 'stable-after',
    section: 'supervision',
    field: 'stableAfterMs',
    resolve: duration('--stable-after', DEFAULTS.stableAfter),
    help: { label: '--stable-after DURATION', text: [`a child up this long restarts at once (${DEFAULTS.stableAfter})`] },
  }),
  option({
    key: 'maxFailures',
    kind: 'string',
    long: 'max-failures',
    section: 'supervision',
    field: 'maxFailures',
    resolve: (v) => (v === undefined ? undefined : parseInteger('--max-failures', v, { min: 1, max: 1_000_000_000 })),
    help: { label: '--max-failures N', text: ['stop and exit non-zero after N fast failures', 'of one child in a row (default: retry forever)'] },
  }),
  option({
    key: 'startCheck',
    kind: 'string',
    long: 'start-check',
    section: 'supervision',
    field: 'startCheckMs',
    resolve: duration('--start-check', DEFAULTS.startCheck),
    help: { label: '--start-check DURATION', text: [`a child must stay up this long at start (${DEFAULTS.startCheck})`] },
  }),
  option({
    key: 'keepSocket',
    kind: 'flag',
    long: 'keep-socket',
    section: 'supervision',
    field: 'keepSocket',
    resolve: flag,
    help: { label: '--keep-socket', text: ['leave the Unix socket file at exit'] },
  }),
  // -F/--max-procs and --min-procs are resolved together in options.ts (min defaults to max: a static pool).
  option({
    key: 'maxProcs',
    kind: 'string',
    long: 'max-procs',
    section: 'sizing',
    help: { label: '--max-procs N', text: ['the same as -F: the most children'] },
  }),
  option({
    key: 'minProcs',
    kind: 'string',
    long: 'min-procs',
    section: 'sizing',
    config: ['FCGI_MIN_PROCS'],
    help: {
      label: '--min-procs N',
      text: ['the fewest children (0: started on demand; default:', '-F, a static pool); grows by one while connections', 'wait in the accept queue, up to -F'],
    },
  }),
  option({
    key: 'idleTimeout',
    kind: 'string',
    long: 'idle-timeout',
    section: 'sizing',
    config: ['FCGI_IDLE_TIMEOUT'],
    field: 'idleTimeoutMs',
    resolve: duration('--idle-timeout', DEFAULTS.idleTimeout),
    help: {
      label: '--idle-timeout DURATION',
      text: ['stop a child above --min-procs that used no CPU', `for this long with nothing queued (default ${DEFAULTS.idleTimeout})`],
    },
  }),
  option({
    key: 'maxRss',
    kind: 'string',
    long: 'max-rss',
    section: 'recycling',
    field: 'maxRssBytes',
    resolve: (v) => (v === undefined ? undefined : parseInteger('--max-rss', v, { min: 1, max: MAX_RSS_MB }) * 1024 * 1024),
    help: { label: '--max-rss MB', text: ['recycle a child above this RSS (needs', '--check-interval); the new one starts first'] },
  }),
  option({
    key: 'maxAge',
    kind: 'string',
    long: 'max-age',
    section: 'recycling',
    field: 'maxAgeMs',
    resolve: optionalDuration('--max-age'),
    help: { label: '--max-age DURATION', text: ['recycle each child after this long (+0-10 % jitter)'] },
  }),
  option({
    key: 'checkInterval',
    kind: 'string',
    long: 'check-interval',
    section: 'recycling',
    field: 'checkIntervalMs',
    resolve: optionalDuration('--check-interval'),
    help: { label: '--check-interval DURATION', text: ['how often --max-rss looks (no periodic work', 'without it)'] },
  }),
  option({
    key: 'rlimit',
    kind: 'list',
    long: 'rlimit',
    section: 'recycling',
    field: 'rlimits',
    resolve: (v) => (v ?? []).map(parseRlimit),
    help: { label: '--rlimit NAME=SOFT[:HARD]', text: ['resource limit for the children (repeatable), e.g.', 'nofile=4096, core=0, as=1073741824'] },
  }),
  option({
    key: 'control',
    kind: 'string',
    long: 'control',
    section: 'operation',
    field: 'control',
    resolve: (v) => nonEmpty('--control', v),
    help: {
      label: '--control PATH',
      text: [
        "control socket for 'spawn-fcgi-ts status' (mode 0600;",
        'default: SOCKET.control, else PIDFILE.control, else',
        '/run/spawn-fcgi-ts-[ADDR-]PORT.control)',
      ],
    },
  }),
  option({
    key: 'metrics',
    kind: 'string',
    long: 'metrics',
    section: 'operation',
    field: 'metrics',
    resolve: (v) => nonEmpty('--metrics', v),
    help: { label: '--metrics ADDR', text: ['serve OpenMetrics at http://ADDR/metrics', '(host:port, :port for 127.0.0.1, or a unix path)'] },
  }),
  option({
    key: 'statusPage',
    kind: 'flag',
    long: 'status-page',
    section: 'operation',
    field: 'statusPage',
    resolve: flag,
    help: { label: '--status-page', text: ['the metrics listener also serves /status and the page'] },
  }),
  option({
    key: 'fdName',
    kind: 'string',
    long: 'fd-name',
    section: 'operation',
    field: 'fdName',
    resolve: (v) => nonEmpty('--fd-name', v),
    help: { label: '--fd-name NAME', text: ['with systemd socket activation: the passed socket', 'to use (LISTEN_FDNAMES); -s/-p may then be left out'] },
  }),
  option({
    key: 'logFormat',
    kind: 'string',
    long: 'log-format',
    section: 'operation',
    field: 'logFormat',
    resolve: parseLogFormat,
    help: { label: '--log-format text|json', text: ['(default text)'] },
  }),
  option({
    key: 'logFile',
    kind: 'string',
    long: 'log-file',
    section: 'operation',
    field: 'logFile',
    resolve: (v) => nonEmpty('--log-file', v),
    help: { label: '--log-file PATH', text: ['log there instead of stderr; SIGUSR1 reopens it', '(a regular file: symlinks and FIFOs are refused)'] },
  }),
] as const;

/**
 * Options that do something other than set a value: the command line handles them itself (cli.ts: -?
 * before any parsing). They have --help rows too.
 */
export const ACTION_OPTIONS = [
  { name: 'version', short: 'v', long: 'version', kind: 'flag', section: 'main', help: { label: '-v', text: ['show version (also --version)'] } },
  { name: 'help', short: 'h', long: 'help', kind: 'flag', section: 'main', help: { label: '-?, -h', text: ['show this help (also --help)'] } },
  {
    name: 'config',
    long: 'config',
    kind: 'string',
    section: 'config',
    help: {
      label: '--config FILE',
      text: [
        'read spawn-php.sh variables (FCGISOCKET, FCGIPORT,',
        'PHP_FCGI_CHILDREN, ALLOWED_ENV, USERID...) without',
        'running a shell; flags on the command line win;',
        'other variables (PHPRC...) reach the app when',
        'ALLOWED_ENV names them (or, without it, exported)',
      ],
    },
  },
] as const satisfies readonly (OptionNames & { name: string })[];

type TableEntry = (typeof OPTION_TABLE)[number];

/** What the command line (or a config file) said, before validation: every value as typed. */
export type RawOptions = { -readonly [E in TableEntry as E['key']]?: OptionValue<E['kind']> } & {
  /** argv of the application: the words after the options (or after `--`), or a config file's FCGIPROGRAM. */
  app?: string[];
};

/** Compile-time check: every field of `Options` but those resolved together (app, socket, minProcs) has an entry that makes it. */
type FieldWithoutEntry = Exclude<keyof Options, NonNullable<TableEntry['field']> | 'app' | 'socket' | 'minProcs'>;
export const EVERY_FIELD_HAS_AN_ENTRY: [FieldWithoutEntry] extends [never] ? true : FieldWithoutEntry = true;

/** What every option has, whether it sets a value or does something: its names, kind and --help row. */
export interface OptionNames {
  short?: string;
  long?: string;
  kind: OptionKind;
  section: HelpSection;
  help: { label: string; text: readonly string[] };
}

/** Every option of the command line, in --help order within each section. */
export const ALL_OPTIONS: readonly OptionNames[] = [...OPTION_TABLE, ...ACTION_OPTIONS];

/** The name the parser knows an option by: `F` for -F, `kill-signal` for --kill-signal. */
export function optionName(entry: { short?: string; long?: string }): string {
  const name = entry.short ?? entry.long;
  if (name === undefined) throw new Error('an option table entry without a name');
  return name;
}
