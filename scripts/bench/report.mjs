// Results → one Markdown table (medians, min–max, spawn-fcgi-ts ÷ each peer, targets), the ratio
// chart (hand-written SVG) and bench/README.md.
import { fixed, formatSummary, summary, sum } from './util.mjs';

const MB = (kb) => (kb === null || kb === undefined ? null : kb / 1024);

function measuredRuns(test) {
  return (test?.runs ?? []).filter((r) => !r.warmup);
}

/** Values of the runs that became ready; if none did, why (so that a failure reads as one). */
function readyValues(test, f) {
  const runs = measuredRuns(test);
  const ok = runs.filter((r) => r.ready_ms !== null && r.ready_ms !== undefined);
  if (runs.length > 0 && ok.length === 0) return { text: `never ready: ${runs.at(-1).gave_up ?? '?'}` };
  return ok.map(f);
}

function failedCounts(entry) {
  if (!entry || entry.skipped) return null;
  if (!entry.requests) return entry.error ? { text: entry.error.slice(0, 120) } : null;
  const wrkFailed = (entry.wrk?.non2xx ?? 0) + (entry.wrk?.socket_errors ?? 0);
  return {
    failed: entry.requests.failed,
    total: entry.requests.total,
    wrk_failed: wrkFailed,
    statuses: entry.requests.statuses,
    slow: entry.requests.slower_than_1s,
    end_workers: entry.workers_after,
  };
}

/**
 * The measures, in table order. kind 'samples': values → median (min–max), ratio ts ÷ peer;
 * 'count': failed/total (target 0); 'text'.
 */
