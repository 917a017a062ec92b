#!/usr/bin/env node
// Bundles src/cli/cli.ts and its dependencies into one CommonJS file, dist/main.cjs, run by dist/cli.cjs
// (src/loader.cjs) through V8's code cache: start-up reads one file instead of hundreds of modules
// (execa and yargs alone are ~70 ms each unbundled on these machines) and compiles almost nothing.
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const root = new URL('..', import.meta.url);
const path = (relative) => new URL(relative, root).pathname;
const { version } = JSON.parse(readFileSync(path('package.json'), 'utf8'));

const bundled = await build({
  entryPoints: [path('src/cli/cli.ts')],
  outfile: path('dist/main.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  // The licences of the bundled packages go to dist/THIRD-PARTY-NOTICES (below); their few /*! */ comments too.
  legalComments: 'eof',
  metafile: true,
  define: { SPAWN_FCGI_TS_VERSION: JSON.stringify(version), 'import.meta.url': '__import_meta_url' },
  banner: { js: "const __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
  plugins: [lazyYargsUi(), yargsOwnPackage()],
});
// vm.Script (the loader) has no dynamic import(): every module must be bundled or require()d.
if (/\bimport\(/.test(readFileSync(path('dist/main.cjs'), 'utf8'))) throw new Error('dist/main.cjs calls import(): make that import static');
writeThirdPartyNotices(bundled.metafile);
copyFileSync(path('src/loader.cjs'), path('dist/cli.cjs'));
chmodSync(path('dist/cli.cjs'), 0o755);
await writeCodeCache();

/**
 * yargs imports its help-screen layout (cliui, string-width) at its top level, and evaluating them is the
 * largest part of the bundle's start-up (~25 of ~70 ms for `-v`: string-width's Unicode tables and regexes).
 * We never print yargs' help (.help(false), our own fail handler), so yargs gets stand-ins that load the
 * real module on first call (a require() inside a function stays lazy in a CJS bundle).
 */
function lazyYargsUi() {
  const yargsDir = path('node_modules/yargs/');
  return {
    name: 'lazy-yargs-ui',
    setup(build) {
      build.onResolve({ filter: /^(cliui|string-width)$/ }, (args) =>
        args.importer.startsWith(yargsDir) ? { path: args.path, namespace: 'lazy-yargs-ui' } : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: 'lazy-yargs-ui' }, (args) => ({
        contents: `let real;\nmodule.exports = (...args) => (real ??= require(${JSON.stringify(args.path)}).default)(...args);\n`,
        resolveDir: yargsDir,
        loader: 'js',
      }));
    },
  };
}

/**
 * yargs guesses a version at construction (we turn it off after): it walks up from the working directory,
 * or from the node_modules folder it lives in, listing every directory until one has a package.json, and
 * when none has, throws and catches an AssertionError whose message formats its values: ~1.2 ms of every
 * start, more under a large directory. Its directory search (escalade) gets a stand-in that names the
 * package's own package.json, next to dist/.
 */
function yargsOwnPackage() {
  const yargsDir = path('node_modules/yargs/');
  return {
    name: 'yargs-own-package',
    setup(build) {
      build.onResolve({ filter: /^escalade\/sync$/ }, (args) =>
        args.importer.startsWith(yargsDir) ? { path: args.path, namespace: 'yargs-own-package' } : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: 'yargs-own-package' }, () => ({
        contents: "module.exports = () => require('node:path').join(__dirname, '..', 'package.json');\n",
        loader: 'js',
      }));
    },
  };
}

/**
 * dist/THIRD-PARTY-NOTICES: the name, version, licence and licence text of every npm package whose code the
 * bundle contains (read from esbuild's metafile), as their licences (MIT, ISC) require of a redistribution.
 */
function writeThirdPartyNotices(metafile) {
  const packages = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) packages.set(match[1], input.slice(0, match.index + match[0].length));
  }
  const sections = [...packages]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, dir]) => {
      const manifest = JSON.parse(readFileSync(path(`${dir}package.json`), 'utf8'));
      const licenceFile = readdirSync(path(dir)).find((file) => /^(licen[cs]e|copying)([.-]|$)/i.test(file));
      if (licenceFile === undefined) throw new Error(`build: ${name} has no licence file: cannot write its notice`);
      const text = readFileSync(path(`${dir}${licenceFile}`), 'utf8').trim();
      return `${name} ${manifest.version} (${manifest.license ?? 'see below'})\n${manifest.homepage ?? manifest.repository?.url ?? ''}\n\n${text}\n`;
    });
  const intro = 'dist/main.cjs bundles code from the npm packages below. Their licence notices follow.\n';
  writeFileSync(path('dist/THIRD-PARTY-NOTICES'), [intro, ...sections].join(`\n${'-'.repeat(78)}\n\n`));
  if (!existsSync(path('dist/THIRD-PARTY-NOTICES'))) throw new Error('build: dist/THIRD-PARTY-NOTICES not written');
}

/**
 * One real run writes dist/main.cjs.cache: a pool of the static responder started, serving, its child
 * killed twice (restarted at once, then after a backoff), and stopped, so that the cache holds what start-up,
 * a restart, a backoff and the stop compile (V8 compiles a function on its first call: without this, the
 * first restart of every pool and the first tries of a crash loop compiled their path).
 */
async function writeCodeCache() {
  rmSync(path('dist/main.cjs.cache'), { force: true });
  const socket = `/tmp/spawn-fcgi-ts-build-${process.pid}.sock`;
  const responder = path('build/static-responder');
  const args = ['-n', '-s', socket, '--', responder];
  const pool = spawn(process.execPath, [path('dist/cli.cjs'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  pool.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => pool.once('exit', resolve));
  for (let i = 0; i < 100 && !stderr.includes('serving on') && pool.exitCode === null; i++) await sleep(50);
  // Kill the child twice: the first death is restarted at once (by the spawner), the second after a backoff.
  const spawnedPids = () => [...stderr.matchAll(/child spawned(?: successfully)?: PID: (\d+)/g)].map((match) => Number(match[1]));
  for (let round = 0; round < 2; round++) {
    const pids = spawnedPids();
    if (pids.length === 0 || pool.exitCode !== null) break;
    try {
      process.kill(pids.at(-1), 'SIGKILL');
    } catch {
      // Gone already: its restart is what is wanted anyway.
    }
    for (let i = 0; i < 100 && spawnedPids().length === pids.length && pool.exitCode === null; i++) await sleep(50);
  }
  pool.kill('SIGTERM');
  await exited;
  rmSync(socket, { force: true });
  try {
    readFileSync(path('dist/main.cjs.cache'));
  } catch {
    console.warn(`build: no code cache written (the first run writes it): ${stderr.trim().split('\n').pop() ?? ''}`);
  }
}

// The repo's FastCGI client (a tool, not the product), for the demo and the benchmark (plain .mjs scripts
// that do not compile TypeScript): dist-tools/, apart from what the package ships.
await build({
  entryPoints: [new URL('tools/fcgi/client.ts', root).pathname],
  outfile: new URL('dist-tools/fcgi-client.mjs', root).pathname,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
});
// The repo's /proc readers, for the benchmark.
await build({
  entryPoints: [new URL('tools/proc/proc.ts', root).pathname],
  outfile: new URL('dist-tools/proc.mjs', root).pathname,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
});
