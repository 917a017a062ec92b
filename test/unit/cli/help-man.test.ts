// --help, `status --help` and the man page list the same options, and the parser accepts every one of them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { HELP_TEXT } from '../../../src/cli/help.js';
import { STATUS_HELP } from '../../../src/cli/status-command.js';
import { parseCommandLine } from '../../../src/cli/command-line.js';

const MAN = readFileSync(new URL('../../../man/spawn-fcgi-ts.1', import.meta.url), 'utf8');

/** The option names that open a help line: "-?, -h" → -? -h; "--log-format text|json" → --log-format. */
function leadingOptions(text: string): string[] {
  const names: string[] = [];
  for (const piece of text.split(/,\s*/)) {
    const word = piece.split(/\s+/)[0]!;
    if (!/^--?[A-Za-z?][\w-]*$/.test(word)) break;
    names.push(word);
  }
  return names;
}

/** Options of `spawn-fcgi-ts [options]` in --help: every line that starts, after one space, with an option, and its `(also --long)`. */
function helpOptions(help: string): Set<string> {
  const names = new Set<string>();
  for (const line of help.split('\n')) {
    const match = /^ {1,2}(-\S.*)$/.exec(line);
    if (match === null) continue;
    for (const name of leadingOptions(match[1]!)) names.add(name);
    // A long alias given in the description: "-v             show version (also --version)".
    for (const alias of match[1]!.matchAll(/\(also (--[\w-]+)\)/g)) names.add(alias[1]!);
  }
  return names;
}

/** Options in a usage line such as `status [--control PATH | -P PIDFILE | -s SOCKET | -p PORT] [--json]`. */
function usageOptions(line: string): Set<string> {
  return new Set([...line.matchAll(/(?<=[\s[|])(--?[A-Za-z?][\w-]*)/g)].map((match) => match[1]!));
}

/** The `spawn-fcgi-ts status [...]` usage, with its continuation lines (indented, starting with `[`). */
function statusUsageLine(text: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((candidate) => /spawn-fcgi-ts status \[/.test(candidate));
  assert.ok(start >= 0, `no 'spawn-fcgi-ts status [...]' usage line in:\n${text}`);
  let end = start + 1;
  while (end < lines.length && /^\s+\[/.test(lines[end]!)) end++;
  return lines.slice(start, end).join(' ');
}

/** Troff words of a macro line: quoted arguments are one word each. */
function troffWords(line: string): string[] {
  return [...line.matchAll(/"[^"]*"|\S+/g)].map((match) => match[0]);
}

/**
 * Options of the man page, by subsection of OPTIONS: the heading line after each `.TP` (`.B \-n`,
 * `.BI \-d " directory"`, `.BR \-v ", " \-\-version`); its unquoted words that start with `\-` are the names.
 */
function manOptions(man: string): Map<string, Set<string>> {
  const lines = man.split('\n');
  const start = lines.indexOf('.SH OPTIONS');
  assert.ok(start >= 0, 'the man page has no .SH OPTIONS section');
  const sections = new Map<string, Set<string>>();
  let subsection = '';
  for (let i = start + 1; i < lines.length && !lines[i]!.startsWith('.SH '); i++) {
    const line = lines[i]!;
    if (line.startsWith('.SS ')) subsection = line.slice(4).replace(/"/g, '');
    if (line !== '.TP') continue;
    const heading = lines[i + 1] ?? '';
    const [macro, ...words] = troffWords(heading);
    if (macro === undefined || !/^\.(B|BI|BR|IR)$/.test(macro)) continue;
    const names = words.filter((word) => word.startsWith('\\-')).map((word) => word.replace(/\\f[BIRP]/g, '').replace(/\\-/g, '-'));
    if (!sections.has(subsection)) sections.set(subsection, new Set());
    for (const name of names) sections.get(subsection)!.add(name);
  }
  return sections;
}

function missing(from: Set<string>, to: Set<string>): string[] {
  return [...from].filter((name) => !to.has(name)).sort();
}

const STATUS_SUBSECTION = 'The status command';

test('the man page parser finds the options (a sanity check of the test itself)', () => {
  const sections = manOptions(MAN);
  const main = new Set([...sections].filter(([name]) => name !== STATUS_SUBSECTION).flatMap(([, names]) => [...names]));
  for (const name of ['-f', '-s', '-p', '-F', '-C', '-?', '--version', '--kill-signal', '--rlimit', '--config', '--log-format']) {
    assert.ok(main.has(name), `the test's man parser did not find ${name}: found ${[...main].join(' ')}`);
  }
  assert.ok(sections.get(STATUS_SUBSECTION)?.has('--json'), `no --json in the man page's '${STATUS_SUBSECTION}' subsection`);
  const help = helpOptions(HELP_TEXT);
  for (const name of ['-f', '-?', '-h', '-S', '--copy-env', '--log-file', '--version', '--help']) {
    assert.ok(help.has(name), `the test's --help parser did not find ${name}: found ${[...help].join(' ')}`);
  }
});

test('every option in --help is in the man page, and the other way round', () => {
  const sections = manOptions(MAN);
  const man = new Set([...sections].filter(([name]) => name !== STATUS_SUBSECTION).flatMap(([, names]) => [...names]));
  const help = helpOptions(HELP_TEXT);
  const notInMan = missing(help, man);
  const notInHelp = missing(man, help);
  assert.deepEqual(notInMan, [], `in --help (src/cli/help.ts) but not in the man page's OPTIONS (man/spawn-fcgi-ts.1): ${notInMan.join(' ')}`);
  assert.deepEqual(notInHelp, [], `in the man page's OPTIONS (man/spawn-fcgi-ts.1) but not in --help (src/cli/help.ts): ${notInHelp.join(' ')}`);
});

test("the status command's options agree in --help, status --help and the man page", () => {
  const inHelp = usageOptions(statusUsageLine(HELP_TEXT));
  const inStatusHelp = usageOptions(statusUsageLine(STATUS_HELP));
  const inMan = manOptions(MAN).get(STATUS_SUBSECTION) ?? new Set<string>();
  const pairs: [string, Set<string>, string, Set<string>][] = [
    ['status --help (src/cli/status-command.ts)', inStatusHelp, "--help's status line (src/cli/help.ts)", inHelp],
    ['status --help (src/cli/status-command.ts)', inStatusHelp, `the man page's '${STATUS_SUBSECTION}'`, inMan],
    [`the man page's '${STATUS_SUBSECTION}'`, inMan, 'status --help (src/cli/status-command.ts)', inStatusHelp],
  ];
  for (const [fromName, from, toName, to] of pairs) {
    const gaps = missing(from, to);
    assert.deepEqual(gaps, [], `in ${fromName} but not in ${toName}: ${gaps.join(' ')}`);
  }
});

test('the command line accepts every option that --help documents', () => {
  for (const name of helpOptions(HELP_TEXT)) {
    if (name === '-?') continue; // handled by cli.ts before the parser, as the first argument only
    try {
      parseCommandLine([name, 'value', '--', 'app']);
    } catch (error) {
      // A value the option refuses, or --config's missing file, is fine here: only an unknown name is not.
      assert.doesNotMatch((error as Error).message, /unknown (argument|option)/i, `--help documents ${name}, but the command line refuses it`);
    }
  }
});