export function measures(p) {
  const big = p.nIdleBig;
  const win = p.crashSecs;
  const deaths = p.churnDeaths ?? 20_000;
  const FLOOR = 'node-floor';
  return [
    {
      key: 'ready4_answer',
      label: 'time to ready, N=4: exec → first FastCGI answer (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => readyValues(r.ready4, (x) => x.answer_ms),
      target: { peer: FLOOR, maxRatio: 1.25, text: '≤ 1.25× the Node floor' },
    },
    {
      key: 'ready4_all',
      label: 'time to ready, N=4: exec → all 4 workers (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => readyValues(r.ready4, (x) => x.workers_ms),
      target: { peer: 'multiwatch', maxRatio: 2, text: '≤ 2× multiwatch' },
    },
    {
      key: 'readyBig_answer',
      label: `time to ready, N=${p.nReadyBig}: exec → first FastCGI answer (ms)`,
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => readyValues(r.readyBig, (x) => x.answer_ms),
      target: { peer: 'multiwatch', maxRatio: 2, text: '≤ 2× multiwatch' },
    },
    {
      key: 'readyBig_all',
      label: `time to ready, N=${p.nReadyBig}: exec → all ${p.nReadyBig} workers (ms)`,
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => readyValues(r.readyBig, (x) => x.workers_ms),
      target: { peer: 'multiwatch', maxRatio: 2, text: '≤ 2× multiwatch' },
    },
    {
      key: 'idle_stop',
      label: 'idle SIGTERM → every process gone, N=4 (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => readyValues(r.ready4, (x) => x.idle_stop?.all_gone_ms),
    },
    {
      key: 'restart_count',
      label: 'restart: SIGKILL a worker → N workers again (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => restartValues(r.restart, 'count_ms'),
      target: { peer: 'multiwatch', maxRatio: 1.5, text: '≤ 1.5× multiwatch' },
    },
    {
      key: 'restart_req',
      label: 'restart: SIGKILL → N workers and a request answered (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => restartValues(r.restart, 'count_and_request_ms'),
      target: { peer: 'multiwatch', maxRatio: 1.5, text: '≤ 1.5× multiwatch' },
    },
    {
      key: 'rss4',
      label: 'supervisor RSS at idle, N=4 (MB)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => supervised(r.overhead4, (o) => MB(o.idle.sup_rss_kb)),
      target: { peer: FLOOR, plusMb: 6, text: '≤ the Node floor + 6 MB' },
    },
    {
      key: 'rssBig',
      label: `supervisor RSS at idle, N=${big} (MB)`,
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => supervised(r.overheadBig, (o) => MB(o.idle.sup_rss_kb)),
      target: { peer: FLOOR, plusMb: 20, text: big === 256 ? '≤ the Node floor + 20 MB' : '≤ the Node floor + 20 MB (set for N=256)' },
    },
    {
      key: 'churn_rss',
      label: `supervisor RSS after ${deaths.toLocaleString('en')} worker deaths (kill -9), N=4 (MB)`,
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => churnValue(r.churn, (c) => MB(c.after.sup_rss_kb)),
      extra: (r) => churnTail(r.churn),
      target: {
        peer: FLOOR,
        plusMb: 12,
        partial: deaths < 20_000,
        text: deaths >= 20_000 ? '≤ the Node floor + 12 MB' : `≤ the Node floor + 12 MB after 20,000 (only ${deaths.toLocaleString('en')} here)`,
      },
    },
    {
      key: 'churn_cpu',
      label: 'supervisor CPU per worker death under churn (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 2,
      get: (r) => churnValue(r.churn, (c) => c.cpu_ms_per_death),
    },
    {
      key: 'pss4',
      label: 'supervisor PSS at idle, N=4 (MB)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => supervised(r.overhead4, (o) => MB(o.idle.sup_pss_kb)),
    },
    {
      key: 'cpuStart4',
      label: 'supervisor CPU from exec to idle, N=4 (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => supervised(r.overhead4, (o) => o.idle.sup_cpu_ms),
    },
    {
      key: 'cpuIdle4',
      label: `supervisor CPU at idle, N=4, first minute (ms per minute; a ${p.idleSecs} s window from ${fixed((p.overheadSettleMs ?? 2000) / 1000, 0)} s after ready)`,
      kind: 'samples',
      better: 'lower',
      digits: 3,
      get: (r) => supervised(r.overhead4, (o) => o.cpu_ms_per_min),
      target: { absMax: 1, text: '≤ 1 ms/min' },
    },
    {
      key: 'cpuIdle4_steady',
      label: 'supervisor CPU at idle, N=4, second half of the window only (ms per minute)',
      kind: 'samples',
      better: 'lower',
      digits: 3,
      get: (r) => supervised(r.overhead4, (o) => o.cpu_ms_per_min_second_half),
    },
    {
      key: 'cpuIdleBig',
      label: `supervisor CPU at idle, N=${big} (ms per minute; ${p.idleSecsBig ?? p.idleSecs} s window)`,
      kind: 'samples',
      better: 'lower',
      digits: 3,
      get: (r) => supervised(r.overheadBig, (o) => o.cpu_ms_per_min),
      target: { absMax: 1, text: '≤ 1 ms/min' },
    },
    {
      key: 'tp_ok',
      label: 'throughput, nginx → ok.php, N=4 (req/s)',
      kind: 'samples',
      better: 'higher',
      digits: 0,
      get: (r) => throughputValues(r, 'ok.php', 'rps'),
      target: { peer: 'spawn-fcgi', minRatio: 0.98, text: '≥ 0.98× spawn-fcgi' },
    },
    {
      key: 'tp_ok_p99',
      label: 'latency p99, ok.php (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 2,
      get: (r) => (r.throughput ?? []).map((t) => t.scripts?.['ok.php']?.p99_ms),
    },
    {
      key: 'tp_loop',
      label: 'throughput, nginx → loop.php (CPU-heavier), N=4 (req/s)',
      kind: 'samples',
      better: 'higher',
      digits: 0,
      get: (r) => throughputValues(r, 'loop.php', 'rps'),
      target: { peer: 'spawn-fcgi', minRatio: 0.98, text: '≥ 0.98× spawn-fcgi' },
    },
    {
      key: 'tp_loop_p99',
      label: 'latency p99, loop.php (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 2,
      get: (r) => (r.throughput ?? []).map((t) => t.scripts?.['loop.php']?.p99_ms),
    },
    {
      key: 'tp_errors',
      label: 'throughput runs: non-2xx + socket errors (wrk)',
      kind: 'count',
      get: (r) =>
        (r.throughput ?? []).length === 0 || (r.throughput ?? []).every((t) => t.error)
          ? null
          : {
              failed: sum((r.throughput ?? []).flatMap((t) => Object.values(t.scripts ?? {}).map((s) => (s.non2xx ?? 0) + (s.socket_errors ?? 0)))),
              total: sum((r.throughput ?? []).flatMap((t) => Object.values(t.scripts ?? {}).map((s) => s.requests))),
            },
    },
    {
      key: 'stop_accepted',
      label: 'graceful stop (SIGTERM; php-fpm: SIGQUIT) under load: requests a worker had accepted that failed',
      kind: 'count',
      get: (r) => stopCount(r.stop, 'accepted_failed', 'accepted'),
      target: { zero: true, text: '0' },
    },
    {
      key: 'stop_inflight',
      label: 'graceful stop: requests in flight at the signal that failed (backlog included)',
      kind: 'count',
      get: (r) => stopCount(r.stop, 'inflight_failed', 'inflight'),
    },
    {
      key: 'stop_gone',
      label: 'graceful stop under load: the signal → every process gone (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => (r.stop?.reps ?? []).filter((x) => x.ready?.ready_ms != null).map((x) => x.stop?.all_gone_ms),
    },
    {
      key: 'stop_sent_before',
      label: 'graceful stop under load (unix socket): failed among the requests sent before the signal',
      kind: 'count',
      get: (r) => stopSentBefore(r.stop),
      target: { zero: true, text: '0' },
    },
    {
      key: 'stop_tcp_sent_before',
      label: 'graceful stop under load (TCP 127.0.0.1): failed among the requests sent before the signal',
      kind: 'count',
      get: (r) => stopSentBefore(r.stop_tcp),
    },
    {
      key: 'restart_load_before',
      label: 'restart under load: failed among the requests sent before the stop signal',
      kind: 'count',
      get: (r) => {
        const q = r.restart_load?.requests;
        if (!q || q.before_failed === undefined) return failedCounts(r.restart_load);
        return { failed: q.before_failed + q.inflight_failed, total: q.total - q.after_ok - q.after_failed };
      },
    },
    {
      key: 'restart_load_failed',
      label: 'restart under load (SIGTERM, php-fpm SIGQUIT, then a new start on the same socket): failed requests, all (the gap included)',
      kind: 'count',
      get: (r) => failedCounts(r.restart_load),
    },
    {
      key: 'restart_load_gap',
      label: 'restart under load: the stop signal → the new pool answers (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      noRatio: true,
      get: (r) => (r.restart_load ? [r.restart_load.gap_ms] : null),
    },
    {
      key: 'pool_rss',
      label: 'whole pool (supervisor + workers) at idle after a burst of 8: RSS sum (MB) [workers left]',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      noRatio: true,
      get: (r) => poolRounds(r.pool, (x) => MB(x.pool_rss_kb)),
      extra: (r) => ` [${(r.pool?.rounds ?? []).map((x) => x.workers).join(',')}]`,
    },
    {
      key: 'pool_pss',
      label: 'whole pool at idle after a burst: PSS sum (MB)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      noRatio: true,
      get: (r) => poolRounds(r.pool, (x) => MB(x.pool_pss_kb)),
    },
    {
      key: 'pool_burst_p50',
      label: 'a burst of 8 (10 ms requests) that arrives after idle: p50 latency (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      noRatio: true,
      get: (r) => poolRounds(r.pool, (x) => x.after_idle_p50_ms),
    },
    {
      key: 'pool_burst_p99',
      label: 'the same burst after idle: p99 latency (ms; of 8 requests, so the slowest)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      noRatio: true,
      get: (r) => poolRounds(r.pool, (x) => x.after_idle_p99_ms),
    },
    {
      key: 'pool_queued',
      label: 'first queued connection → a new worker answers it (ms; min 0: empty pool, min 1: its worker busy)',
      kind: 'samples',
      better: 'lower',
      digits: 1,
      noRatio: true,
      get: (r) => (r.pool?.queued?.length ? r.pool.queued : r.pool ? { text: 'n/a (static pool)' } : null),
    },
    {
      key: 'reload_failed',
      label: 'reload under load (ts: SIGHUP rolling restart; peers: their reload): failed requests',
      kind: 'count',
      get: (r) => (r.reload?.skipped ? { na: r.reload.skipped } : failedCounts(r.reload)),
      target: { zero: true, text: '0' },
    },
    {
      key: 'reload_ms',
      label: 'reload: signal → every worker replaced (ms)',
      kind: 'samples',
      better: 'lower',
      digits: 0,
      get: (r) => (r.reload?.reloads ?? []).map((x) => x.done_ms),
    },
    {
      key: 'maxreq_failed',
      label: 'PHP_FCGI_MAX_REQUESTS=500 recycling under load: failed requests',
      kind: 'count',
      get: (r) => failedCounts(r.maxreq),
      target: { zero: true, text: '0' },
    },
    {
      key: 'maxreq_rps',
      label: 'PHP_FCGI_MAX_REQUESTS=500: answered requests (2xx) per second',
      kind: 'samples',
      better: 'higher',
      digits: 0,
      get: (r) => (r.maxreq?.wrk && r.maxreq.requests ? [r.maxreq.wrk.rps * (r.maxreq.requests.ok / Math.max(1, r.maxreq.requests.total))] : []),
    },
    {
      key: 'crash_start',
      label: `crash loop from the first spawn (${win} s): tries, what the spawner does`,
      kind: 'text',
      get: (r) => crashText(r.crash_start),
    },
    {
      key: 'crash_tries',
      label: `crash loop once running (${win} s window): tries per slot`,
      kind: 'samples',
      better: 'lower',
      digits: 1,
      noRatio: true,
      get: (r) => crashValue(r.crash_running, 'attempts_per_slot', 'nothing restarts a worker: 0 tries'),
      extra: (r) => crashTail(r.crash_running),
      target: { absMax: 12, partial: win < 20, text: win === 20 ? '≤ 12 in 20 s' : `≤ 12 in 20 s (only ${win} s measured)` },
    },
    {
      key: 'crash_cpu',
      label: `crash loop once running (${win} s window): supervisor CPU (ms)`,
      kind: 'samples',
      better: 'lower',
      digits: 1,
      get: (r) => crashValue(r.crash_running, 'supervisor_cpu_ms', null),
      target: { absMax: 50, strict: true, partial: win < 20, text: win === 20 ? '< 50 ms in 20 s' : `< 50 ms in 20 s (only ${win} s measured)` },
    },
  ];
}

