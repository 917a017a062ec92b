#!/usr/bin/env node
// npm run soak [-- --deaths N] [--warmup N] [--procs N] [--every N] [--json FILE]
//
// The long runs that do not belong in the default test suite (they need minutes and a machine that is
// not busy to mean anything): figures, not a pass/fail on a threshold.
//
// churn: `spawn-fcgi-ts -n -s S -F 4 --stable-after 1ms -- build/static-responder`, and kill -9 of every
// child as soon as it has exec'd the responder, 10,000 times by default. It reports the supervisor's
// memory plateau (VmRSS at start, after the warm-up, at every checkpoint and at the end; the lowest of ten
// samples over a second, since RSS swings by a few MB with each garbage collection), its descriptors,
// and its CPU per death. It checks what the default suite's churn test checks (every death respawned,
// no descriptor leaked, nothing left unreaped) and exits 1 if one of those fails.
//
// Run it on a quiet machine after `npm run build`; it takes about 5 ms a death on 2 cores.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { directChildren } from '../dist-tools/proc.mjs';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli.cjs');
const RESPONDER = join(ROOT, 'build', 'static-responder');
const CLK_TCK = 100;

const { values: opts } = parseArgs({
  options: {
    deaths: { type: 'string', default: '10000' },
    warmup: { type: 'string', default: '500' },
    procs: { type: 'string', default: '4' },
    every: { type: 'string', default: '2000' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opts.help) {
  process.stdout.write(
    readFileSync(fileURLToPath(import.meta.url), 'utf8')
      .split('\n')
      .slice(1, 13)
      .map((l) => l.replace(/^\/\/ ?/, ''))
      .join('\n') + '\n',
  );
  process.exit(0);
}
const positive = (name) => {
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`soak: --${name} must be a positive integer, got '${opts[name]}'\n`);
    process.exit(2);
  }
  return n;
};
const DEATHS = positive('deaths');
const WARMUP = positive('warmup');
const PROCS = positive('procs');
const EVERY = positive('every');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line) => process.stderr.write(`soak: ${line}\n`);

