// The measures. Each test starts its own runs of a recipe and stops them by pid before it returns.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fcgiRequest, phpParams, probe } from './fcgi.mjs';
import { REPO } from './recipes.mjs';
import { classifyAccessLog, freePort, runWrk, startNginx, startWrk, stopNginx } from './http.mjs';
import { cpuDeltaNs, cpuNs, cpuSample, signalIfSame } from './proc.mjs';
import { Run, describeExit } from './run.mjs';
import { fixed, jitter, log, mapLimit, median, now, sleep } from './util.mjs';

const ms = (v) => (v === null || v === undefined ? '–' : `${fixed(v, 1)} ms`);

// ---------------------------------------------------------------- ready
/** Starts from exec to (a) the first answered FastCGI request, (b) n workers; then an idle SIGTERM. */
export async function testReady(ctx, recipe, n, runs, warmup) {
  const out = { n, runs: [] };
  const total = runs + warmup;
  for (let i = 0; i < total; i++) {
    const run = new Run(ctx, recipe, { n, label: `ready${n}` }).start();
    const r = await run.waitReady({ timeoutMs: n > 16 ? 60_000 : 15_000 });
    r.warmup = i < warmup;
    await sleep(300 + jitter(ctx.p.jitterMs));
    r.idle_stop = await run.stop('SIGTERM');
    if (i === total - 1) r.output_tail = run.outputTail();
    out.runs.push(r);
    log(
      `${recipe.name} ready N=${n} ${i + 1}/${total}${r.warmup ? ' (warm-up)' : ''}: answer ${ms(r.answer_ms)}, ${n} workers ${ms(r.workers_ms)} (max ${r.max_workers}), SIGTERM→gone ${ms(r.idle_stop.all_gone_ms)} ${r.gave_up ?? ''}`,
    );
    await sleep(200);
  }
  return out;
}

// -------------------------------------------------------------- restart
/** SIGKILL the oldest worker; time until N workers exist again (one of them new), then a request. */
export async function testRestart(ctx, recipe) {
  const n = 4;
  const run = new Run(ctx, recipe, { n, label: 'restart' }).start();
  const ready = await run.waitReady();
  const out = { n, ready, kills: [], timeout_ms: ctx.p.restartTimeoutMs };
  if (ready.final_workers === 0) {
    out.error = 'no workers';
    out.stop = await run.stop();
    return out;
  }
  await sleep(ctx.p.killSettleMs + jitter(ctx.p.jitterMs));
  for (let k = 0; k < ctx.p.kills; k++) {
    const { workers } = run.poll();
    if (workers.length === 0) {
      out.kills.push({ error: 'no workers left' });
      break;
    }
    const victim = workers.reduce((a, b) => (b.starttime < a.starttime || (b.starttime === a.starttime && b.pid < a.pid) ? b : a));
    const before = new Set(workers.map((w) => w.pid));
    const rec = { victim: victim.pid, workers_before: workers.length, count_ms: null, count_and_request_ms: null };
    const t0 = now();
    signalIfSame(victim.pid, victim.starttime, 'SIGKILL');
    let minCount = workers.length;
    while (now() - t0 < ctx.p.restartTimeoutMs) {
      const w2 = run.poll().workers.filter((w) => w.pid !== victim.pid);
      minCount = Math.min(minCount, w2.length);
      if (w2.length >= n && w2.some((w) => !before.has(w.pid))) {
        rec.count_ms = now() - t0;
        break;
      }
      await sleep(2);
    }
    rec.min_count = minCount;
    if (rec.count_ms !== null) {
      const p = await probe(run.sock, ctx.readyScript, 5000);
      if (p.ok) rec.count_and_request_ms = now() - t0;
      else rec.request_error = p.code;
    } else {
      rec.count_after_timeout = run.poll().workers.length;
      rec.spawner_alive = run.rootAlive;
      rec.request_ok_after_timeout = (await probe(run.sock, ctx.readyScript, 2000)).ok;
    }
    out.kills.push(rec);
    log(
      `${recipe.name} kill ${k + 1}/${ctx.p.kills} pid ${victim.pid}: N back ${ms(rec.count_ms)}, + request ${ms(rec.count_and_request_ms)}${rec.count_ms === null ? ` (never: ${rec.count_after_timeout} workers)` : ''}`,
    );
    if (rec.count_ms === null) {
      out.never_recovered = true;
      break;
    }
    await sleep(ctx.p.killIntervalMs + jitter(ctx.p.jitterMs));
  }
  out.stop = await run.stop();
  out.output_tail = run.outputTail();
  return out;
}