function churnValue(c, f) {
  if (!c) return [];
  if (c.error) return { text: c.error };
  if (!c.after) return { text: 'no result' };
  if (!c.before?.supervisors?.length) return { none: true };
  return [f(c)];
}

function churnTail(c) {
  if (!c?.after || !c.before) return '';
  const from = ` from ${fixed(MB(c.before.sup_rss_kb), 1)}`;
  return c.stuck ? `${from} [only ${c.deaths} deaths: ${c.stuck}]` : from;
}

function throughputValues(r, script, key) {
  const runs = r.throughput ?? [];
  const values = runs.map((t) => t.scripts?.[script]?.[key]).filter((v) => v != null);
  if (runs.length > 0 && values.length === 0) return { text: runs.at(-1).error ?? 'no result' };
  return values;
}

function restartValues(test, key) {
  if (!test) return [];
  const values = test.kills.map((k) => k[key]);
  if (test.never_recovered) {
    const last = test.kills.at(-1) ?? {};
    const note = `never back to ${test.n} within ${fixed((test.timeout_ms ?? 10_000) / 1000, 0)} s (${last.count_after_timeout ?? '?'} workers; ${values.filter((v) => v != null).length} of ${test.kills.length} kills recovered)`;
    return { text: note };
  }
  if (test.error) return { text: test.error };
  return values;
}

