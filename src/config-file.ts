/**
 * The spawn-php.sh variable file (`FCGISOCKET=/run/php.sock`, `PHP_FCGI_CHILDREN=4`...), read without a
 * shell: assignments, quotes, comments and `$NAME` / `${NAME}` of names assigned earlier in the same
 * file; nothing that would need a shell to run (command substitution, other expansions, commands).
 *
 * Pure: the caller reads the file; `loadConfigFile` takes the reading function as an argument.
 */
import { SetupError, errnoText } from './errors.js';
import {
  parseDuration,
  parseHost,
  parseInteger,
  parseMode,
  parsePort,
  parseSignal,
  parseUnixPath,
  type RawOptions,
} from './options.js';

/** Every name a config file may assign, with the check its value must pass (an empty value is "unset"). */
const VARIABLES = {
  SPAWNFCGI: undefined, // the binary spawn-php.sh runs: accepted and ignored here
  FCGIPROGRAM: undefined,
  FCGIPORT: (v: string) => void parsePort(v),
  FCGISOCKET: (v: string) => void parseUnixPath(v),
  FCGIADDR: (v: string) => void parseHost(v),
  PHP_FCGI_CHILDREN: (v: string, name: string) => void parseInteger(name, v, { min: 0 }),
  PHP_FCGI_MAX_REQUESTS: (v: string, name: string) => void parseInteger(name, v, { min: 0 }),
  FCGI_WEB_SERVER_ADDRS: undefined,
  ALLOWED_ENV: (v: string, name: string) => void parseNames(name, v),
  USERID: undefined,
  GROUPID: undefined,
  SOCKUSERID: undefined,
  SOCKGROUPID: undefined,
  SOCKMODE: (v: string) => void parseMode(v),
  FCGI_CHILDREN: (v: string, name: string) => void parseInteger(name, v, { min: 1 }),
  FCGIPROCS: (v: string, name: string) => void parseInteger(name, v, { min: 1 }),
  FCGI_BACKLOG: (v: string, name: string) => void parseInteger(name, v, { min: 1 }),
  FCGIPIDFILE: undefined,
  FCGICHROOT: undefined,
  CHROOT: undefined,
  FCGIDIR: undefined,
  KILL_SIGNAL: (v: string, name: string) => void parseSignal(name, v),
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

/**
 * Parses the text of a config file into `{NAME: value}` (last assignment wins). Throws a `SetupError`
 * `<fileName>:<line>: <what is wrong>` on anything it cannot read without running a shell.
 */
export function parseConfigFile(text: string, fileName: string): Record<string, string> {
  return new Parser(text, fileName).parse();
}

class Parser {
  private pos = 0;
  private line = 1;
  private readonly vars: Record<string, string> = {};
  private readonly lineOf: Record<string, number> = {};

  constructor(
    private readonly text: string,
    private readonly fileName: string,
  ) {
    if (this.text.startsWith('\uFEFF')) this.pos = 1;
  }

  parse(): Record<string, string> {
    while (!this.atEnd()) this.statement();
    for (const [a, b] of ALIASES) {
      const va = this.vars[a];
      const vb = this.vars[b];
      if (va !== undefined && vb !== undefined && va !== '' && vb !== '' && va !== vb) {
        throw this.error(`${a} (line ${this.lineOf[a]}) and ${b} (line ${this.lineOf[b]}) disagree: set only one`, Math.max(this.lineOf[a]!, this.lineOf[b]!));
      }
    }
    if ((this.vars.FCGISOCKET ?? '') !== '' && (this.vars.FCGIPORT ?? '') !== '') {
      throw this.error(
        `FCGISOCKET (line ${this.lineOf.FCGISOCKET}) and FCGIPORT (line ${this.lineOf.FCGIPORT}) are both set: either a Unix domain socket or a TCP port`,
        Math.max(this.lineOf.FCGISOCKET!, this.lineOf.FCGIPORT!),
      );
    }
    return { ...this.vars };
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
      if (this.text[this.pos + name.length] === '=') {
        this.assignment();
      } else {
        this.checkKnown(name);
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
    this.checkKnown(name);
    this.pos += name.length + 1;
    const value = this.value();
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

  private checkKnown(name: string): void {
    if (!Object.hasOwn(VARIABLES, name)) {
      throw this.error(`unknown variable '${name}' (known: ${CONFIG_VARIABLES.join(' ')})`);
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
      } else if (c === '$') value += this.expansion();
      else if (c === '`') throw this.error('command substitution is not allowed');
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
    if (end < this.text.length && NAME_START.test(this.text[end]!)) {
      end++;
      while (end < this.text.length && NAME_CHAR.test(this.text[end]!)) end++;
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
    const words = program.trim().split(/\s+/).filter((w) => w !== '');
    if (words.length > 0) raw.app = words;
  }
  const map: [keyof RawOptions, ConfigVariable[]][] = [
    ['p', ['FCGIPORT']],
    ['s', ['FCGISOCKET']],
    ['a', ['FCGIADDR']],
    ['C', ['PHP_FCGI_CHILDREN']],
    ['F', ['FCGIPROCS', 'FCGI_CHILDREN']],
    ['u', ['USERID']],
    ['g', ['GROUPID']],
    ['U', ['SOCKUSERID']],
    ['G', ['SOCKGROUPID']],
    ['M', ['SOCKMODE']],
    ['b', ['FCGI_BACKLOG']],
    ['P', ['FCGIPIDFILE']],
    ['c', ['FCGICHROOT', 'CHROOT']],
    ['d', ['FCGIDIR']],
    ['killSignal', ['KILL_SIGNAL']],
    ['killTimeout', ['KILL_TIMEOUT']],
    ['webServerAddrs', ['FCGI_WEB_SERVER_ADDRS']],
  ];
  for (const [key, names] of map) {
    const value = get(...names);
    if (value !== undefined) (raw as Record<string, unknown>)[key] = value;
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
 * `--config FILE`: reads the file with the given function (e.g. `(p) => readFileSync(p, 'utf8')`),
 * parses it and returns its options. Errors are `SetupError`s that name the file.
 */
export function loadConfigFile(path: string, readFile: (path: string) => string): RawOptions {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new SetupError(`reading config file '${path}' failed: ${errnoText(error)}`, { cause: error });
  }
  return configToRawOptions(parseConfigFile(text, path));
}