// ------------------------------------------------------------- overhead
/**
 * Supervisor RSS/PSS and CPU at idle. The recipes of one group run side by side (each on its own
 * socket) and idle together, which costs one idle window per group instead of one per recipe.
 */
export async function testOverheadGroup(ctx, recipes, n, idleSecs) {
  const runs = recipes.map((recipe) => new Run(ctx, recipe, { n, label: `idle${n}` }).start());
  const readies = await Promise.all(runs.map((run) => run.waitReady({ timeoutMs: 180_000, stuckMs: 10_000 })));
  await sleep(ctx.p.overheadSettleMs);
  const a = runs.map((run) => run.sampleSupervisors());
  log(`idle N=${n} (${recipes.map((r) => r.name).join(', ')}): sampled; idling ${idleSecs} s`);
  // CPU of the supervisors once a second (no /proc scan: only their own schedstat), to tell a
  // one-off event (a GC a few seconds after start) from a steady cost
  const series = runs.map(() => []);
  const tIdle = now();
  for (let s = 1; s <= idleSecs; s++) {
    await sleep(Math.max(0, tIdle + s * 1000 - now()));
    runs.forEach((_run, i) => {
      const cpu = a[i].supervisors.reduce((acc, sup) => acc + (cpuNs(sup.pid) ?? 0), 0) / 1e6;
      series[i].push([s, Number((cpu - a[i].sup_cpu_ms).toFixed(4))]);
    });
  }
  const b = runs.map((run) => run.sampleSupervisors());
  const stops = await Promise.all(runs.map((run) => run.stop('SIGTERM', 60_000)));
  const out = {};
  recipes.forEach((recipe, i) => {
    const samePids = a[i].supervisors.map((s) => s.pid).join() === b[i].supervisors.map((s) => s.pid).join();
    const cpu = b[i].sup_cpu_ms - a[i].sup_cpu_ms;
    out[recipe.name] = {
      n,
      idle_secs: idleSecs,
      ready: readies[i],
      idle: a[i],
      after: b[i],
      same_supervisor_pids: samePids,
      has_supervisor: a[i].supervisors.length > 0,
      cpu_ms_during_idle: cpu,
      cpu_ms_per_min: (cpu * 60) / idleSecs,
      cpu_series_ms: series[i],
      // the second half of the window only: the steady cost, without start-up after-effects
      cpu_ms_per_min_second_half: secondHalfRate(series[i], idleSecs),
      cpu_ticks_ms_during_idle: b[i].sup_cpu_ticks_ms - a[i].sup_cpu_ticks_ms,
      stop: stops[i],
    };
    log(
      `${recipe.name} idle N=${n}: workers ${a[i].n_workers}, supervisor ${a[i].supervisors.map((s) => s.comm).join('+') || 'none'} RSS ${a[i].sup_rss_kb} kB → ${b[i].sup_rss_kb} kB, CPU exec→idle ${fixed(a[i].sup_cpu_ms, 1)} ms, during idle ${fixed(cpu, 3)} ms`,
    );
  });
  return out;
}

function secondHalfRate(series, idleSecs) {
  const half = Math.floor(idleSecs / 2);
  const at = (t) => (t === 0 ? 0 : series.find(([s]) => s === t)?.[1]);
  const a = at(half);
  const b = at(idleSecs);
  if (a === undefined || b === undefined || idleSecs - half <= 0) return null;
  return ((b - a) * 60) / (idleSecs - half);
}