function supervised(o, f) {
  if (!o) return [];
  if (o.ready?.answer_ms == null) return { text: `never served: ${o.ready?.gave_up ?? '?'}` };
  if (!o.has_supervisor) return { none: true };
  return [f(o)];
}

/** Requests that started before the stop signal (done before it, or in flight at it) and failed. */
function stopSentBefore(stop) {
  const reps = (stop?.reps ?? []).filter((x) => x.requests);
  if (reps.length === 0) return stop?.reps?.length ? { text: (stop.reps.at(-1).error ?? 'no result').slice(0, 120) } : null;
  const q = reps.map((x) => x.requests);
  return {
    failed: sum(q.map((x) => x.before_failed + x.inflight_failed)),
    total: sum(q.map((x) => x.total - x.after_ok - x.after_failed)),
  };
}

function poolRounds(pool, f) {
  if (!pool) return null;
  if (pool.rounds.length === 0) return { text: (pool.error ?? 'no result').slice(0, 120) };
  return pool.rounds.map(f);
}

function stopCount(stop, failedKey, totalKey) {
  const reps = (stop?.reps ?? []).filter((x) => x.requests);
  if (reps.length === 0) return stop?.reps?.length ? { text: (stop.reps.at(-1).error ?? 'no result').slice(0, 120) } : null;
  return { failed: sum(reps.map((x) => x.requests[failedKey])), total: sum(reps.map((x) => x.requests[totalKey])) };
}

function crashText(c) {
  if (!c) return null;
  if (c.skipped) return 'n/a (no worker command)';
  const outcome =
    c.spawner_exited_at_ms === null
      ? 'keeps running'
      : `exits after ${fixed(c.spawner_exited_at_ms / 1000, 2)} s, ${c.spawner_exit?.signal ? `signal ${c.spawner_exit.signal}` : `rc=${c.spawner_exit?.code}`}`;
  return `${c.attempts} tries; ${outcome}`;
}

function crashValue(c, key, noSupervisorText) {
  if (!c || c.skipped) return [];
  if (c.error) return { text: c.error };
  if (c.no_supervisor) return noSupervisorText === null ? { none: true } : { text: noSupervisorText };
  return [c[key]];
}

function crashTail(c) {
  if (!c || c.skipped) return '';
  if (c.error) return c.error;
  const outcome =
    c.spawner_exited_at_ms === null
      ? ''
      : `, exits after ${fixed(c.spawner_exited_at_ms / 1000, 1)} s (${c.spawner_exit?.signal ? c.spawner_exit.signal : `rc=${c.spawner_exit?.code}`})`;
  return ` [${c.attempts} in all${outcome}]`;
}

const TS = 'spawn-fcgi-ts';

/** Evaluate every measure: per recipe summary, ratios ts ÷ peer, target status. */
export function evaluate(results, recipeNames, p) {
  const rows = [];
  for (const m of measures(p)) {
    const cells = {};
    let any = false;
    for (const name of recipeNames) {
      const r = results.recipes[name];
      if (!r) continue;
      const v = m.get(r);
      if (v === null || v === undefined) continue;
      if (m.kind === 'samples') {
        if (v.none || v.text) {
          cells[name] = v.none ? { none: true } : { text: v.text };
          any = true;
          continue;
        }
        const s = summary(v);
        if (s === null) continue;
        cells[name] = { summary: s, extra: m.extra ? m.extra(r) : '' };
      } else if (m.kind === 'count') {
        cells[name] = v;
      } else {
        cells[name] = { text: v };
      }
      any = true;
    }
    if (!any) continue;
    const row = { key: m.key, label: m.label, kind: m.kind, better: m.better ?? null, digits: m.digits ?? 1, cells, ratios: {}, target: m.target ?? null };
    const ts = cells[TS];
    if (m.kind === 'samples' && ts?.summary && !m.noRatio) {
      for (const [name, c] of Object.entries(cells)) {
        // ratios against the peers only (not spawn-fcgi-ts's own pool variants)
        if (name.startsWith(TS) || !c.summary || !(c.summary.median > 0)) continue;
        row.ratios[name] = ts.summary.median / c.summary.median;
      }
    }
    row.status = targetStatus(row, ts);
    rows.push(row);
  }
  return rows;
}

function targetStatus(row, ts) {
  const t = row.target;
  if (!t) return null;
  if (!ts) return { met: null, text: 'spawn-fcgi-ts not measured' };
  if (ts.text !== undefined && !ts.na) return { met: false, text: 'NOT met' };
  if (t.zero) {
    if (ts.na) return { met: null, text: 'n/a' };
    const met = ts.failed === 0 && (ts.wrk_failed ?? 0) === 0;
    return { met, text: met ? 'met' : `NOT met (${ts.failed} failed)` };
  }
  if (!ts.summary) return { met: null, text: 'n/a' };
  const v = ts.summary.median;
  if (t.plusMb !== undefined) {
    const floor = row.cells[t.peer]?.summary?.median;
    if (floor === undefined) return { met: null, text: `n/a (${t.peer} not measured)` };
    const over = v - floor;
    const met = v <= floor + t.plusMb;
    const by = `${over >= 0 ? '+' : '−'}${fixed(Math.abs(over), 1)} MB`;
    if (t.partial) return met ? { met: null, text: `within it so far (${by})` } : { met: false, text: `NOT met (${by} already)` };
    return { met, text: `${met ? 'met' : 'NOT met'} (${by})` };
  }
  if (t.absMax !== undefined) {
    const met = t.strict ? v < t.absMax : v <= t.absMax;
    // a shorter window can prove a miss, not a success
    if (t.partial)
      return met ? { met: null, text: 'within it so far (window too short to tell)' } : { met: false, text: 'NOT met (already in the short window)' };
    return { met, text: met ? 'met' : 'NOT met' };
  }
  const ratio = row.ratios[t.peer];
  if (ratio === undefined) return { met: null, text: `n/a (${t.peer} not measured)` };
  const met = t.maxRatio !== undefined ? ratio <= t.maxRatio : ratio >= t.minRatio;
  return { met, text: `${met ? 'met' : 'NOT met'} (×${fixed(ratio, 2)})` };
}

