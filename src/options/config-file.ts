/**
 * The spawn-php.sh variable file (`FCGISOCKET=/run/php.sock`, `PHP_FCGI_CHILDREN=4`...), read without a
 * shell: assignments, quotes, comments and `$NAME` / `${NAME}` of names assigned earlier in the same
 * file; nothing that would need a shell to run (command substitution, other expansions, commands).
 * Other variables (`export PHPRC=/etc/php/8.2/cgi`, helpers used later as `$NAME`) mean what they mean
 * to spawn-php.sh, which sources the file: see `configToRawOptions`.
 *
 * Pure: the caller reads the file; `loadConfigFile` takes the reading function as an argument.
 */
import { SetupError, errnoText } from '../common/errors.js';
import { MAX_BACKLOG, MAX_PROCS, parseDuration, parseHost, parseInteger, parseKillSignal, parseMode, parsePort, parseUnixPath } from './option-values.js';
import { OPTION_TABLE, type OptionEntry, type RawOptions } from './option-table.js';

/** A config file larger than this is refused before it is parsed (real ones are a few kB). */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/**
 * The longest value, after `$NAME` expansion: the kernel refuses an argument or environment string of
 * MAX_ARG_STRLEN (128 KiB) or more with E2BIG, and `NAME=` takes some of it. `$V$V` doubling stops here.
 */
export const MAX_VALUE_BYTES = 128 * 1024 - 256;

/** Every name a config file may assign, with the check its value must pass (an empty value is "unset"). */
const VARIABLES = {
  SPAWNFCGI: undefined, // the binary spawn-php.sh runs: accepted and ignored here
  FCGIPROGRAM: undefined,
  FCGIPORT: (v: string, name: string) => void parsePort(v, name),
  FCGISOCKET: (v: string) => void parseUnixPath(v),
  FCGIADDR: (v: string, name: string) => void parseHost(v, name),
  PHP_FCGI_CHILDREN: (v: string, name: string) => void parseInteger(name, v, { min: 0, max: 65535 }),
  PHP_FCGI_MAX_REQUESTS: (v: string, name: string) => void parseInteger(name, v, { min: 0 }),
  FCGI_WEB_SERVER_ADDRS: undefined,
  ALLOWED_ENV: (v: string, name: string) => void parseNames(name, v),
  USERID: undefined,
  GROUPID: undefined,
  SOCKUSERID: undefined,
  SOCKGROUPID: undefined,
  SOCKMODE: (v: string, name: string) => void parseMode(v, name),
  FCGI_CHILDREN: (v: string, name: string) => void parseInteger(name, v, { min: 1, max: MAX_PROCS }),
  FCGIPROCS: (v: string, name: string) => void parseInteger(name, v, { min: 1, max: MAX_PROCS }),
  FCGI_MIN_PROCS: (v: string, name: string) => void parseInteger(name, v, { min: 0, max: MAX_PROCS }),
  FCGI_IDLE_TIMEOUT: (v: string, name: string) => void parseDuration(name, v),
  FCGI_BACKLOG: (v: string, name: string) => void parseInteger(name, v, { min: 1, max: MAX_BACKLOG }),
  FCGIPIDFILE: undefined,
  FCGICHROOT: undefined,
  CHROOT: undefined,
  FCGIDIR: undefined,
  KILL_SIGNAL: (v: string, name: string) => void parseKillSignal(name, v),
  KILL_TIMEOUT: (v: string, name: string) => void parseDuration(name, v),
} satisfies Record<string, ((value: string, name: string) => void) | undefined>;

export type ConfigVariable = keyof typeof VARIABLES;
export const CONFIG_VARIABLES = Object.keys(VARIABLES) as ConfigVariable[];

/** Pairs of names that mean the same option: both set to different values is an error. */
const ALIASES: [ConfigVariable, ConfigVariable][] = [
  ['FCGIPROCS', 'FCGI_CHILDREN'],
  ['FCGICHROOT', 'CHROOT'],
];

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Characters that end an unquoted word, or that only a shell understands. */
const OPERATORS = new Set(['|', '&', '<', '>', '(', ')']);

/** What a config file says: every variable it sets, which of them it exports, and which later lines use. */
export interface ParsedConfig {
  /** `{NAME: value}`, last assignment wins. */
  vars: Record<string, string>;
  /** Names given to `export` (with or without a value). */
  exported: Set<string>;
  /** Names used as `$NAME` / `${NAME}` after they were set. */
  used: Set<string>;
  /** The line of each name's last assignment. */
  lineOf: Record<string, number>;
  fileName: string;
}