// ----------------------------------------------------------- throughput
export async function testThroughput(ctx, recipe, round) {
  const run = new Run(ctx, recipe, { n: 4, label: `wrk${round}` }).start();
  const ready = await run.waitReady();
  const out = { round, ready, scripts: {} };
  let nginx = null;
  try {
    nginx = await startNginx(run.runDir, run.sock, ctx.www);
    for (const script of ['ok.php', 'loop.php']) {
      if (ctx.p.warmupSecs > 0) await runWrk(nginx.port, `/${script}`, { durationS: ctx.p.warmupSecs });
      const before = run.poll().workers.length;
      const res = await runWrk(nginx.port, `/${script}`, { durationS: ctx.p.wrkSecs });
      res.workers_before = before;
      res.workers_after = run.poll().workers.length;
      out.scripts[script] = res;
      log(
        `${recipe.name} wrk ${script} round ${round}: ${fixed(res.rps, 0)} req/s, p99 ${ms(res.p99_ms)}, non-2xx ${res.non2xx}, socket errors ${res.socket_errors}, workers ${before}→${res.workers_after}`,
      );
    }
  } catch (error) {
    out.error = String(error.message ?? error);
    log(`${recipe.name} throughput: ${out.error}`);
  } finally {
    if (nginx) await stopNginx(nginx);
  }
  out.stop = await run.stop();
  return out;
}

// ----------------------------------------------------------------- stop
/**
 * SIGTERM while wrk drives slow.php (100 ms) through nginx: requests are being executed and queued.
 * slow.php logs the nginx request id when it starts, so a failed request is known to have been
 * accepted by a worker (or to have waited in the backlog).
 */
export async function testStop(ctx, recipe, reps, { tcp = false } = {}) {
  const out = { reps: [], transport: tcp ? 'tcp' : 'unix' };
  for (let i = 0; i < reps; i++) {
    // tcp: the pool listens on 127.0.0.1:PORT (issue 11 asks for both transports)
    const sock = tcp ? `tcp:127.0.0.1:${await freePort()}` : null;
    const run = new Run(ctx, recipe, { n: 4, label: tcp ? 'stop-tcp' : 'stop', sock }).start();
    const rec = { ready: await run.waitReady() };
    let nginx = null;
    try {
      nginx = await startNginx(run.runDir, run.sock, ctx.www, { accessLog: true });
      const wrk = startWrk(nginx.port, '/slow.php', { conns: 16, durationS: 60, latency: false });
      await sleep(2000 + jitter(ctx.p.jitterMs));
      rec.t_signal_epoch_ms = Date.now();
      rec.stop = await run.stop(recipe.stopSignal ?? 'SIGTERM');
      await sleep(500);
      wrk.stop();
      rec.wrk = await wrk.done;
      await sleep(200);
      rec.requests = classifyAccessLog(nginx, rec.t_signal_epoch_ms);
    } catch (error) {
      rec.error = String(error.message ?? error);
      rec.stop ??= await run.stop();
    } finally {
      if (nginx) await stopNginx(nginx);
    }
    rec.output_tail = run.outputTail();
    out.reps.push(rec);
    const q = rec.requests ?? {};
    log(
      `${recipe.name} stop (${out.transport}) ${i + 1}/${reps}: exit ${ms(rec.stop?.spawner_exit_ms)}, all gone ${ms(rec.stop?.all_gone_ms)}; accepted by a worker and failed ${q.accepted_failed}/${q.accepted}; in flight failed ${q.inflight_failed}/${q.inflight}`,
    );
    await sleep(300);
  }
  return out;
}