function cellText(row, name) {
  const c = row.cells[name];
  if (!c) return '–';
  if (c.none) return 'no supervisor process';
  if (c.text !== undefined) return c.text;
  if (row.kind === 'count') {
    if (c.na) return `n/a`;
    let s = `${c.failed}/${c.total}`;
    const notes = [];
    if (c.wrk_failed !== undefined && c.wrk_failed !== c.failed) notes.push(`wrk: ${c.wrk_failed}`);
    if (c.slow) notes.push(`${c.slow} took ≥ 1 s`);
    if (c.end_workers !== undefined && c.end_workers !== null) notes.push(`${c.end_workers} workers at the end`);
    if (notes.length > 0) s += ` (${notes.join('; ')})`;
    return s;
  }
  let s = formatSummary(c.summary, row.digits) + (c.extra ?? '');
  const ratio = row.ratios[name];
  if (ratio !== undefined) s += ` · ×${fixed(ratio, ratio >= 100 ? 0 : 2)}`;
  return s;
}

export function markdownTable(rows, recipeNames, titles) {
  const head = ['measure', ...recipeNames.map((n) => titles[n] ?? n), 'target for spawn-fcgi-ts', 'status'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const row of rows) {
    const arrow = row.better === 'lower' ? ' ↓' : row.better === 'higher' ? ' ↑' : '';
    const cells = [row.label + arrow, ...recipeNames.map((n) => cellText(row, n)), row.target?.text ?? '', row.status?.text ?? ''];
    lines.push(`| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`);
  }
  return lines.join('\n');
}