/**
 * Parses the text of a config file into `{NAME: value}` (last assignment wins). Throws a `SetupError`
 * `<fileName>:<line>: <what is wrong>` on anything it cannot read without running a shell.
 */
export function parseConfigFile(text: string, fileName: string): Record<string, string> {
  return parseConfig(text, fileName).vars;
}

/** `parseConfigFile` with what `configToRawOptions` needs to pass other variables on and to warn. */
export function parseConfig(text: string, fileName: string): ParsedConfig {
  if (text.length > MAX_CONFIG_BYTES || Buffer.byteLength(text) > MAX_CONFIG_BYTES) {
    throw new SetupError(`config file '${fileName}' is larger than ${MAX_CONFIG_BYTES} bytes: refused`);
  }
  return new Parser(text, fileName).parse();
}

export const isKnownVariable = (name: string): name is ConfigVariable => Object.hasOwn(VARIABLES, name);

class Parser {
  private pos = 0;
  private line = 1;
  private readonly vars: Record<string, string> = {};
  private readonly lineOf: Record<string, number> = {};
  private readonly exported = new Set<string>();
  private readonly used = new Set<string>();

  constructor(
    private readonly text: string,
    private readonly fileName: string,
  ) {
    if (this.text.startsWith('\uFEFF')) this.pos = 1;
  }

  parse(): ParsedConfig {
    while (!this.atEnd()) this.statement();
    for (const [a, b] of ALIASES) {
      const va = this.vars[a];
      const vb = this.vars[b];
      if (va !== undefined && vb !== undefined && va !== '' && vb !== '' && va !== vb) {
        throw this.error(
          `${a} (line ${this.lineOf[a]}) and ${b} (line ${this.lineOf[b]}) disagree: set only one`,
          Math.max(this.lineOf[a] ?? 0, this.lineOf[b] ?? 0),
        );
      }
    }
    if ((this.vars.FCGISOCKET ?? '') !== '' && (this.vars.FCGIPORT ?? '') !== '') {
      throw this.error(
        `FCGISOCKET (line ${this.lineOf.FCGISOCKET}) and FCGIPORT (line ${this.lineOf.FCGIPORT}) are both set: either a Unix domain socket or a TCP port`,
        Math.max(this.lineOf.FCGISOCKET!, this.lineOf.FCGIPORT!),
      );
    }
    return { vars: { ...this.vars }, exported: this.exported, used: this.used, lineOf: { ...this.lineOf }, fileName: this.fileName };
  }

  /** One line's worth: blanks, then assignments (or `export`) separated by blanks or `;`, then an optional comment. */
  private statement(): void {
    this.skipBlanks();
    const c = this.peek();
    if (c === undefined) return;
    if (c === '\n') {
      this.advance();
      return;
    }
    if (c === '#') {
      this.skipComment();
      return;
    }
    if (c === ';') throw this.error("unexpected ';'");
    const startLine = this.line;
    const word = this.peekName();
    const after = this.text[this.pos + word.length];
    if (word === 'export' && (after === undefined || after === '\n' || after === ';' || this.isBlank(after))) {
      this.pos += word.length;
      this.exportStatement();
    } else {
      this.assignments();
    }
    this.endOfStatement(startLine);
  }

  /** `export NAME=value...` or `export NAME...` (marking a name for export: nothing to do here). */
  private exportStatement(): void {
    this.skipBlanks();
    let any = false;
    while (!this.atStatementEnd()) {
      if (this.peek() === '-') throw this.error('export options are not allowed');
      const name = this.peekName();
      if (name === '') throw this.error(`'${this.peekWord()}' is not a variable name`);
      this.exported.add(name);
      if (this.text[this.pos + name.length] === '=') {
        this.assignment();
      } else {
        this.pos += name.length;
        if (!this.atStatementEnd() && !this.isBlank(this.peek())) throw this.error(`'${name}${this.peekWord()}' is not a variable name`);
      }
      any = true;
      this.skipBlanks();
    }
    if (!any) throw this.error("'export' without a name");
  }

  /** `NAME=value [NAME=value...]`: what a shell would run as a command is refused. */
  private assignments(): void {
    do {
      this.assignment();
      this.skipBlanks();
    } while (!this.atStatementEnd());
  }