// --------------------------------------------------------------- reload
/** The recipe's reload signal under load (wrk on ok.php): failed requests, time until every worker is new. */
export async function testReload(ctx, recipe) {
  if (!recipe.reload) return { skipped: 'no reload that keeps serving (n/a)' };
  const run = new Run(ctx, recipe, { n: 4, label: 'reload' }).start();
  const out = { signal: recipe.reload.signal, ready: await run.waitReady(), reloads: [] };
  let nginx = null;
  try {
    nginx = await startNginx(run.runDir, run.sock, ctx.www, { accessLog: true });
    const wrk = startWrk(nginx.port, '/ok.php', { conns: 16, durationS: 120 });
    await sleep(1000);
    for (let i = 0; i < ctx.p.reloads; i++) {
      const before = new Set(run.poll().workers.map((w) => w.pid));
      const t0 = now();
      process.kill(run.pid, recipe.reload.signal);
      const rec = { done_ms: null };
      let minCount = before.size;
      while (now() - t0 < 20_000) {
        const w = run.poll().workers;
        const fresh = w.filter((x) => !before.has(x.pid));
        minCount = Math.min(minCount, w.length);
        if (fresh.length >= run.n && w.every((x) => !before.has(x.pid))) {
          rec.done_ms = now() - t0;
          break;
        }
        if (!run.rootAlive) break;
        await sleep(5);
      }
      rec.min_workers = minCount;
      rec.spawner_alive = run.rootAlive;
      out.reloads.push(rec);
      log(
        `${recipe.name} reload ${i + 1}/${ctx.p.reloads} (${recipe.reload.signal}): every worker replaced after ${ms(rec.done_ms)}, fewest workers meanwhile ${minCount}`,
      );
      if (!run.rootAlive) break;
      await sleep(1000 + jitter(ctx.p.jitterMs / 2));
    }
    wrk.stop();
    out.wrk = await wrk.done;
    await sleep(200);
    out.requests = classifyAccessLog(nginx);
    out.failed = (out.wrk.non2xx ?? 0) + (out.wrk.socket_errors ?? 0);
    log(
      `${recipe.name} reload under load: ${out.requests.total} requests, failed ${out.requests.failed} (nginx), wrk non-2xx ${out.wrk.non2xx} + socket errors ${out.wrk.socket_errors}`,
    );
  } catch (error) {
    out.error = String(error.message ?? error);
    log(`${recipe.name} reload: ${out.error}`);
  } finally {
    if (nginx) await stopNginx(nginx);
  }
  out.stop = await run.stop();
  out.output_tail = run.outputTail();
  return out;
}

// --------------------------------------------------------------- maxreq
/** PHP_FCGI_MAX_REQUESTS=500 (php-fpm: pm.max_requests=500) under wrk load: does the pool keep serving? */
export async function testMaxRequests(ctx, recipe) {
  const run = new Run(ctx, recipe, { n: 4, label: 'maxreq', maxRequests: 500 }).start();
  const out = { max_requests: 500, ready: await run.waitReady() };
  let nginx = null;
  try {
    nginx = await startNginx(run.runDir, run.sock, ctx.www, { accessLog: true });
    const seen = new Set();
    let minWorkers = Infinity;
    const wrk = startWrk(nginx.port, '/ok.php', { conns: 32, durationS: ctx.p.wrkSecs });
    let finished = false;
    wrk.done.then(() => {
      finished = true;
    });
    while (!finished) {
      const w = run.poll().workers;
      for (const x of w) seen.add(`${x.pid}:${x.starttime}`);
      minWorkers = Math.min(minWorkers, w.length);
      await sleep(20);
    }
    out.wrk = await wrk.done;
    out.workers_seen = seen.size;
    out.min_workers = minWorkers;
    out.workers_after = run.poll().workers.length;
    await sleep(200);
    out.requests = classifyAccessLog(nginx);
    out.failed = (out.wrk.non2xx ?? 0) + (out.wrk.socket_errors ?? 0);
    log(
      `${recipe.name} max-requests 500: ${fixed(out.wrk.rps, 0)} req/s, ${out.requests.total} requests, failed ${out.requests.failed} (nginx) / non-2xx ${out.wrk.non2xx} + socket errors ${out.wrk.socket_errors} (wrk), ${seen.size} worker processes seen, ${out.workers_after} at the end`,
    );
  } catch (error) {
    out.error = String(error.message ?? error);
    log(`${recipe.name} max-requests: ${out.error}`);
  } finally {
    if (nginx) await stopNginx(nginx);
  }
  out.spawner_alive = run.rootAlive;
  out.stop = await run.stop();
  return out;
}

