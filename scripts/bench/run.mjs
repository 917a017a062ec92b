// One started instance of a recipe: start, wait until it serves, stop, and clean up by pid.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { probe, tcpListen } from './fcgi.mjs';
import { cpuNs, memKb, readStat, signalIfSame, CLK_TCK } from './proc.mjs';
import { Tracker } from './proc.mjs';
import { registerRun, unregisterRun } from './registry.mjs';
import { now, sleep } from './util.mjs';

let counter = 0;

export class Run {
  /**
   * ctx: {tmpRoot, readyScript}; options: {n, label, worker, maxRequests, churn (the recipe's settings for
   * a churn test)}
   */
  constructor(ctx, recipe, { n, label, worker = ctx.phpCgi, maxRequests = 0, churn = false, sock = null }) {
    this.ctx = ctx;
    this.recipe = recipe;
    this.n = n;
    this.worker = worker;
    this.runDir = join(ctx.tmpRoot, `${recipe.name}-${label}-${++counter}`);
    mkdirSync(this.runDir, { recursive: true });
    // sock: another run's socket path (a restart: the new run takes over where nginx points), or
    // tcp:HOST:PORT (the recipes' build() turns it into their TCP listen options)
    this.sock = sock ?? join(this.runDir, 'php.sock');
    // a pool that sizes itself is ready with its minimum (the probe may add one)
    this.readyWorkers = recipe.pool ? recipe.pool.min : n;
    const { argv, env } = recipe.build({ sock: this.sock, n, worker, runDir: this.runDir, maxRequests, churn });
    this.argv = argv;
    this.env = env;
    this.exit = null;
  }

