#!/usr/bin/env node
// npm run bench: spawn-fcgi-ts beside spawn-fcgi, multiwatch, supervisord and php-fpm, same workload,
// same run. See bench/README.md for the method; --help for the options.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { APT_PACKAGES, RECIPES, REPO, aptInstall, ensureBuilt, missingTools, snapshotTs, staleBuild, which } from './bench/recipes.mjs';
import { cleanupAll, installCleanupHandlers, registerDir } from './bench/registry.mjs';
import { chartData, evaluate, markdownTable, quickSection, readme, svgChart } from './bench/report.mjs';
import {
  testChurnGroup,
  testCrashloop,
  testMaxRequests,
  testOverheadGroup,
  testReady,
  testReload,
  testPoolSizing,
  testRestart,
  testRestartUnderLoad,
  testStop,
  testThroughput,
} from './bench/tests.mjs';
import { loadavg, log, memAvailableKb } from './bench/util.mjs';

const ALL_TESTS = ['ready', 'restart', 'overhead', 'churn', 'throughput', 'stop', 'reload', 'maxreq', 'crashloop', 'restart-load', 'pool-sizing'];
/** What --quick runs unless --only / --tests say otherwise: issue 10's rows, spawn-fcgi-ts against the Node floor and multiwatch. */
const QUICK_RECIPES = ['spawn-fcgi-ts', 'multiwatch', 'node-floor'];
const QUICK_TESTS = ['ready', 'restart', 'overhead', 'churn', 'crashloop'];
const NEEDS_HTTP = new Set(['throughput', 'stop', 'reload', 'maxreq', 'restart-load']);

const HELP = `usage: node scripts/bench.mjs [options]

  --quick            short run (under 5 min on 2 cores): issue 10's rows only — spawn-fcgi-ts, multiwatch
                     and the Node floor; tests ${QUICK_TESTS.join(', ')} — with fewer repetitions, 1,000
                     churn deaths instead of 20,000 (add --only / --tests for other recipes and tests)
                     issue 11's rows (about 3 min on their own, so not in --quick): --quick --tests
                     stop,restart-load,pool-sizing --only spawn-fcgi-ts,spawn-fcgi-ts-dynamic,
                     spawn-fcgi-ts-ondemand,multiwatch,php-fpm,php-fpm-dynamic,php-fpm-ondemand
  --only LIST        recipes, comma separated: ${RECIPES.map((r) => r.name).join(', ')}
  --tests LIST       tests, comma separated: ${ALL_TESTS.join(', ')}
  --out DIR          where results.json and ratios.svg go (default: bench/ for a full run of
                     everything, /tmp/spawn-fcgi-bench-quick for a --quick run,
                     /tmp/spawn-fcgi-bench-out for any other subset or --ts-args)
  --ts-args=ARGS     extra spawn-fcgi-ts options (before --), e.g. --ts-args='--stable-after 1s';
                     the results then go to /tmp/spawn-fcgi-bench-out unless --out is given
  --install          as root: apt-get install the missing Debian packages
  --keep             keep the temp dir (configs, logs, access logs)
  --report FILE      no run: print the table of an earlier results.json and write its ratios.svg
                     (and bench/README.md for bench/results.json of a full run) again
  -h, --help
`;

const PARAMS = {
  full: {
    readyRuns: 10,
    readyWarmup: 1,
    readyRunsBig: 5,
    nReadyBig: 64,
    kills: 5,
    killSettleMs: 2000,
    killIntervalMs: 3000,
    jitterMs: 1000,
    restartTimeoutMs: 10_000,
    overheadSettleMs: 2000,
    idleSecs: 60,
    nIdleBig: 256,
    warmupSecs: 2,
    wrkSecs: 10,
    throughputRounds: 3,
    stopReps: 3,
    reloads: 3,
    crashSecs: 20,
    idleSecsBig: 60,
    churnDeaths: 20_000,
    churnStuckMs: 10_000,
    poolRounds: 3,
  },
  quick: {
    readyRuns: 3,
    readyWarmup: 1,
    readyRunsBig: 2,
    nReadyBig: 64,
    kills: 3,
    killSettleMs: 1000,
    killIntervalMs: 1000,
    jitterMs: 300,
    restartTimeoutMs: 5000,
    overheadSettleMs: 2000,
    idleSecs: 60,
    nIdleBig: 256,
    warmupSecs: 1,
    wrkSecs: 3,
    throughputRounds: 1,
    stopReps: 1,
    reloads: 2,
    crashSecs: 20,
    idleSecsBig: 10,
    churnDeaths: 1000,
    churnStuckMs: 10_000,
    poolRounds: 2,
  },
};