// ------------------------------------------------------------ crashloop
function readAttempts(logPath) {
  if (!existsSync(logPath)) return [];
  return readFileSync(logPath, 'utf8')
    .split('\n')
    .map((l) => Number(l.split(' ')[1]))
    .filter(Number.isFinite);
}

/**
 * A worker that exits 1 at once. variant 'start': from the first spawn; variant 'running': the pool
 * starts with php-cgi, then a flag file makes every new spawn fail and every worker is SIGKILLed.
 * The recipes run side by side (each alone would cost a full window). Supervisor CPU is the
 * spawner's own and that of its children that are not workers (spawn-fcgi-ts's resident spawner,
 * which forks the workers for it).
 */
export async function testCrashloop(ctx, recipes, variant, secs) {
  const out = {};
  await mapLimit(recipes, recipes.length, async (recipe) => {
    out[recipe.name] = await crashOne(ctx, recipe, variant, secs);
  });
  return out;
}

async function crashOne(ctx, recipe, variant, secs) {
  if (!recipe.crashloop) return { skipped: 'the recipe takes no worker command' };
  const n = 4;
  const label = `crash-${variant}`;
  const dir = join(ctx.tmpRoot, `${recipe.name}-${label}-scripts`);
  mkdirSync(dir, { recursive: true });
  const logPath = join(dir, 'attempts.log');
  const flag = join(dir, 'fail-now');
  const script = join(dir, variant === 'start' ? 'crash-worker.sh' : 'gated-worker.sh');
  writeFileSync(
    script,
    variant === 'start'
      ? `#!/bin/bash\necho "$$ $EPOCHREALTIME" >> ${logPath}\nexit 1\n`
      : `#!/bin/bash\nif [ -e ${flag} ]; then echo "$$ $EPOCHREALTIME" >> ${logPath}; exit 1; fi\nexec ${ctx.phpCgi} "$@"\n`,
  );
  chmodSync(script, 0o755);
  const run = new Run(ctx, recipe, { n, label, worker: script });
  run.start();
  const res = { variant, n, secs };
  // spawn-fcgi -F exits once its children run: once running, nothing restarts them
  if (variant === 'running' && recipe.daemonizes) res.no_supervisor = true;
  let windowStart;
  let cpuAtStart = new Map();
  // The crash workers are scripts (comm: crash-worker.sh / gated-worker.s): never the supervisor's CPU.
  const notSupervisor = new RegExp(`${run.tracker.workerRe.source}|-worker\\.`);
  if (variant === 'running') {
    res.ready = await run.waitReady();
    if (res.ready.final_workers === 0) {
      res.error = `never served: ${res.ready.gave_up}`;
      res.stop = await run.stop();
      return res;
    }
    await sleep(1000);
    cpuAtStart = cpuSample(run.pid, notSupervisor);
    writeFileSync(flag, '');
    windowStart = now();
    res.t_kill_epoch = Date.now() / 1000;
    for (const w of run.poll().workers) signalIfSame(w.pid, w.starttime, 'SIGKILL');
  } else {
    windowStart = run.t0;
    res.t_start_epoch = Date.now() / 1000 - run.elapsed() / 1000;
  }
  let lastCpu = cpuAtStart;
  let exitedAt = null;
  while (now() - windowStart < secs * 1000) {
    const c = run.rootAlive ? cpuSample(run.pid, notSupervisor) : null;
    if (c !== null && c.size > 0) lastCpu = c;
    if (exitedAt === null && !run.rootAlive) exitedAt = run.exit.at_ms - (windowStart - run.t0);
    run.poll();
    await sleep(100);
  }
  const attempts = readAttempts(logPath);
  const origin = variant === 'running' ? res.t_kill_epoch : res.t_start_epoch;
  const times = attempts.map((t) => t - origin);
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  Object.assign(res, {
    attempts: attempts.length,
    attempts_per_slot: attempts.length / n,
    attempt_times_s: times.slice(0, 80).map((t) => Number(t.toFixed(4))),
    gap_median_ms: gaps.length ? median(gaps) * 1000 : null,
    supervisor_cpu_ms: cpuDeltaNs(cpuAtStart, lastCpu) / 1e6,
    cpu_counts_from: variant === 'running' ? 'the kill (start-up excluded)' : 'exec (start-up included)',
    spawner_exited_at_ms: exitedAt,
    spawner_exit: run.exit,
    workers_at_end: run.poll().workers.length,
  });
  res.stop = run.rootAlive ? await run.stop() : (await run.kill(), { note: 'the spawner had already exited' });
  res.output_tail = run.outputTail(2500);
  log(
    `${recipe.name} crash loop (${variant}): ${res.attempts} tries in ${secs} s (${fixed(res.attempts_per_slot, 1)} per slot), supervisor CPU ${fixed(res.supervisor_cpu_ms, 1)} ms, spawner ${exitedAt === null ? 'still running' : `exited after ${fixed(exitedAt, 0)} ms (${describeExit(run.exit)})`}`,
  );
  return res;
}

