#!/usr/bin/env node
// Numbers for a pool that sizes itself (issue 11), php-cgi on a unix socket, a FastCGI client straight at it:
//   node scripts/measure-dynamic.mjs [--rounds N] [--idle-cpu-seconds S] [--php-fpm]
// 1. first-request latency after idle with --min-procs 0 (median of N), beside a static pool's warm child;
// 2. time from the first queued connection to a new child answering (min 1: the one child is kept busy);
// 3. memory of the whole pool (RSS sum, supervisor + children + watcher) at idle after a burst, dynamic vs static;
// 4. supervisor CPU (and the queue watcher's) per minute with an idle dynamic pool (schedstat, ns).
// --php-fpm: php-fpm pm=ondemand (same bounds) for the first-request latency, if php-fpm is installed.
// Needs `npm run build` (dist/cli.cjs). Runs as anyone; as root php-cgi runs as root (a measurement only).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fcgiRequest, phpParams } from './bench/fcgi.mjs';
import { cpuNs } from './bench/proc.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli.cjs');
const SLEEP_PHP = join(ROOT, 'test', 'fixtures', 'php', 'sleep.php');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : process.argv[i + 1];
};
const ROUNDS = Number(arg('--rounds', '7'));
const IDLE_CPU_S = Number(arg('--idle-cpu-seconds', '60'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const fmt = (xs) => xs.map((x) => x.toFixed(1)).join(' ');

const dir = mkdtempSync(join(tmpdir(), 'sfts-measure-dyn-'));
const started = [];

function children(pid) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}
const descendants = (pid) => children(pid).flatMap((c) => [c, ...descendants(c)]);
const isWatcher = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--watch-queue');
  } catch {
    return false;
  }
};
const apps = (pid) => children(pid).filter((c) => !isWatcher(c));
const rssKb = (pid) => {
  try {
    return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  } catch {
    return 0;
  }
};