function statusField(pid, name) {
  try {
    const m = new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : m[1];
  } catch {
    return undefined;
  }
}
const rssKb = (pid) => Number(statusField(pid, 'VmRSS') ?? NaN);
const state = (pid) => statusField(pid, 'State');
const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;
/** utime + stime in ms. */
function cpuMs(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}
function readCmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ');
  } catch {
    return '';
  }
}
function exe(pid) {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

async function waitFor(what, predicate, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function churnSoak() {
  const dir = mkdtempSync(join(tmpdir(), 'sfts-soak-'));
  const responder = realpathSync(RESPONDER);
  const sock = join(dir, 'soak.sock');
  const sup = spawn(process.execPath, [CLI, '-n', '-s', sock, '-F', String(PROCS), '--stable-after', '1ms', '--', RESPONDER], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let exited = null;
  sup.once('exit', (code, signal) => {
    exited = { code, signal };
  });
  let respawns = 0;
  let backoffs = 0;
  let tail = '';
  sup.stderr.setEncoding('utf8').on('data', (chunk) => {
    const text = tail + chunk;
    const lines = text.split('\n');
    tail = lines.pop();
    for (const line of lines) {
      if (line.includes('child spawned: PID')) respawns++;
      if (line.includes('restarting in')) backoffs++;
    }
  });
  const stop = () => {
    if (exited === null) sup.kill('SIGTERM');
  };
  process.once('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    // The children are the resident spawner's (the helper in its --spawner mode): the supervisor's grandchildren.
    const spawner = () => directChildren(sup.pid).find((pid) => readCmdline(pid).includes('--spawner'));
    const children = () => {
      const s = spawner();
      return s === undefined ? [] : directChildren(s);
    };
    const running = () => {
      const list = children();
      return list.length === PROCS && list.every((pid) => exe(pid) === responder && state(pid) !== 'Z');
    };
    /** PROCS children running the responder, then the lowest RSS of ten samples over a second. */
    const measure = async (label, deaths) => {
      await waitFor(`${PROCS} running children`, running);
      await sleep(300);
      let rss = Infinity;
      for (let i = 0; i < 10; i++) {
        rss = Math.min(rss, rssKb(sup.pid));
        await sleep(100);
      }
      const s = spawner();
      // The spawner is part of the supervisor's cost: its memory, descriptors and CPU are reported beside it.
      const sample = {
        label,
        deaths,
        rssKb: rss,
        fds: fdCount(sup.pid),
        cpuMs: cpuMs(sup.pid),
        spawnerRssKb: s === undefined ? null : rssKb(s),
        spawnerFds: s === undefined ? null : fdCount(s),
        spawnerCpuMs: s === undefined ? null : cpuMs(s),
        at: Date.now(),
      };
      log(
        `${label.padEnd(14)} deaths ${String(deaths).padStart(6)}  VmRSS ${(rss / 1024).toFixed(1)} MB  fds ${sample.fds}  CPU ${sample.cpuMs} ms` +
          `  | spawner VmRSS ${((sample.spawnerRssKb ?? 0) / 1024).toFixed(1)} MB  fds ${sample.spawnerFds}  CPU ${sample.spawnerCpuMs} ms`,
      );
      return sample;
    };

    const killed = new Set();
    const churn = async (target) => {
      while (killed.size < target) {
        for (const pid of children()) {
          if (killed.size >= target) break;
          if (killed.has(pid) || exe(pid) !== responder) continue;
          killed.add(pid);
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
        if (exited !== null) throw new Error(`the supervisor exited during the churn: ${JSON.stringify(exited)}`);
        await sleep(1);
      }
    };

    await waitFor('the supervisor to serve', running, 30_000);
    const samples = [await measure('start', 0)];
    await churn(WARMUP);
    samples.push(await measure('after warm-up', WARMUP));
    const churnStart = samples.at(-1);
    const t0 = Date.now();
    for (let done = 0; done < DEATHS; ) {
      const step = Math.min(EVERY, DEATHS - done);
      await churn(WARMUP + done + step);
      done += step;
      samples.push(await measure(done === DEATHS ? 'end' : 'checkpoint', WARMUP + done));
    }
    const churnMs = Date.now() - t0;
    const end = samples.at(-1);
    await waitFor('every respawn in the log', () => respawns >= WARMUP + DEATHS, 20_000).catch(() => undefined);
    const unreaped = children().filter((pid) => state(pid) === 'Z').length;
    // CPU of the supervisor over the measured churn, the ten-sample pauses included (they cost ~nothing);
    // the spawner's beside it (it forks and reaps the children).
    const cpuPerDeathMs = (end.cpuMs - churnStart.cpuMs) / DEATHS;
    const spawnerCpuPerDeathMs = ((end.spawnerCpuMs ?? 0) - (churnStart.spawnerCpuMs ?? 0)) / DEATHS;
    const result = {
      kind: 'churn',
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      loadavgAtEnd: loadavg().map((l) => Number(l.toFixed(2))),
      deaths: DEATHS,
      warmup: WARMUP,
      procs: PROCS,
      churnMs,
      msPerDeath: Number((churnMs / DEATHS).toFixed(2)),
      cpuPerDeathMs: Number(cpuPerDeathMs.toFixed(3)),
      spawnerCpuPerDeathMs: Number(spawnerCpuPerDeathMs.toFixed(3)),
      spawnerRssKb: { start: samples[0].spawnerRssKb, end: end.spawnerRssKb },
      spawnerFds: { afterWarmup: churnStart.spawnerFds, end: end.spawnerFds },
      rssKb: { start: samples[0].rssKb, afterWarmup: churnStart.rssKb, end: end.rssKb, max: Math.max(...samples.map((s) => s.rssKb)) },
      growthAfterWarmupKb: end.rssKb - churnStart.rssKb,
      growthLastIntervalKb: samples.length >= 2 ? end.rssKb - samples.at(-2).rssKb : 0,
      fds: { start: samples[0].fds, afterWarmup: churnStart.fds, end: end.fds },
      respawns,
      backoffs,
      unreaped,
      samples,
    };
    const problems = [];
    if (respawns !== WARMUP + DEATHS) problems.push(`${respawns} respawns logged for ${WARMUP + DEATHS} deaths`);
    if (end.fds !== churnStart.fds) problems.push(`descriptors ${churnStart.fds} -> ${end.fds}`);
    if (end.spawnerFds !== churnStart.spawnerFds) problems.push(`spawner descriptors ${churnStart.spawnerFds} -> ${end.spawnerFds}`);
    if (unreaped > 0) problems.push(`${unreaped} killed children not reaped`);
    result.problems = problems;
    return result;
  } finally {
    stop();
    await waitFor('the supervisor to exit', () => exited !== null, 20_000).catch(() => {
      if (exited === null) sup.kill('SIGKILL');
    });
    rmSync(dir, { recursive: true, force: true });
  }
}

const result = await churnSoak();
const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;
const lines = [
  `churn soak: ${result.deaths} deaths (+${result.warmup} warm-up) of -F ${result.procs} children in ${(result.churnMs / 1000).toFixed(1)} s (${result.msPerDeath} ms a death), ${result.backoffs} with backoff`,
  `  supervisor VmRSS: start ${mb(result.rssKb.start)}, after warm-up ${mb(result.rssKb.afterWarmup)}, after ${result.deaths} more ${mb(result.rssKb.end)} (growth after warm-up ${result.growthAfterWarmupKb} kB, over the last ${EVERY} deaths ${result.growthLastIntervalKb} kB; max ${mb(result.rssKb.max)})`,
  `  plateau: ${result.samples.map((s) => `${s.deaths}:${(s.rssKb / 1024).toFixed(1)}`).join(' ')} (deaths:MB)`,
  `  supervisor fds: start ${result.fds.start}, after warm-up ${result.fds.afterWarmup}, end ${result.fds.end}`,
  `  supervisor CPU: ${result.cpuPerDeathMs} ms per death; spawner CPU ${result.spawnerCpuPerDeathMs} ms per death, VmRSS ${mb(result.spawnerRssKb.start ?? 0)} → ${mb(result.spawnerRssKb.end ?? 0)}, fds ${result.spawnerFds.afterWarmup} → ${result.spawnerFds.end}`,
  `  load average at the end: ${result.loadavgAtEnd.join(' ')} on ${result.cpus} CPUs`,
  result.problems.length === 0 ? '  checks: every death respawned, no descriptor leaked, every child reaped' : `  PROBLEMS: ${result.problems.join('; ')}`,
];
process.stdout.write(lines.join('\n') + '\n');
if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 2) + '\n');
process.exit(result.problems.length === 0 ? 0 : 1);