// ---------------------------------------------------------------- churn
/**
 * Supervisor memory under worker churn: N=4, every worker SIGKILLed as soon as it runs php-cgi, until
 * `deaths` have died; the supervisors' RSS before and after (the lowest of ten samples over a second: RSS
 * swings with each garbage collection) and their CPU per death. The recipes run side by side (with their
 * churn settings: no backoff, no giving up), each churned by its own loop.
 */
export async function testChurnGroup(ctx, recipes, deaths) {
  const n = 4;
  const runs = recipes.map((recipe) => new Run(ctx, recipe, { n, label: 'churn', churn: true }).start());
  const readies = await Promise.all(runs.map((run) => run.waitReady({ timeoutMs: 60_000, stuckMs: 10_000 })));
  await sleep(ctx.p.overheadSettleMs);
  const out = {};
  await Promise.all(
    runs.map(async (run, i) => {
      const recipe = recipes[i];
      const res = { n, deaths_target: deaths, ready: readies[i] };
      out[recipe.name] = res;
      if (readies[i].final_workers === 0) {
        res.error = `never served: ${readies[i].gave_up}`;
        return;
      }
      res.before = await quietSample(run, n);
      const t0 = now();
      Object.assign(res, await churnRun(run, deaths, ctx.p.churnStuckMs));
      res.churn_ms = now() - t0;
      res.after = await quietSample(run, n);
      res.cpu_ms_per_death = res.deaths > 0 ? (res.after.sup_cpu_ms - res.before.sup_cpu_ms) / res.deaths : null;
      log(
        `${recipe.name} churn: ${res.deaths} deaths in ${fixed(res.churn_ms / 1000, 1)} s${res.stuck ? ` (${res.stuck})` : ''}; supervisor RSS ${res.before.sup_rss_kb} kB → ${res.after.sup_rss_kb ?? '?'} kB, CPU ${fixed(res.cpu_ms_per_death, 2)} ms per death`,
      );
    }),
  );
  const stops = await Promise.all(runs.map((run) => run.stop('SIGTERM', 60_000)));
  recipes.forEach((recipe, i) => {
    out[recipe.name].stop = stops[i];
    out[recipe.name].output_tail = runs[i].outputTail();
  });
  return out;
}