async function waitUntil(what, predicate, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function startPool(name, flags) {
  const sock = join(dir, `${name}.sock`);
  const child = spawn(process.execPath, [CLI, '-n', '-s', sock, ...flags, '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  started.push(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
  await waitUntil(`${name} to serve`, () => /serving on/.test(stderr));
  return {
    sock,
    pid: child.pid,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

const request = (sock, ms = 0) => fcgiRequest(sock, phpParams(SLEEP_PHP, `ms=${ms}`), 30_000);

async function firstRequestAfterIdle() {
  const pool = await startPool('ondemand', ['-F', '4', '--min-procs', '0', '--idle-timeout', '1s']);
  const latencies = [];
  for (let i = 0; i < ROUNDS; i++) {
    await waitUntil('no child', () => apps(pool.pid).length === 0);
    await sleep(200);
    const r = await request(pool.sock);
    if (!r.ok) throw new Error(`round ${i}: ${JSON.stringify(r)}`);
    latencies.push(r.ms);
  }
  await pool.stop();
  const warm = await startPool('static', ['-F', '1']);
  const warmLatencies = [];
  for (let i = 0; i < ROUNDS; i++) {
    await sleep(200);
    warmLatencies.push((await request(warm.sock)).ms);
  }
  await warm.stop();
  console.log(
    `first request after idle, --min-procs 0 (a child is started for it): median ${median(latencies).toFixed(1)} ms of ${ROUNDS} [${fmt(latencies)}]`,
  );
  console.log(
    `same request to a static pool's warm child:                        median ${median(warmLatencies).toFixed(1)} ms of ${ROUNDS} [${fmt(warmLatencies)}]`,
  );
}

async function queuedToNewChild() {
  const pool = await startPool('grow', ['-F', '4', '--min-procs', '1', '--idle-timeout', '1s']);
  const times = [];
  for (let i = 0; i < ROUNDS; i++) {
    await waitUntil('back at one child', () => apps(pool.pid).length === 1);
    await sleep(300);
    const busy = request(pool.sock, 2000); // the one child is busy for 2 s
    await sleep(100);
    const r = await request(pool.sock); // queued: answered by a new child
    if (!r.ok) throw new Error(`round ${i}: ${JSON.stringify(r)}`);
    times.push(r.ms);
    await busy;
  }
  await pool.stop();
  console.log(`first queued connection → a new child answers it (min 1, its child busy): median ${median(times).toFixed(1)} ms of ${ROUNDS} [${fmt(times)}]`);
}

async function memoryAfterBurst() {
  const rows = [];
  for (const [name, flags] of [
    ['static -F 4', ['-F', '4']],
    ['dynamic --min-procs 1 -F 4', ['-F', '4', '--min-procs', '1', '--idle-timeout', '2s']],
    ['ondemand --min-procs 0 -F 4', ['-F', '4', '--min-procs', '0', '--idle-timeout', '2s']],
  ]) {
    const pool = await startPool(name.split(' ')[0], flags);
    await Promise.all(Array.from({ length: 8 }, () => request(pool.sock, 500)));
    const target = Number(flags[flags.indexOf('--min-procs') + 1] ?? 4);
    const want = flags.includes('--min-procs') ? target : 4;
    await waitUntil(`${name} idle at ${want}`, () => apps(pool.pid).length === want);
    await sleep(3000);
    const pids = [pool.pid, ...descendants(pool.pid)];
    const kb = pids.reduce((sum, pid) => sum + rssKb(pid), 0);
    rows.push(
      `${name.padEnd(28)} ${String(apps(pool.pid).length).padStart(2)} children, ${pids.length} processes, RSS sum ${(kb / 1024).toFixed(1)} MiB (supervisor ${(rssKb(pool.pid) / 1024).toFixed(1)} MiB)`,
    );
    await pool.stop();
  }
  console.log('memory at idle after a burst of 8 concurrent 0.5 s requests:');
  for (const row of rows) console.log(`  ${row}`);
}

async function idleCpu() {
  const pool = await startPool('idlecpu', ['-F', '4', '--min-procs', '1', '--idle-timeout', '1s']);
  await Promise.all(Array.from({ length: 6 }, () => request(pool.sock, 300)));
  await waitUntil('back at one child', () => apps(pool.pid).length === 1);
  await sleep(2000);
  const watcher = children(pool.pid).find(isWatcher);
  const s0 = cpuNs(pool.pid),
    w0 = cpuNs(watcher);
  await sleep(IDLE_CPU_S * 1000);
  const s1 = cpuNs(pool.pid),
    w1 = cpuNs(watcher);
  const perMin = (a, b) => ((b - a) / 1e6) * (60 / IDLE_CPU_S);
  console.log(
    `idle CPU per minute, dynamic pool (min 1 max 4) at its minimum, over ${IDLE_CPU_S} s: supervisor ${perMin(s0, s1).toFixed(3)} ms, queue watcher ${perMin(w0, w1).toFixed(3)} ms`,
  );
  await pool.stop();
}

async function phpFpm() {
  const fpm = ['/usr/sbin/php-fpm8.2', '/usr/sbin/php-fpm8.3', '/usr/sbin/php-fpm8.1', '/usr/sbin/php-fpm'].find(existsSync);
  if (fpm === undefined) {
    console.log('php-fpm: not installed (apt-get install -y php-fpm): not measured');
    return;
  }
  const sock = join(dir, 'fpm.sock');
  writeFileSync(
    join(dir, 'fpm.conf'),
    `[global]\nerror_log = ${dir}/fpm.log\ndaemonize = no\npid = ${dir}/fpm.pid\n[www]\nlisten = ${sock}\npm = ondemand\npm.max_children = 4\npm.process_idle_timeout = 1s\n`,
  );
  const child = spawn(fpm, ['-F', '-R', '-y', join(dir, 'fpm.conf')], { stdio: 'ignore' });
  started.push(child);
  await waitUntil('php-fpm socket', () => existsSync(sock));
  const latencies = [];
  for (let i = 0; i < ROUNDS; i++) {
    await waitUntil('php-fpm: no worker', () => children(child.pid).length === 0);
    await sleep(200);
    const r = await request(sock);
    if (!r.ok) throw new Error(`php-fpm round ${i}: ${JSON.stringify(r)}`);
    latencies.push(r.ms);
  }
  child.kill('SIGQUIT');
  await new Promise((r) => child.once('exit', r));
  console.log(`php-fpm pm=ondemand, first request after idle:                     median ${median(latencies).toFixed(1)} ms of ${ROUNDS} [${fmt(latencies)}]`);
}

try {
  console.log(`php-cgi ${execFileSync('php-cgi', ['-v'], { encoding: 'utf8' }).split('\n')[0]}; node ${process.version}`);
  await firstRequestAfterIdle();
  if (process.argv.includes('--php-fpm')) await phpFpm();
  await queuedToNewChild();
  await memoryAfterBurst();
  if (IDLE_CPU_S > 0) await idleCpu();
} finally {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