  start() {
    try {
      if (!tcpListen(this.sock)) unlinkSync(this.sock);
    } catch {
      // no stale socket
    }
    const out = openSync(join(this.runDir, 'spawner.out'), 'w');
    const err = openSync(join(this.runDir, 'spawner.err'), 'w');
    this.tracker = new Tracker({ workerRe: this.recipe.workerRe, sockPath: this.sock, daemonizes: this.recipe.daemonizes });
    this.t0 = now();
    this.child = spawn(this.argv[0], this.argv.slice(1), { env: this.env, cwd: this.runDir, stdio: ['ignore', out, err], detached: true });
    closeSync(out);
    closeSync(err);
    this.pid = this.child.pid;
    this.tracker.setRoot(this.pid);
    registerRun(this);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal, at_ms: now() - this.t0 };
        resolve(this.exit);
      });
      this.child.once('error', (error) => {
        this.exit = { code: null, signal: null, error: String(error), at_ms: now() - this.t0 };
        resolve(this.exit);
      });
    });
    return this;
  }

  get rootAlive() {
    return this.exit === null;
  }

  /** ms since the spawner was started. */
  elapsed() {
    return now() - this.t0;
  }

  poll() {
    this.tracker.poll();
    return this.tracker.classify();
  }

  /**
   * Until the pool answers ready.php and n workers exist, or it gives up. Two loops share the event
   * loop: a probe that retries the FastCGI request every 2 ms while the socket refuses, and the
   * /proc poll every 2 ms.
   */
  async waitReady({ timeoutMs = 15_000, stuckMs = 3000 } = {}) {
    const res = { socket_file_ms: null, answer_ms: null, workers_ms: null, ready_ms: null, max_workers: 0, probes: 0 };
    let stop = false;
    const prober = (async () => {
      while (!stop && this.elapsed() < timeoutMs) {
        if (!tcpListen(this.sock) && !existsSync(this.sock)) {
          await sleep(1);
          continue;
        }
        if (res.socket_file_ms === null) res.socket_file_ms = this.elapsed();
        res.probes++;
        const left = timeoutMs - this.elapsed();
        const r = await probe(this.sock, this.ctx.readyScript, Math.max(200, Math.min(5000, left)));
        if (r.ok) {
          res.answer_ms = this.elapsed();
          return;
        }
        await sleep(r.stage === 'connect' ? 2 : 5);
      }
    })();
    let lastCount = -1;
    let lastChange = now();
    while (this.elapsed() < timeoutMs) {
      const { workers } = this.poll();
      const t = now();
      if (workers.length !== lastCount) {
        lastCount = workers.length;
        lastChange = t;
      }
      res.max_workers = Math.max(res.max_workers, workers.length);
      if (res.workers_ms === null && workers.length >= this.readyWorkers) res.workers_ms = t - this.t0;
      if (res.workers_ms !== null && res.answer_ms !== null) break;
      if (res.answer_ms !== null && t - lastChange > stuckMs) {
        res.gave_up = `worker count stuck at ${workers.length} < ${this.readyWorkers}`;
        break;
      }
      if (!this.rootAlive && workers.length === 0 && (!this.recipe.daemonizes || this.elapsed() > 5000)) {
        res.gave_up = `spawner exited (${describeExit(this.exit)}) and no worker is left`;
        break;
      }
      await sleep(2);
    }
    if (res.workers_ms === null || res.answer_ms === null) res.gave_up ??= `timeout after ${timeoutMs} ms`;
    stop = true;
    await prober;
    if (res.answer_ms !== null && res.workers_ms !== null) res.ready_ms = Math.max(res.answer_ms, res.workers_ms);
    this.tracker.resync();
    res.final_workers = this.tracker.workers().length;
    return res;
  }

  /** Signal the spawner (or, once a daemonizing spawner is gone, its workers); time until all is gone. */
  async stop(signal = 'SIGTERM', timeoutMs = 30_000) {
    this.tracker.resync();
    const res = { signal };
    const t = now();
    if (this.rootAlive) {
      try {
        process.kill(this.pid, signal);
      } catch {
        // exited meanwhile
      }
    } else {
      res.note = 'the spawner had exited: signalled the workers by pid';
      for (const w of this.tracker.workers()) signalIfSame(w.pid, w.starttime, signal);
    }
    let rootExit = this.rootAlive ? null : 0;
    let allGone = null;
    while (now() - t < timeoutMs) {
      this.tracker.poll();
      if (rootExit === null && !this.rootAlive) rootExit = now() - t;
      if (!this.rootAlive && this.tracker.members.size === 0) {
        allGone = now() - t;
        break;
      }
      await sleep(2);
    }
    res.spawner_exit_ms = rootExit;
    res.all_gone_ms = allGone;
    res.timed_out = allGone === null;
    res.exit = this.exit;
    res.socket_file_left = !tcpListen(this.sock) && existsSync(this.sock);
    await this.kill();
    return res;
  }

  /** SIGKILL whatever is left of this run (its own processes only, by pid + starttime). */
  async kill() {
    for (const m of this.tracker.live()) signalIfSame(m.pid, m.starttime, 'SIGKILL');
    if (this.rootAlive) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone
      }
      await Promise.race([this.exited, sleep(5000)]);
    }
    unregisterRun(this);
  }

  /** RSS/PSS/CPU of the supervising (non-worker) processes; sums over workers. */
  sampleSupervisors() {
    this.tracker.resync();
    const { workers, supervisors } = this.tracker.classify();
    const procs = supervisors.map((st) => {
      const m = memKb(st.pid) ?? {};
      const s = readStat(st.pid) ?? st;
      return {
        pid: st.pid,
        comm: st.comm,
        rss_kb: m.VmRSS ?? null,
        hwm_kb: m.VmHWM ?? null,
        pss_kb: m.Pss ?? null,
        cpu_ns: cpuNs(st.pid),
        cpu_ticks: s.utime + s.stime,
        threads: s.threads,
      };
    });
    const wk = workers.map((st) => memKb(st.pid) ?? {});
    const total = (key) => procs.reduce((a, p) => a + (p[key] ?? 0), 0);
    return {
      t_ms: this.elapsed(),
      supervisors: procs,
      n_workers: workers.length,
      sup_rss_kb: total('rss_kb'),
      sup_pss_kb: total('pss_kb'),
      sup_cpu_ms: total('cpu_ns') / 1e6,
      sup_cpu_ticks_ms: (total('cpu_ticks') * 1000) / CLK_TCK,
      worker_rss_kb: wk.reduce((a, m) => a + (m.VmRSS ?? 0), 0),
      worker_pss_kb: wk.reduce((a, m) => a + (m.Pss ?? 0), 0),
    };
  }

  outputTail(bytes = 1500) {
    const out = {};
    for (const name of ['spawner.out', 'spawner.err']) {
      try {
        out[name] = readFileSync(join(this.runDir, name), 'utf8').slice(-bytes);
      } catch {
        out[name] = null;
      }
    }
    return out;
  }
}

export function describeExit(exit) {
  if (exit === null || exit === undefined) return 'running';
  if (exit.error) return exit.error;
  return exit.signal ? `signal ${exit.signal}` : `rc=${exit.code}`;
}