/** n workers up (or 10 s), then the supervisors' lowest RSS of ten samples over a second. */
async function quietSample(run, n) {
  const t = now();
  while (now() - t < 10_000 && run.poll().workers.length < n) await sleep(5);
  await sleep(300);
  let best = null;
  for (let i = 0; i < 10; i++) {
    const s = run.sampleSupervisors();
    if (best === null || s.sup_rss_kb < best.sup_rss_kb) best = s;
    await sleep(100);
  }
  return { ...best, sup_cpu_ms: run.sampleSupervisors().sup_cpu_ms };
}

/** SIGKILL every worker of the run as soon as it is seen, until `deaths`; stops when nothing respawns for stuckMs. */
async function churnRun(run, deaths, stuckMs) {
  const killed = new Set();
  let lastKill = now();
  while (killed.size < deaths) {
    if (!run.rootAlive) return { deaths: killed.size, stuck: `the spawner exited (${describeExit(run.exit)})` };
    for (const w of run.poll().workers) {
      if (killed.size >= deaths) break;
      const key = `${w.pid}:${w.starttime}`;
      if (killed.has(key)) continue;
      if (signalIfSame(w.pid, w.starttime, 'SIGKILL')) {
        killed.add(key);
        lastKill = now();
      }
    }
    if (now() - lastKill > stuckMs) return { deaths: killed.size, stuck: `no worker to kill for ${stuckMs / 1000} s` };
    await sleep(2);
  }
  return { deaths: killed.size };
}

// ---------------------------------------------------------- restart-load
/**
 * A restart (stop, then a new start on the same socket) while wrk drives ok.php through nginx: the
 * failed requests (nginx's access log and wrk) and the gap from the stop signal to the new pool's first answer.
 */
export async function testRestartUnderLoad(ctx, recipe) {
  const first = new Run(ctx, recipe, { n: 4, label: 'restart-load' }).start();
  const out = { ready: await first.waitReady() };
  let nginx = null;
  let second = null;
  try {
    nginx = await startNginx(first.runDir, first.sock, ctx.www, { accessLog: true });
    const wrk = startWrk(nginx.port, '/ok.php', { conns: 16, durationS: 60, latency: false });
    await sleep(1500 + jitter(ctx.p.jitterMs));
    const t0 = now();
    out.t_signal_epoch_ms = Date.now();
    out.stop = await first.stop(recipe.stopSignal ?? 'SIGTERM');
    second = new Run(ctx, recipe, { n: 4, label: 'restart-load-new', sock: first.sock }).start();
    out.ready_new = await second.waitReady();
    out.gap_ms = out.ready_new.answer_ms === null ? null : now() - t0 - (second.elapsed() - out.ready_new.answer_ms);
    await sleep(1500);
    wrk.stop();
    out.wrk = await wrk.done;
    await sleep(200);
    out.requests = classifyAccessLog(nginx, out.t_signal_epoch_ms);
    const q = out.requests;
    log(
      `${recipe.name} restart under load: stop → new pool answers ${ms(out.gap_ms)}; ${q.total} requests, failed ${q.failed} (nginx; sent before the signal ${q.before_failed + q.inflight_failed}, after ${q.after_failed}), wrk non-2xx ${out.wrk.non2xx} + socket errors ${out.wrk.socket_errors}`,
    );
  } catch (error) {
    out.error = String(error.message ?? error);
    log(`${recipe.name} restart under load: ${out.error}`);
  } finally {
    if (nginx) await stopNginx(nginx);
  }
  if (first.rootAlive) out.stop ??= await first.stop();
  if (second) out.stop_new = await second.stop();
  out.output_tail = (second ?? first).outputTail();
  return out;
}

// ----------------------------------------------------------- pool-sizing
const SLEEP_PHP = join(REPO, 'test', 'fixtures', 'php', 'sleep.php');
const BURST = 8;
const busyRequest = (sock, busyMs) => fcgiRequest(sock, phpParams(SLEEP_PHP, `ms=${busyMs}`), 30_000);
/** Worker processes (a php-fpm master without children looks like one: the spawner itself never counts). */
const poolWorkers = (run) => run.poll().workers.filter((w) => w.pid !== run.pid);