  private assignment(): void {
    const line = this.line;
    const name = this.peekName();
    if (name === '' || this.text[this.pos + name.length] !== '=') {
      const word = this.peekWord();
      if (name !== '' && /^[ \t]+=/.test(this.text.slice(this.pos + name.length))) {
        throw this.error(`no blanks allowed around '=' (write ${name}=value)`);
      }
      if (word.startsWith('`') || word.startsWith('$(')) throw this.error('command substitution is not allowed');
      throw this.error(`'${word}' is not an assignment: only NAME=value lines, comments and blank lines are allowed`);
    }
    this.pos += name.length + 1;
    const value = this.value();
    this.checkSize(name, value, line);
    const check = VARIABLES[name as ConfigVariable];
    if (check !== undefined && value !== '') {
      try {
        check(value, name);
      } catch (error) {
        if (!(error instanceof SetupError)) throw error;
        const message = error.message.includes(name) ? error.message : `${name}: ${error.message}`;
        throw this.error(message, line);
      }
    }
    this.vars[name] = value;
    this.lineOf[name] = line;
  }

  /** `$V$V` doubles a value per line: stop at what the kernel would refuse anyway, long before memory runs out. */
  private checkSize(name: string, value: string, line = this.line): void {
    if (value.length > MAX_VALUE_BYTES || Buffer.byteLength(value) > MAX_VALUE_BYTES) {
      throw this.error(`the value of ${name} is longer than ${MAX_VALUE_BYTES} bytes (the kernel refuses longer arguments and environment strings)`, line);
    }
  }