// ----------------------------------------------------------------- chart
/** ts ÷ best peer for each numeric measure, with the target in the same unit. */
export function chartData(rows) {
  const out = [];
  for (const row of rows) {
    if (row.kind !== 'samples' || !row.better) continue;
    const ts = row.cells[TS]?.summary;
    if (!ts) continue;
    const peers = Object.entries(row.cells).filter(([n, c]) => n !== TS && c.summary && c.summary.median > 0);
    if (peers.length === 0 || !(ts.median > 0)) continue;
    const [bestName, best] = peers.reduce((a, b) =>
      (row.better === 'lower' ? b[1].summary.median < a[1].summary.median : b[1].summary.median > a[1].summary.median) ? b : a,
    );
    const bestValue = best.summary.median;
    let target = null;
    const t = row.target;
    if (t?.absMax !== undefined) target = t.absMax / bestValue;
    else if (t?.peer && row.cells[t.peer]?.summary) target = ((t.maxRatio ?? t.minRatio) * row.cells[t.peer].summary.median) / bestValue;
    out.push({ label: row.label, better: row.better, ratio: ts.median / bestValue, best: bestName, target, met: row.status?.met ?? null });
  }
  return out;
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function svgChart(data, { title, subtitle }) {
  const rowH = 30;
  const top = 100;
  const longest = Math.max(0, ...data.map((d) => d.label.length + 2));
  const left = Math.max(330, Math.ceil(24 + longest * 6.6));
  const plotW = 470;
  const width = left + plotW + 110;
  const height = top + data.length * rowH + 60;
  const lo = Math.log10(0.05);
  const hi = Math.log10(200);
  const x = (v) => left + ((Math.log10(Math.min(200, Math.max(0.05, v))) - lo) / (hi - lo)) * plotW;
  const parts = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="16" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<text x="16" y="44" fill="#444">${esc(subtitle)}</text>`);
  parts.push(
    `<text x="16" y="62" fill="#444">bar: spawn-fcgi-ts ÷ the best peer of the same run (log scale); black line: 1.0 (as good as the best peer);</text>`,
  );
  parts.push(
    `<text x="16" y="78" fill="#444">orange mark: the target in the same unit; green = target met, red = not met, grey = no target or not decided; ↓ lower is better, ↑ higher is better</text>`,
  );
  for (const tick of [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200]) {
    const tx = x(tick);
    parts.push(
      `<line x1="${tx.toFixed(1)}" y1="${top - 6}" x2="${tx.toFixed(1)}" y2="${top + data.length * rowH}" stroke="${tick === 1 ? '#000' : '#e3e3e3'}" stroke-width="${tick === 1 ? 1.5 : 1}"/>`,
    );
    parts.push(`<text x="${tx.toFixed(1)}" y="${top + data.length * rowH + 16}" text-anchor="middle" fill="#444">${tick}</text>`);
  }
  data.forEach((d, i) => {
    const y = top + i * rowH;
    const color = d.met === true ? '#2e7d32' : d.met === false ? '#c62828' : '#9e9e9e';
    const x1 = x(1);
    const x2 = x(d.ratio);
    const arrow = d.better === 'lower' ? '↓' : '↑';
    parts.push(`<text x="${left - 8}" y="${y + 13}" text-anchor="end">${esc(`${d.label} ${arrow}`).slice(0, 200)}</text>`);
    parts.push(`<text x="${left - 8}" y="${y + 25}" text-anchor="end" fill="#777" font-size="10">vs ${esc(d.best)}</text>`);
    parts.push(
      `<rect x="${Math.min(x1, x2).toFixed(1)}" y="${y + 5}" width="${Math.max(1, Math.abs(x2 - x1)).toFixed(1)}" height="${rowH - 12}" fill="${color}"/>`,
    );
    const clipped = d.ratio > 200 || d.ratio < 0.05 ? ' (off scale)' : '';
    parts.push(
      `<text x="${(Math.max(x1, x2) + 4).toFixed(1)}" y="${y + 19}" fill="#222">×${d.ratio >= 100 ? d.ratio.toFixed(0) : d.ratio.toFixed(2)}${clipped}</text>`,
    );
    if (d.target !== null && Number.isFinite(d.target) && d.target > 0) {
      const tx = x(d.target);
      parts.push(`<line x1="${tx.toFixed(1)}" y1="${y + 2}" x2="${tx.toFixed(1)}" y2="${y + rowH - 4}" stroke="#ef6c00" stroke-width="3"/>`);
    }
  });
  if (data.length === 0) parts.push(`<text x="${left}" y="${top + 20}" fill="#444">no measure has both spawn-fcgi-ts and a peer in this run</text>`);
  parts.push(`<text x="${left + plotW / 2}" y="${height - 14}" text-anchor="middle" fill="#444">spawn-fcgi-ts ÷ best peer (same run)</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

// ---------------------------------------------------------------- README
/**
 * The hand-kept sections of bench/README.md ("## Quick run": a dated `--quick` table; "## Issue 11": the
 * pool-sizing, stop and restart rows), or '' : a full run rewrites the file and carries them over.
 */
export function quickSection(text) {
  let out = '';
  for (const heading of ['\n## Quick run', '\n## Issue 11']) {
    const start = text.indexOf(heading);
    if (start < 0) continue;
    const end = text.indexOf('\n## ', start + 1);
    out += `${text.slice(start + 1, end < 0 ? text.length : end).trimEnd()}\n\n`;
  }
  return out;
}

export function readme({ table, meta, notes, quick = '' }) {
  return `# Benchmark: spawn-fcgi-ts beside spawn-fcgi, multiwatch, supervisord and php-fpm

\`npm run bench\` (\`node scripts/bench.mjs\`) starts each spawner with the same workload — N
single-process \`php-cgi\` workers (php-fpm: \`pm=static\`) on a unix socket under \`/tmp\` — and measures
start-up, restart after a SIGKILL, the supervisor's own memory and CPU, throughput through nginx,
failed requests during a graceful stop, a reload and \`PHP_FCGI_MAX_REQUESTS\` recycling, and the
behaviour with a crash-looping worker, and the same for **the Node floor** (a bare \`node\` that only
spawns the multiwatch recipe), so that every figure reads against what Node itself costs. Every figure of spawn-fcgi-ts is compared with the peers
**from the same run** (\`×r\` = spawn-fcgi-ts ÷ that peer).

This file, [\`results.json\`](results.json) (every sample) and [\`ratios.svg\`](ratios.svg) are written by
the full run (\`npm run bench\`, about 20 minutes on 2 cores).

![spawn-fcgi-ts ÷ best peer](ratios.svg)

## Results

${meta}

${table}

Cells: median (min–max) over the repetitions; \`·×r\` after a peer's figure is spawn-fcgi-ts's median ÷
that peer's median. Failure cells are *failed/total* requests from nginx's access log, with wrk's count
of non-2xx responses and socket errors in parentheses when it differs. A 499 (wrk closed the connection
when its run ended) counts as failed only if the request had waited 1 s or more (a pool that stopped
answering). ↓ lower is better, ↑ higher is better. Crash-loop tries are per slot (total / N); the
supervisor CPU there is the spawner process's own (for every recipe here the spawner process is the
supervisor).

${notes}

${quick}## Recipes

| recipe | command |
|---|---|
| spawn-fcgi-ts | \`PHP_FCGI_CHILDREN=0 node dist/cli.cjs -n -s SOCK -F N -- /usr/bin/php-cgi\` (default supervision options: backoff from 100 ms, doubling, capped at 30 s) |
| spawn-fcgi | \`PHP_FCGI_CHILDREN=0 spawn-fcgi -s SOCK -F N -- /usr/bin/php-cgi\` (classic daemonizing form: forks N workers and exits; nothing supervises them) |
| multiwatch | \`PHP_FCGI_CHILDREN=0 spawn-fcgi -n -s SOCK -- multiwatch -f N -- /usr/bin/php-cgi\` |
| node-floor | \`PHP_FCGI_CHILDREN=0 node scripts/bench/node-floor.cjs spawn-fcgi -n -s SOCK -- multiwatch -f N -- /usr/bin/php-cgi\`: **the Node floor**, what any Node.js supervisor pays — a bare \`node\` whose only work is to spawn the multiwatch recipe's command and forward stop signals (its supervisors: node + multiwatch) |
| supervisord | \`supervisord -n -c CONF\` with \`[fcgi-program:php] socket=unix://SOCK numprocs=N autorestart=true\` (other settings at their defaults) |
| php-fpm | \`php-fpm8.2 -F -R -y CONF\` with \`pm=static\`, \`pm.max_children=N\`, \`listen=SOCK\` |
| spawn-fcgi-ts-dynamic | \`node dist/cli.cjs -n -s SOCK --min-procs 1 -F N --idle-timeout 2s -- /usr/bin/php-cgi\` (issue 11: a pool that sizes itself between 1 and N) |
| spawn-fcgi-ts-ondemand | \`node dist/cli.cjs -n -s SOCK --min-procs 0 -F N --idle-timeout 2s -- /usr/bin/php-cgi\` |
| php-fpm-dynamic | php-fpm with \`pm=dynamic\`, \`pm.max_children=N\`, \`pm.start_servers=1\`, \`pm.min_spare_servers=1\`, \`pm.max_spare_servers=1\` (an idle pool goes back to one child, as \`--min-procs 1\` does) |
| php-fpm-ondemand | php-fpm with \`pm=ondemand\`, \`pm.max_children=N\`, \`pm.process_idle_timeout=2s\` |

Every php-cgi recipe runs with \`PHP_FCGI_MAX_REQUESTS=0\` (php-fpm \`pm.max_requests=0\`) except in the
max-requests test, which sets 500 for all of them.

## Method

* **Processes.** The spawner is started directly (no shell) in its own session; the clock starts just
  before \`spawn()\`. Its descendants are followed through \`/proc\` (new pids whose parent is ours, every
  2 ms; a full scan at sample points; for the daemonizing spawn-fcgi also the processes holding the
  listening socket). A worker is a process whose \`comm\` matches \`^php-cgi\` (php-fpm: \`^php-fpm\`) and
  has no such child; every other process of the tree is a supervisor. Processes are identified by pid
  *and* start time (pid_max is 32768 here), and a zombie counts as gone.
* **Time to ready** (N=4: 1 warm-up start, dropped, then 10 starts in the full run / 3 quick; N=64:
  5 / 3 starts). A raw FastCGI client (in the bench, no \`cgi-fcgi\` fork) requests \`ready.php\` and
  retries every 2 ms while the socket is missing or refuses; \`/proc\` is polled every 2 ms for the worker
  count. Then 0.3 s + 0–1 s of jitter (quick 0–0.3 s), SIGTERM, and the time until every process is
  gone. The starts are interleaved: one start of each recipe per round, the order rotating.
* **Restart** (N=4; 5 kills full / 3 quick): SIGKILL the oldest worker, time until N workers exist again
  with one new pid, then until a new FastCGI request is answered; 3 s (quick 1 s) + jitter between kills
  (multiwatch counts a death within 10 s of a spawn as a failed spawn). 10 s (quick 5 s) without
  recovery = never.
* **Supervisor cost**: the recipes start side by side (each on its own socket) at N=4 and at N=256,
  settle 2 s after all are ready, then idle 60 s (N=256 quick: 10 s). RSS from \`/proc/PID/status\`,
  PSS from \`smaps_rollup\`, CPU from \`/proc/PID/task/*/schedstat\` (ns, all threads), of the supervisor
  processes only. How many recipes start together at N=256 depends on the free memory.
* **Churn**: N=4, the recipes side by side, every worker SIGKILLed as soon as it runs php-cgi, until
  20,000 have died (quick 1,000); each recipe with its churn settings, so that every death is restarted
  at once (spawn-fcgi-ts \`--stable-after 1ms\`, multiwatch \`-t 1\`). The supervisors' RSS before and after
  (the lowest of ten samples over a second) and their CPU per death. The 10,000-death plateau of
  spawn-fcgi-ts alone, with a lighter worker, is \`npm run soak\`.
* **Throughput**: nginx (\`worker_processes 1\`, access log off, \`fastcgi_pass unix:SOCK\`) on a free
  127.0.0.1 port; per script a 2 s (quick 1 s) wrk warm-up, then \`wrk -t2 -c32 -d10s --latency\`
  (quick: \`-d3s\`). \`ok.php\` echoes "ok"; \`loop.php\` runs a 10 000-iteration loop. The full run does 3
  rounds with the recipe order rotated.
* **Graceful stop under load**: \`wrk -t2 -c16\` on \`slow.php\` (100 ms per request), SIGTERM (php-fpm:
  SIGQUIT, its graceful stop; SIGTERM is its immediate one) to the spawner after 2 s + jitter, wrk ended 0.5 s after every process is gone. nginx logs
  \`$msec $request_time $status $request_id\`; \`slow.php\` logs the request id when it starts, so a failed
  request is known to have been **accepted by a worker** (target: none of those fails) or to have
  waited in the listen backlog (no spawner here drains the backlog: those fail when the last worker
  closes the socket). For the daemonizing spawn-fcgi the signal goes to the workers (nothing else is
  left). The same again with the pool on TCP (\`127.0.0.1:PORT\`, nginx \`fastcgi_pass 127.0.0.1:PORT\`).
  "Sent before the signal" counts every request that nginx began before the signal (done before it or in
  flight at it).
* **Restart under load** (\`restart-load\`): \`wrk -t2 -c16\` on \`ok.php\`; after 1.5 s the stop signal, and once
  every process is gone a new start of the same recipe on the same socket; wrk runs on 1.5 s after the new
  pool answers. Failed requests: all (the gap without a listener included: nginx answers 502), and those
  sent before the signal; and the time from the signal to the new pool's first answer.
* **Pool sizing** (\`pool-sizing\`, issue 11; N=4 at most; 3 rounds, quick 2): a raw FastCGI client sends a
  burst of 8 concurrent 300 ms requests (\`test/fixtures/php/sleep.php\`), waits until the pool is back at its
  idle size (its minimum; N for a static pool) and 3 s more, then samples the whole pool (supervisor +
  workers; spawn-fcgi-ts's queue watcher included): RSS sum and PSS sum. Then a burst of 8 concurrent 10 ms
  requests, the one that arrives after idle: p50 and p99 of its latencies (of 8, p99 is the slowest). Last,
  for the pools that size themselves, the first queued connection → a new worker answering it: with a
  minimum of 0, the first request to the empty pool; with a minimum of 1, a request while the one worker is
  busy for 2 s.
* **Reload under load**: \`wrk -t2 -c16\` on \`ok.php\`; 3 reloads (quick 2), each when the previous one
  has replaced every worker, + 1 s. spawn-fcgi-ts: SIGHUP (rolling restart); php-fpm: SIGUSR2;
  supervisord: SIGHUP (restarts every process); spawn-fcgi and multiwatch have none (multiwatch 1.0
  takes SIGHUP as a shutdown).
* **Max-requests recycling**: \`PHP_FCGI_MAX_REQUESTS=500\` (php-fpm \`pm.max_requests=500\`), then
  \`wrk -t2 -c32 -d10s\` (quick 3 s) on \`ok.php\` with no warm-up; every failed request counts.
* **Crash loop** (20 s; N=4; the recipes run side by side): (a) the worker command is a
  script that logs one line and exits 1, from the first spawn; (b) the pool starts with php-cgi, then a
  flag file makes the same wrapper log and exit 1, and every worker is SIGKILLed: tries and the
  supervisor's CPU during the window (start-up excluded). php-fpm has no worker command: n/a.
* **What is measured of spawn-fcgi-ts**: \`dist/cli.cjs\` and \`build/\` as they are, copied under the
  scratch dir at the start (a rebuild during the run changes nothing); the run warns when a source
  file is newer than \`dist/cli.cjs\`. It does not build, except when \`dist/cli.cjs\` or the helper is
  missing (then \`npm run build\`).
* **Cleanup**: everything is stopped by pid (start time checked), on exit and on SIGINT/SIGTERM/SIGHUP;
  the temp dir under \`/tmp\` is removed. Only 127.0.0.1 and \`/tmp\` are used.

## Reading the numbers

The machine is a shared 2-core VM: wrk, nginx and 4 workers share 2 cores, so req/s moves by ±5–10 %
between runs and differences below about 10 % are noise. Start-up figures spread ±30 %. Compare only
figures from the same run. Node's own start-up (~60 ms) and an idle Node process (~40 MB RSS) set a
floor for spawn-fcgi-ts that the C tools do not have: the node-floor recipe measures it in the same run,
and the targets of issue 10 are read against it (time to first answer ≤ 1.25× the floor; supervisor RSS
≤ the floor + 6 MB at N=4, + 20 MB at N=256, + 12 MB after 20,000 deaths).

## Options

\`\`\`
node scripts/bench.mjs [--quick] [--only spawn-fcgi-ts,multiwatch] [--tests ready,restart]
                       [--ts-args='--stable-after 1s'] [--out DIR] [--install] [--keep]
node scripts/bench.mjs --report bench/results.json     # render an earlier run again, no measuring
tests: ready, restart, overhead, churn, throughput, stop, reload, maxreq, crashloop, restart-load, pool-sizing
\`\`\`

A full run of every test and recipe writes here. \`--quick\` (under 5 minutes) gives issue 10's rows:
spawn-fcgi-ts, multiwatch and the Node floor, tests ready, restart, overhead, churn and crashloop, with
fewer repetitions and 1,000 churn deaths (\`--only\` / \`--tests\` widen it); it writes to
\`/tmp/spawn-fcgi-bench-quick/\`; any other subset or \`--ts-args\` run to \`/tmp/spawn-fcgi-bench-out/\`, unless
\`--out\` is given. \`--ts-args\` tries spawn-fcgi-ts options against the same peers (for example
\`--ts-args='--stable-after 1s' --tests restart\`). Missing peers are skipped with a note; \`--install\` (as root)
installs the Debian packages: \`apt-get install -y spawn-fcgi multiwatch php-cgi php-fpm supervisor nginx wrk libfcgi-bin\`.

Issue 11's rows (stop, restart and a pool that sizes itself) are not in \`--quick\`: they take about 3 minutes
on their own (191 s at a load average of 4), and the quick run alone takes 3–4, so together they would pass 5.
Run them on their own (this writes to \`/tmp/spawn-fcgi-bench-quick/\`, 1 stop per transport, 2 pool rounds):

\`\`\`
node scripts/bench.mjs --quick --tests stop,restart-load,pool-sizing \\
  --only spawn-fcgi-ts,spawn-fcgi-ts-dynamic,spawn-fcgi-ts-ondemand,multiwatch,php-fpm,php-fpm-dynamic,php-fpm-ondemand
\`\`\`
`;
}