function percentile(values, q) {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? null : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
}

/** Until the pool is back at its idle size (its minimum, or N for a static pool); false after timeoutMs. */
async function settle(run, idleWorkers, timeoutMs = 30_000) {
  const t0 = now();
  while (now() - t0 < timeoutMs) {
    if (poolWorkers(run).length <= idleWorkers) return now() - t0;
    await sleep(50);
  }
  return null;
}

/**
 * Issue 11's pool that sizes itself, N=4 at most. Per round: a burst of 8 concurrent 300 ms requests, the
 * pool back at its idle size (+3 s), the whole pool's memory (supervisor + workers, RSS sum and PSS), then
 * another burst of 8 (10 ms each) and its p50/p99 latency (this is the burst that arrives after idle).
 * Then, for a pool with a minimum: the first queued connection → a new worker answering it (minimum 0:
 * the first request to an empty pool; minimum 1: its one worker is kept busy for 2 s).
 */
export async function testPoolSizing(ctx, recipe, rounds) {
  const n = 4;
  const idleWorkers = recipe.pool ? recipe.pool.min : n;
  const run = new Run(ctx, recipe, { n, label: 'pool' }).start();
  const out = { n, idle_workers_target: idleWorkers, ready: await run.waitReady({ timeoutMs: 30_000 }), rounds: [], queued: [] };
  if (out.ready.answer_ms === null) {
    out.error = `never served: ${out.ready.gave_up}`;
    out.stop = await run.stop();
    return out;
  }
  try {
    for (let i = 0; i < rounds; i++) {
      const rec = {};
      const warm = await Promise.all(Array.from({ length: BURST }, () => busyRequest(run.sock, 300)));
      rec.burst_failed = warm.filter((r) => !r.ok).length;
      rec.settle_ms = await settle(run, idleWorkers);
      await sleep(3000);
      const s = run.sampleSupervisors();
      rec.workers = poolWorkers(run).length;
      rec.processes = s.supervisors.length + s.n_workers;
      rec.pool_rss_kb = s.sup_rss_kb + s.worker_rss_kb;
      rec.pool_pss_kb = s.sup_pss_kb + s.worker_pss_kb;
      rec.sup_rss_kb = s.sup_rss_kb;
      const burst = await Promise.all(Array.from({ length: BURST }, () => busyRequest(run.sock, 10)));
      rec.after_idle_failed = burst.filter((r) => !r.ok).length;
      const lat = burst.filter((r) => r.ok).map((r) => r.ms);
      rec.after_idle_p50_ms = percentile(lat, 0.5);
      rec.after_idle_p99_ms = percentile(lat, 0.99);
      out.rounds.push(rec);
      log(
        `${recipe.name} pool round ${i + 1}/${rounds}: back at ${rec.workers} workers after ${ms(rec.settle_ms)}, pool RSS ${fixed(rec.pool_rss_kb / 1024, 1)} MB (PSS ${fixed(rec.pool_pss_kb / 1024, 1)} MB), burst after idle p50 ${ms(rec.after_idle_p50_ms)} p99 ${ms(rec.after_idle_p99_ms)}`,
      );
    }
    if (recipe.pool) {
      for (let i = 0; i < rounds; i++) {
        await settle(run, idleWorkers);
        await sleep(500);
        let busy = null;
        if (idleWorkers > 0) {
          busy = busyRequest(run.sock, 2000);
          await sleep(100);
        }
        const r = await busyRequest(run.sock, 0);
        out.queued.push(r.ok ? r.ms : null);
        if (busy) await busy;
        log(`${recipe.name} queued → new worker answers ${ms(r.ok ? r.ms : null)}${r.ok ? '' : ` (${r.code})`}`);
      }
    }
  } catch (error) {
    out.error = String(error.message ?? error);
    log(`${recipe.name} pool-sizing: ${out.error}`);
  }
  out.stop = await run.stop();
  out.output_tail = run.outputTail();
  return out;
}
