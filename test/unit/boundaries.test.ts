// The module map as a test: each module of src/ belongs to a concern folder, and some folders must not
// import others. The rules are written for the folders (src/cli/, src/options/...); a module still at
// src/<name>.ts is placed by FLAT_NAMES, so the rules hold before and after the move into folders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The folders, in the order of the flow argv → options → socket → pool → child (→ helper), observers beside it:
 * - cli: the entry (argv, --help, the status command); nothing imports it.
 * - run: the composition of one running supervisor (wiring, daemon, PID file, signals); only cli imports it.
 * - options: the option table, Options, the config file; pure, imports only common.
 * - socket: bind/adopt/probe/drain the listening socket; never process code (pool, child).
 * - pool: the slots, their state machine and restart policy, the events and the snapshot it publishes.
 * - child: one child process (launcher, helper binary and protocol, identity, environment, app path).
 * - observe: log, stats, metrics, sd_notify, control socket, status page; reads the pool only through
 *   pool-snapshot (and the typed pool-events), never its internals.
 * - common: small pieces every folder may use (errors, clock, line splitting, display escaping).
 * - native: the C helper (no TypeScript).
 */
export const FOLDERS = ['cli', 'run', 'options', 'socket', 'pool', 'child', 'observe', 'common'] as const;
type Folder = (typeof FOLDERS)[number];

/** Where each module of the flat layout (src/<name>.ts) belongs. */
export const FLAT_NAMES: Record<string, Folder> = {
  // every module now sits in its folder (the restructure of issue 12): a new flat src/<name>.ts must be placed
};

/** Flat names a parallel change may add: placed by prefix, as the restructure script does. */
const FLAT_PREFIXES: [string, Folder][] = [
  ['pool-', 'pool'],
  ['slot-', 'pool'],
  ['status-', 'observe'],
  ['option-', 'options'],
];

/** The pool modules an observer may read: what the pool publishes, not how it works. */
const POOL_PUBLISHED = new Set(['pool-snapshot', 'pool-events']);

interface Rule {
  name: string;
  /** true when an import from `from` (folder, module) to `to` breaks the rule. */
  breaks(from: Place, to: Place): boolean;
}
interface Place {
  folder: Folder;
  module: string;
}

export const RULES: Rule[] = [
  { name: 'nothing imports the CLI layer (cli/)', breaks: (from, to) => to.folder === 'cli' && from.folder !== 'cli' },
  { name: 'only the CLI imports the supervisor wiring (run/)', breaks: (from, to) => to.folder === 'run' && from.folder !== 'cli' && from.folder !== 'run' },
  {
    name: 'options/ is pure: it imports only options/ and common/',
    breaks: (from, to) => from.folder === 'options' && to.folder !== 'options' && to.folder !== 'common',
  },
  { name: 'common/ imports only common/', breaks: (from, to) => from.folder === 'common' && to.folder !== 'common' },
  {
    name: 'the socket layer never imports process code (pool/, child/)',
    breaks: (from, to) => from.folder === 'socket' && (to.folder === 'pool' || to.folder === 'child'),
  },
  {
    name: 'the child layer does not know the pool or the socket',
    breaks: (from, to) => from.folder === 'child' && (to.folder === 'pool' || to.folder === 'socket'),
  },
  {
    name: 'observers read the pool through pool-snapshot (or its typed pool-events), never its internals',
    breaks: (from, to) => from.folder === 'observe' && to.folder === 'pool' && !POOL_PUBLISHED.has(to.module),
  },
];

function listSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listSources(path);
    return /\.(ts|mts|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Import and export-from specifiers, dynamic `import('...')` included; comments are not code. */
export function importSpecifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found: string[] = [];
  for (const match of code.matchAll(/(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]/g)) found.push(match[1] ?? '');
  for (const match of code.matchAll(/(?:^|[\s;])import\s*['"]([^'"]+)['"]/g)) found.push(match[1] ?? '');
  for (const match of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(match[1] ?? '');
  return found.filter((s) => s !== '');
}

/** The folder of a module of src/ (path relative to the repo root), or a complaint when nothing places it. */
export function placeOf(srcPath: string): Place | string {
  const parts = relative('src', srcPath).split('/');
  const module = (parts.at(-1) ?? '').replace(/\.(ts|mts|mjs|js)$/, '');
  if (parts.length > 1) {
    const folder = parts[0] as Folder;
    return FOLDERS.includes(folder) ? { folder, module } : `${srcPath}: src/${parts[0]}/ is not one of the folders (${FOLDERS.join(', ')})`;
  }
  const folder = FLAT_NAMES[module] ?? FLAT_PREFIXES.find(([prefix]) => module.startsWith(prefix))?.[1];
  return folder === undefined ? `${srcPath}: not placed in a folder (add it to FLAT_NAMES in test/unit/boundaries.test.ts, or move it)` : { folder, module };
}

/** Every import of a src/ module that breaks a rule or leaves the product, as `from -> to: rule` lines. */
export function violations(root: string): string[] {
  const problems: string[] = [];
  const sources = listSources(join(root, 'src')).filter((path) => !path.includes('/src/native/'));
  for (const file of sources) {
    const fromPath = relative(root, file);
    if (fromPath === 'src/loader.cjs') continue; // the bundle's launcher: no imports of src modules
    const from = placeOf(fromPath);
    if (typeof from === 'string') {
      problems.push(from);
      continue;
    }
    for (const specifier of importSpecifiers(readFileSync(file, 'utf8'))) {
      if (!specifier.startsWith('.')) continue;
      const target = relative(root, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts');
      if (!target.startsWith('src/')) {
        problems.push(`${fromPath} -> ${target}: product code imports a tool or test of the repo`);
        continue;
      }
      const to = placeOf(target);
      if (typeof to === 'string') {
        problems.push(to);
        continue;
      }
      for (const rule of RULES) {
        if (rule.breaks(from, to)) problems.push(`${fromPath} (${from.folder}) -> ${target} (${to.folder}): ${rule.name}`);
      }
    }
  }
  return problems;
}

test('the import parser finds static, export-from, side-effect and dynamic imports, not comments', () => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from '../b/b.js';",
    "export { c } from './c.js';",
    "import './d.js';",
    "const e = await import('./e.js');",
    "// import { f } from './f.js';",
    "/* import { g } from './g.js'; */",
    'import {',
    '  h,',
    "} from './h.js';",
  ].join('\n');
  assert.deepEqual(importSpecifiers(text).sort(), ['../b/b.js', './a.js', './c.js', './d.js', './e.js', './h.js']);
});

test('the rules catch a socket module importing the pool, an observer importing pool internals, anything importing the CLI', () => {
  const place = (folder: Folder, module: string): Place => ({ folder, module });
  const broken = (from: Place, to: Place) => RULES.filter((rule) => rule.breaks(from, to)).map((rule) => rule.name);
  assert.equal(broken(place('socket', 'socket'), place('pool', 'pool')).length, 1);
  assert.equal(broken(place('observe', 'stats'), place('pool', 'slot-machine')).length, 1);
  assert.deepEqual(broken(place('observe', 'stats'), place('pool', 'pool-snapshot')), []);
  assert.equal(broken(place('pool', 'pool'), place('cli', 'command-line')).length, 1);
  assert.deepEqual(broken(place('cli', 'cli'), place('run', 'supervisor')), []);
});

test('src/ keeps the module boundaries', () => {
  const problems = violations(ROOT);
  assert.deepEqual(problems, [], `imports across a forbidden boundary:\n${problems.join('\n')}`);
});
