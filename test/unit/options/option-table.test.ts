// The option table is the one source of the parser, --help, the config-file mapping and RawOptions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONFIG_VARIABLES, configToRawOptions } from '../../../src/options/config-file.js';
import { parseCommandLine } from '../../../src/cli/command-line.js';
import { HELP_TEXT } from '../../../src/cli/help.js';
import { ALL_OPTIONS, OPTION_TABLE, optionName, type OptionEntry } from '../../../src/options/option-table.js';

const table = OPTION_TABLE as readonly OptionEntry[];

test('every option has one name the parser knows it by, and no two options share a name or a key', () => {
  const names = ALL_OPTIONS.flatMap((entry) => [entry.short, entry.long].filter((n) => n !== undefined));
  assert.equal(new Set(names).size, names.length, `a name appears twice: ${names.join(' ')}`);
  const keys = table.map((entry) => entry.key);
  assert.equal(new Set(keys).size, keys.length);
  for (const entry of ALL_OPTIONS) assert.ok(optionName(entry) !== '');
});

test('each entry with a field resolves it; the socket, application and pool-bound options (resolved together) are the only ones without', () => {
  const without = table.filter((entry) => entry.field === undefined).map((entry) => entry.key);
  assert.deepEqual(without.sort(), ['a', 'f', 'maxProcs', 'minProcs', 'p', 's']);
  for (const entry of table) assert.equal(entry.field === undefined, entry.resolve === undefined, entry.key);
});

test("every option's --help row is in the help text", () => {
  for (const entry of ALL_OPTIONS) assert.ok(HELP_TEXT.includes(` ${entry.help.label} `), `no --help row for ${entry.help.label}`);
});

test('the config-file variables of the table are known to the config file and set their option', () => {
  for (const entry of table) {
    for (const variable of entry.config ?? []) {
      assert.ok(CONFIG_VARIABLES.includes(variable), `${variable} (${entry.key}) is not a config-file variable`);
      const raw = configToRawOptions({ [variable]: 'x' }) as Record<string, unknown>;
      assert.equal(raw[entry.key], 'x', `${variable} does not set ${entry.key}`);
    }
  }
});

test('the parser puts each option under its key: a value, a repeated list, a flag', () => {
  const { raw } = parseCommandLine(['-F', '3', '--env', 'A=1', '--env', 'B=2', '--keep-socket', '--kill-signal', 'USR1', '--', 'app']);
  assert.equal(raw.F, '3');
  assert.deepEqual(raw.env, ['A=1', 'B=2']);
  assert.equal(raw.keepSocket, true);
  assert.equal(raw.killSignal, 'USR1');
  assert.equal(raw.S, false);
  assert.deepEqual(raw.app, ['app']);
});