function parseCli() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        tests: { type: 'string' },
        out: { type: 'string' },
        install: { type: 'boolean', default: false },
        'ts-args': { type: 'string' },
        report: { type: 'string' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    process.stderr.write(`bench: ${error.message}\n${HELP}`);
    process.exit(2);
  }
  if (parsed.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const list = (text, allowed, what) => {
    if (text === undefined) return [...allowed];
    const items = text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const bad = items.filter((i) => !allowed.includes(i));
    if (bad.length > 0 || items.length === 0) {
      process.stderr.write(`bench: unknown ${what}: ${bad.join(', ') || '(empty)'} (choose from ${allowed.join(', ')})\n`);
      process.exit(2);
    }
    return allowed.filter((a) => items.includes(a));
  };
  const recipes = list(
    parsed.only ?? (parsed.quick ? QUICK_RECIPES.join(',') : undefined),
    RECIPES.map((r) => r.name),
    'recipe',
  );
  const tests = list(parsed.tests ?? (parsed.quick ? QUICK_TESTS.join(',') : undefined), ALL_TESTS, 'test');
  return { ...parsed, recipes, tests };
}

function versions() {
  const out = { node: process.version, kernel: release(), cpus: cpus().length };
  const r = spawnSync(
    'dpkg-query',
    ['-W', '-f=${Package} ${Version}\\n', 'spawn-fcgi', 'multiwatch', 'php8.2-cgi', 'php8.2-fpm', 'supervisor', 'nginx', 'wrk'],
    { encoding: 'utf8' },
  );
  for (const line of (r.stdout ?? '').split('\n')) {
    const [name, version] = line.split(' ');
    if (name && version) out[name] = version;
  }
  const git = spawnSync('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (git.status === 0) {
    const dirty = spawnSync('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
    out.spawn_fcgi_ts_commit = git.stdout.trim() + ((dirty.stdout ?? '').trim() ? ' (+ uncommitted changes)' : '');
  }
  return out;
}

async function main() {
  const cli = parseCli();
  if (cli.report !== undefined) return reportOnly(cli.report, cli.out);
  const mode = cli.quick ? 'quick' : 'full';
  const p = PARAMS[mode];
  const tsArgs = (cli['ts-args'] ?? '').split(/\s+/).filter(Boolean);
  if (tsArgs.length > 0) for (const r of RECIPES) if (r.ts) r.extraArgs = tsArgs;
  const complete = cli.recipes.length === RECIPES.length && cli.tests.length === ALL_TESTS.length && tsArgs.length === 0;
  const outDir = cli.out ?? (cli.quick ? '/tmp/spawn-fcgi-bench-quick' : complete ? join(REPO, 'bench') : '/tmp/spawn-fcgi-bench-out');
  const notes = [];

  // ---- tools
  let selected = RECIPES.filter((r) => cli.recipes.includes(r.name));
  let missing = missingTools(selected);
  const missingPkgs = () => [...new Set([...missing.common, ...Object.values(missing.byRecipe).flat()].map(([, pkg]) => pkg))];
  if (missingPkgs().length > 0) {
    const tools = new Map([...missing.common, ...Object.values(missing.byRecipe).flat()]);
    log(`missing: ${[...tools].map(([t, pkg]) => `${t} (Debian package ${pkg})`).join(', ')}`);
    log(`install them with: apt-get install -y ${APT_PACKAGES.join(' ')}   (or run this with --install as root)`);
    if (cli.install) {
      if (process.getuid?.() !== 0) log('--install needs root: not installing');
      else if (!aptInstall(missingPkgs())) log('apt-get failed');
      missing = missingTools(selected);
    }
  }
  if (missing.common.some(([t]) => t === 'php-cgi') && selected.some((r) => r.name !== 'php-fpm')) {
    log('php-cgi is missing: the php-cgi recipes cannot run');
  }
  for (const [name, tools] of Object.entries(missing.byRecipe)) {
    const note = `${name}: skipped, missing ${tools.map(([t, pkg]) => `${t} (apt-get install -y ${pkg})`).join(', ')}`;
    log(note);
    notes.push(note);
  }
  selected = selected.filter((r) => !missing.byRecipe[r.name]);
  let tests = cli.tests;
  if (missing.common.some(([t]) => t === 'nginx' || t === 'wrk')) {
    const skipped = tests.filter((t) => NEEDS_HTTP.has(t));
    if (skipped.length > 0) {
      const note = `tests ${skipped.join(', ')} skipped: nginx and wrk are needed (apt-get install -y nginx wrk)`;
      log(note);
      notes.push(note);
    }
    tests = tests.filter((t) => !NEEDS_HTTP.has(t));
  }
  if (selected.some((r) => r.ts)) {
    const stale = staleBuild();
    if (stale) {
      log(stale);
      notes.push(stale);
    }
    const problem = ensureBuilt();
    if (problem) {
      log(problem);
      notes.push(problem);
      selected = selected.filter((r) => !r.ts);
    }
  }
  if (selected.length === 0) {
    log('nothing to measure');
    return 1;
  }

  // ---- scratch space
  installCleanupHandlers();
  const tmpRoot = mkdtempSync('/tmp/spawn-fcgi-bench-');
  if (!cli.keep) registerDir(tmpRoot);
  const www = join(tmpRoot, 'www');
  mkdirSync(www);
  for (const f of readdirSync(join(REPO, 'bench', 'www'))) copyFileSync(join(REPO, 'bench', 'www', f), join(www, f));
  const ctx = { tmpRoot, www, readyScript: join(www, 'ready.php'), phpCgi: which('php-cgi') ?? '/usr/bin/php-cgi', p };
  const tsBuild = selected.some((r) => r.ts) ? snapshotTs(tmpRoot) : null;
  if (tsBuild?.problem) {
    log(`${tsBuild.problem}: spawn-fcgi-ts skipped`);
    notes.push(`${tsBuild.problem}: spawn-fcgi-ts skipped`);
    selected = selected.filter((r) => !r.ts);
    if (selected.length === 0) return 1;
  }
  mkdirSync(outDir, { recursive: true });

  const names = selected.map((r) => r.name);
  const results = {
    meta: {
      started: new Date().toISOString(),
      mode,
      params: p,
      recipes: names,
      tests,
      ts_extra_args: tsArgs,
      ts_build: tsBuild,
      versions: versions(),
      loadavg_start: loadavg(),
      mem_available_kb: memAvailableKb(),
      tmp_root: tmpRoot,
      notes,
    },
    recipes: Object.fromEntries(names.map((n) => [n, {}])),
  };
  const save = () => {
    results.meta.loadavg_end = loadavg();
    writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  };
  const rotated = (k) => selected.map((_, i) => selected[(i + k) % selected.length]);
  const wall = {};
  const t0 = Date.now();
  log(`${mode} run: recipes ${names.join(', ')}; tests ${tests.join(', ')}; results → ${outDir}; scratch ${tmpRoot}`);

  const everyRecipe = selected;
  const onlyIn = everyRecipe.filter((r) => r.onlyTests);
  if (onlyIn.length > 0 && tests.some((t) => onlyIn.some((r) => !r.onlyTests.includes(t)))) {
    notes.push(`${onlyIn.map((r) => r.name).join(', ')}: measured in ${onlyIn[0].onlyTests.join(', ')} only (N is their maximum)`);
  }
  for (const test of tests) {
    // the self-sizing pools take part only in the tests that mean something for them
    selected = everyRecipe.filter((r) => !r.onlyTests || r.onlyTests.includes(test));
    if (selected.length === 0) continue;
    const ts = Date.now();
    log(`=== ${test}`);
    if (test === 'ready') {
      // interleaved: one start of each recipe per round, the order rotating, so that load drift hits all alike
      for (const [key, n, runs, warmup] of [
        ['ready4', 4, p.readyRuns, p.readyWarmup],
        ['readyBig', p.nReadyBig, p.readyRunsBig, 0],
      ]) {
        for (let i = 0; i < warmup + runs; i++) {
          for (const recipe of rotated(i)) {
            const r = await testReady(ctx, recipe, n, i < warmup ? 0 : 1, i < warmup ? 1 : 0);
            const slot = (results.recipes[recipe.name][key] ??= { n, runs: [] });
            slot.runs.push(...r.runs);
          }
        }
      }
    } else if (test === 'restart') {
      for (const recipe of selected) results.recipes[recipe.name].restart = await testRestart(ctx, recipe);
    } else if (test === 'overhead') {
      for (const [key, n, idleSecs] of [
        ['overhead4', 4, p.idleSecs],
        ['overheadBig', p.nIdleBig, p.idleSecsBig ?? p.idleSecs],
      ]) {
        // side by side, as many at once as memory allows (~12 MB per exec'd php-cgi; 60 % of the free memory)
        const perRecipeKb = n * 12 * 1024;
        const fit = Math.max(1, Math.floor(((memAvailableKb() ?? 4e6) * 0.6) / perRecipeKb));
        const groups = [];
        for (let i = 0; i < selected.length; i += fit) groups.push(selected.slice(i, i + fit));
        for (const group of groups) {
          const res = await testOverheadGroup(ctx, group, n, idleSecs);
          for (const [name, v] of Object.entries(res)) results.recipes[name][key] = v;
          save();
        }
      }
    } else if (test === 'churn') {
      // side by side: the figure is memory, not speed
      const res = await testChurnGroup(ctx, selected, p.churnDeaths);
      for (const [name, v] of Object.entries(res)) results.recipes[name].churn = v;
    } else if (test === 'throughput') {
      for (let round = 1; round <= p.throughputRounds; round++) {
        for (const recipe of rotated(round - 1)) {
          (results.recipes[recipe.name].throughput ??= []).push(await testThroughput(ctx, recipe, round));
        }
      }
    } else if (test === 'stop') {
      for (const recipe of selected) {
        results.recipes[recipe.name].stop = await testStop(ctx, recipe, p.stopReps);
        results.recipes[recipe.name].stop_tcp = await testStop(ctx, recipe, p.stopReps, { tcp: true });
      }
    } else if (test === 'restart-load') {
      for (const recipe of selected) results.recipes[recipe.name].restart_load = await testRestartUnderLoad(ctx, recipe);
    } else if (test === 'pool-sizing') {
      for (const recipe of selected) results.recipes[recipe.name].pool = await testPoolSizing(ctx, recipe, p.poolRounds);
    } else if (test === 'reload') {
      for (const recipe of selected) results.recipes[recipe.name].reload = await testReload(ctx, recipe);
    } else if (test === 'maxreq') {
      for (const recipe of selected) results.recipes[recipe.name].maxreq = await testMaxRequests(ctx, recipe);
    } else if (test === 'crashloop') {
      for (const [key, variant] of [
        ['crash_start', 'start'],
        ['crash_running', 'running'],
      ]) {
        const res = await testCrashloop(ctx, selected, variant, p.crashSecs);
        for (const [name, v] of Object.entries(res)) results.recipes[name][key] = v;
      }
    }
    wall[test] = (Date.now() - ts) / 1000;
    results.meta.wall_s = wall;
    save();
    log(`=== ${test} done in ${wall[test].toFixed(0)} s`);
  }
  selected = everyRecipe;
  results.meta.total_wall_s = (Date.now() - t0) / 1000;

  // ---- report
  render(results, outDir, complete && !cli.quick && cli.out === undefined);
  return 0;
}

/**
 * The table (stdout), results.json with the evaluated rows, ratios.svg, and bench/README.md when
 * `writeReadme` (a full run of everything).
 */
function render(results, outDir, writeReadme) {
  const names = results.meta.recipes;
  const rows = evaluate(results, names, results.meta.params);
  results.table = rows;
  const table = markdownTable(rows, names, Object.fromEntries(names.map((n) => [n, n])));
  const v = results.meta.versions;
  const tsArgs = results.meta.ts_extra_args ?? [];
  const meta =
    `${results.meta.mode} run, ${results.meta.started.slice(0, 16).replace('T', ' ')} UTC, ${(results.meta.total_wall_s ?? 0).toFixed(0)} s; ` +
    `${v.cpus} CPUs, kernel ${v.kernel}, Node ${v.node}; spawn-fcgi-ts ${v.spawn_fcgi_ts_commit ?? '?'}${tsArgs.length > 0 ? ` with ${tsArgs.join(' ')}` : ''}; ` +
    `loadavg ${results.meta.loadavg_start?.join(' ')} at the start, ${results.meta.loadavg_end?.join(' ')} at the end.`;
  const notes = results.meta.notes ?? [];
  const noteText = notes.length > 0 ? `Notes: ${notes.join('; ')}.` : '';
  const chart = chartData(rows);
  results.chart = chart;
  writeFileSync(join(outDir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(join(outDir, 'ratios.svg'), svgChart(chart, { title: 'spawn-fcgi-ts ÷ best peer, per measure', subtitle: meta.split('; loadavg')[0] }));
  if (writeReadme) {
    const path = join(REPO, 'bench', 'README.md');
    let quick = '';
    try {
      quick = quickSection(readFileSync(path, 'utf8'));
    } catch {
      /* no README yet */
    }
    writeFileSync(path, readme({ table, meta, notes: noteText, quick }));
  }
  process.stdout.write(
    `\n${meta}\n\n${table}\n\nCells: median (min–max); "· ×r" after a peer's figure = spawn-fcgi-ts ÷ that peer (same run). ↓ lower / ↑ higher is better.\n${noteText ? `${noteText}\n` : ''}`,
  );
  log(`results: ${join(outDir, 'results.json')}, chart: ${join(outDir, 'ratios.svg')}${writeReadme ? ', bench/README.md' : ''}`);
}

/** --report FILE: render an earlier run again (after a change of the report code). */
function reportOnly(file, out) {
  const results = JSON.parse(readFileSync(file, 'utf8'));
  const outDir = resolve(out ?? dirname(resolve(file)));
  const full =
    results.meta.mode === 'full' &&
    results.meta.recipes.length === RECIPES.length &&
    results.meta.tests.length === ALL_TESTS.length &&
    (results.meta.ts_extra_args ?? []).length === 0;
  render(results, outDir, full && outDir === resolve(REPO, 'bench'));
  return 0;
}

let status = 1;
try {
  status = await main();
} catch (error) {
  log(`failed: ${error?.stack ?? error}`);
  status = 70;
} finally {
  await cleanupAll('normal');
}
process.exit(status);