  /** The word after `=`: unquoted, single- and double-quoted parts, until an unquoted blank, `;`, newline or end. */
  private value(): string {
    let value = '';
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '\n' || c === ';' || this.isBlank(c)) return value;
      // A shell expands an unquoted ~ at the start of an assignment's value and after each unquoted ':'.
      const before = this.text[this.pos - 1];
      if (c === '~' && (before === '=' || before === ':')) throw this.error('tilde expansion is not supported: write the full path');
      if (c === "'") value += this.singleQuoted();
      else if (c === '"') value += this.doubleQuoted();
      else if (c === '\\') {
        this.advance();
        const next = this.peek();
        if (next === undefined) throw this.error('backslash at the end of the file');
        this.advance();
        if (next !== '\n') value += next; // backslash-newline continues the line
      } else if (c === '$') {
        value += this.expansion();
        this.checkSize('this variable', value);
      } else if (c === '`') throw this.error('command substitution is not allowed');
      else if (OPERATORS.has(c)) throw this.error(`'${c}' is not allowed here (quote the value)`);
      else {
        value += c;
        this.advance();
      }
    }
  }

  private singleQuoted(): string {
    const line = this.line;
    this.advance();
    const end = this.text.indexOf("'", this.pos);
    if (end < 0) throw this.error('unterminated single quote', line);
    const value = this.text.slice(this.pos, end);
    while (this.pos <= end) this.advance();
    return value;
  }

  private doubleQuoted(): string {
    const line = this.line;
    this.advance();
    let value = '';
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw this.error('unterminated double quote', line);
      if (c === '"') {
        this.advance();
        return value;
      }
      if (c === '\\') {
        this.advance();
        const next = this.peek();
        if (next === undefined) throw this.error('unterminated double quote', line);
        this.advance();
        if (next === '\n') continue;
        value += '"\\$`'.includes(next) ? next : `\\${next}`;
      } else if (c === '$') {
        value += this.expansion();
        this.checkSize('this variable', value);
      } else if (c === '`') {
        throw this.error('command substitution is not allowed');
      } else {
        value += c;
        this.advance();
      }
    }
  }

  /** At a `$`: `$NAME` or `${NAME}` of a name assigned earlier; a lone `$` is literal, as in a shell. */
  private expansion(): string {
    this.advance();
    const c = this.peek();
    if (c === '(') throw this.error('command substitution is not allowed');
    if (c === '{') {
      const close = this.text.indexOf('}', this.pos);
      const inner = close < 0 ? '' : this.text.slice(this.pos + 1, close);
      if (!NAME.test(inner)) {
        if (inner.includes('(') || inner.includes('`')) throw this.error('command substitution is not allowed');
        throw this.error(`'\${${close < 0 ? '' : inner}}': only \${NAME} of a variable set earlier in this file is supported`);
      }
      this.pos = close + 1;
      return this.lookup(inner);
    }
    if (c !== undefined && NAME_START.test(c)) {
      const name = this.peekName();
      this.pos += name.length;
      return this.lookup(name);
    }
    if (c !== undefined && /[0-9@*#?$!-]/.test(c)) throw this.error(`'$${c}': special parameters are not supported`);
    return '$';
  }

  private lookup(name: string): string {
    const value = this.vars[name];
    if (value === undefined) throw this.error(`'$${name}' is not set earlier in this file (the environment is not read)`);
    this.used.add(name);
    return value;
  }

  /** After a statement: a `;`, a comment, or the end of the line. */
  private endOfStatement(startLine: number): void {
    this.skipBlanks();
    const c = this.peek();
    if (c === undefined) return;
    if (c === ';') {
      this.advance();
      return;
    }
    if (c === '#') {
      this.skipComment();
      return;
    }
    if (c === '\n') {
      this.advance();
      return;
    }
    throw this.error(`unexpected '${this.peekWord()}'`, startLine);
  }

  private atStatementEnd(): boolean {
    const c = this.peek();
    return c === undefined || c === '\n' || c === ';' || c === '#';
  }

  private skipBlanks(): void {
    for (;;) {
      const c = this.peek();
      if (this.isBlank(c)) this.advance();
      else if (c === '\\' && this.text[this.pos + 1] === '\n') {
        this.advance();
        this.advance();
      } else return;
    }
  }

  private skipComment(): void {
    while (!this.atEnd() && this.peek() !== '\n') this.advance();
  }

  private isBlank(c: string | undefined): boolean {
    return c === ' ' || c === '\t' || c === '\r';
  }

  private peekName(): string {
    let end = this.pos;
    if (end < this.text.length && NAME_START.test(this.text[end] ?? '')) {
      end++;
      while (end < this.text.length && NAME_CHAR.test(this.text[end] ?? '')) end++;
    }
    return this.text.slice(this.pos, end);
  }

  /** The rest of the current word, for messages. */
  private peekWord(): string {
    const match = /^[^\s;#]*/.exec(this.text.slice(this.pos));
    const word = match?.[0] ?? '';
    return word === '' ? (this.peek() ?? '') : word.length > 40 ? `${word.slice(0, 40)}...` : word;
  }

  private peek(): string | undefined {
    return this.text[this.pos];
  }

  private advance(): void {
    if (this.text[this.pos] === '\n') this.line++;
    this.pos++;
  }

  private atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  private error(message: string, line = this.line): SetupError {
    return new SetupError(`${this.fileName}:${line}: ${message}`);
  }
}

function parseNames(name: string, text: string): string[] {
  const names = text.split(/[\s,]+/).filter((n) => n !== '');
  for (const n of names) {
    if (!NAME.test(n)) throw new SetupError(`${name}: '${n}' is not a variable name`);
  }
  return names;
}

/**
 * The options a config file sets, as command-line values (`RawOptions`): the caller validates them with
 * `resolveOptions`, like the command line. An empty value is the same as no value (as in the shell script).
 */
export function configToRawOptions(vars: Record<string, string>): RawOptions {
  const get = (...names: ConfigVariable[]): string | undefined => {
    for (const name of names) {
      const value = vars[name];
      if (value !== undefined && value !== '') return value;
    }
    return undefined;
  };
  const raw: RawOptions = {};
  const program = get('FCGIPROGRAM');
  if (program !== undefined) {
    const words = program
      .trim()
      .split(/\s+/)
      .filter((w) => w !== '');
    if (words.length > 0) raw.app = words;
  }
  // The option table names the variables of each option (-F: FCGIPROCS, else FCGI_CHILDREN).
  for (const entry of OPTION_TABLE as readonly OptionEntry[]) {
    const value = entry.config === undefined ? undefined : get(...entry.config);
    if (value !== undefined) (raw as Record<string, unknown>)[entry.key] = value;
  }
  const allowed = vars.ALLOWED_ENV;
  if (allowed !== undefined) {
    // As spawn-php.sh: the whitelist always lets the two php-cgi settings through.
    const names = parseNames('ALLOWED_ENV', allowed);
    for (const extra of ['PHP_FCGI_MAX_REQUESTS', 'FCGI_WEB_SERVER_ADDRS']) if (!names.includes(extra)) names.push(extra);
    raw.copyEnv = names;
  }
  const maxRequests = get('PHP_FCGI_MAX_REQUESTS');
  if (maxRequests !== undefined) raw.env = [`PHP_FCGI_MAX_REQUESTS=${maxRequests}`];
  return raw;
}

/**
 * The config file's options under the command line's: any option given on the command line wins.
 * `env` and `copyEnv` add up (file entries first, so a command-line `--env NAME=...` overrides the file's).
 * A command-line socket (-s or -p) replaces the file's socket (-s or -p; the file's -a stays unless the
 * command line gives one too, so `-p 9001` does not widen a file's 127.0.0.1 to every address), and a command-line
 * application (after `--`, or -f) the file's. Booleans: only `true` counts as given, since the command
 * line parser always fills them.
 */
export function mergeRawOptions(fromFile: RawOptions, fromCommandLine: RawOptions): RawOptions {
  const merged: RawOptions = { ...fromFile };
  const cli = fromCommandLine;
  if (cli.s !== undefined || cli.p !== undefined) {
    delete merged.s;
    delete merged.p;
  }
  if ((cli.app !== undefined && cli.app.length > 0) || cli.f !== undefined) {
    delete merged.app;
    delete merged.f;
  }
  for (const [key, value] of Object.entries(cli) as [keyof RawOptions, unknown][]) {
    if (value === undefined) continue;
    if (key === 'env' || key === 'copyEnv') continue;
    if (key === 'app' && (value as string[]).length === 0) continue;
    if (typeof value === 'boolean' && value === false && merged[key] !== undefined) continue;
    (merged as Record<string, unknown>)[key] = value;
  }
  for (const key of ['env', 'copyEnv'] as const) {
    const both = [...(fromFile[key] ?? []), ...(cli[key] ?? [])];
    if (fromFile[key] !== undefined || cli[key] !== undefined) {
      merged[key] = key === 'copyEnv' ? [...new Set(both)] : both;
    }
  }
  return merged;
}

/**
 * The options of a parsed file, with spawn-php.sh's meaning for variables it has no option for
 * (`PHPRC`, `TMPDIR`, helpers): spawn-php.sh sources the file, then runs `env -i` with the ALLOWED_ENV
 * names that are set, so
 * - with ALLOWED_ENV, each name it lists that the file sets reaches the app with the file's value
 *   (exported or not: spawn-php.sh reads the shell variable);
 * - without ALLOWED_ENV (spawn-fcgi-ts then keeps the whole environment, as a shell that sourced the file
 *   and ran spawn-fcgi would), each exported name reaches the app;
 * - any name can be used as `$NAME` in later lines.
 * A variable that none of this uses is most likely a typo or a leftover: `warn` is told (with the line).
 */
export function configOptions(config: ParsedConfig, warn: (message: string) => void = () => undefined): RawOptions {
  const raw = configToRawOptions(config.vars);
  const allowed = config.vars.ALLOWED_ENV === undefined ? undefined : new Set(raw.copyEnv ?? []);
  const env: string[] = [];
  for (const [name, value] of Object.entries(config.vars)) {
    if (isKnownVariable(name)) continue;
    const passed = allowed === undefined ? config.exported.has(name) : allowed.has(name);
    if (passed) env.push(`${name}=${value}`);
    if (passed || config.used.has(name)) continue;
    const why =
      allowed === undefined
        ? `it is not exported (and there is no ALLOWED_ENV) and no later line uses $${name}`
        : `ALLOWED_ENV does not name it and no later line uses $${name}`;
    const guess = closestKnown(name);
    warn(`${config.fileName}:${config.lineOf[name]}: ${name} is set but not used: ${why}${guess === undefined ? '' : ` (did you mean ${guess}?)`}`);
  }
  if (env.length > 0) raw.env = [...env, ...(raw.env ?? [])];
  return raw;
}

/** A known name one or two edits away from `name` (a typo such as FCGISOKET), if there is one. */
function closestKnown(name: string): ConfigVariable | undefined {
  let best: ConfigVariable | undefined;
  let bestDistance = 3;
  for (const known of CONFIG_VARIABLES) {
    const distance = editDistance(name.toUpperCase(), known);
    if (distance < bestDistance) [best, bestDistance] = [known, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  // Rows of the Levenshtein table; every index read below was written before (or in the first row).
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const at = (row: number[], k: number) => row[k] ?? Number.POSITIVE_INFINITY;
      current[j] = Math.min(at(previous, j) + 1, at(current, j - 1) + 1, at(previous, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 3;
}

/**
 * `--config FILE`: reads the file with the given function (e.g. `(p) => readFileSync(p, 'utf8')`),
 * parses it and returns its options. Errors are `SetupError`s that name the file; warnings (variables
 * that are set but never used) go to `warn`.
 */
export function loadConfigFile(path: string, readFile: (path: string) => string, warn?: (message: string) => void): RawOptions {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    if (error instanceof SetupError) throw error;
    throw new SetupError(`reading config file '${path}' failed: ${errnoText(error)}`, { cause: error });
  }
  return configOptions(parseConfig(text, path), warn);
}
