/**
 * A pool that sizes itself (--min-procs below -F), with real php-cgi behind real nginx and lighttpd:
 * a burst of concurrent slow requests grows it, idling shrinks it back to --min-procs, --min-procs 0 starts
 * nothing and answers the first request (not 502), status and metrics show the current size and the bounds,
 * TTIN/TTOU move the upper bound. Nothing of this runs in a static pool. No wall-clock assertions: latencies
 * go to the diagnostics.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { httpRequest, quote, startLighttpd } from '../helpers/lighttpd.js';
import { fcgiLoad } from '../helpers/load.js';
import { startNginx } from '../helpers/nginx.js';
import { cleanupAll, PHP_FIXTURES, requireBuild, ROOT, runCli, startPool, track, untrack, type RunningPool } from '../helpers/pool.js';
import { childrenOf, cmdline, freePort, removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-dynamic');
});
after(async () => {
  await cleanupAll();
  removePath(dir);
});

const PHP = ['--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'];
const watchers = (pool: RunningPool) => childrenOf(pool.pid).filter((pid) => cmdline(pid).includes(' --watch-queue '));

async function statusJson(socket: string): Promise<{ configured: number; min?: number; max?: number; children: number; slots: { state: string }[] }> {
  const result = await runCli(['status', '-s', socket, '--json'], { timeoutMs: 20_000 });
  assert.equal(result.code, 0, `status: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

function curl(url: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) =>
    execFile('curl', ['-sS', url], { encoding: 'utf8' }, (error, stdout) => resolve({ code: error === null ? 0 : (error.code as number), stdout })),
  );
}

test('min 1 max 4 through nginx: a burst of slow requests grows the pool, all answered; idle, it shrinks back to 1', async (t) => {
  const socket = join(dir, 'grow.sock');
  const pool = await startPool(['-s', socket, '-F', '4', '--min-procs', '1', '--idle-timeout', '1s', ...PHP]);
  assert.equal(pool.childPids().length, 1, 'starts at --min-procs');
  assert.equal(watchers(pool).length, 1, 'one queue watcher');
  const nginx = await startNginx({ fastcgiPass: `unix:${socket}`, docroot: PHP_FIXTURES });
  t.after(() => nginx.stop());

  let most = 1;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, pool.childPids().length);
      await sleep(20);
    }
  })();
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: 6 }, () => httpRequest(`${nginx.baseUrl}/sleep.php?ms=1500`, { timeoutMs: 60_000 })));
  t.diagnostic(
    `6 requests of 1.5 s each, answered in ${Date.now() - started} ms by ${new Set(answers.map((a) => a.body.split('\n')[0])).size} children; most children seen: ${most}`,
  );
  sampling = false;
  await sampler;
  assert.deepEqual(
    answers.map((a) => a.status),
    [200, 200, 200, 200, 200, 200],
  );
  assert.ok(most > 1, `the pool grew (most children seen: ${most})`);
  assert.ok(most <= 4, 'never above -F');
  assert.match(pool.stderr(), /pool grows to \d \[1-4\] \(connections waiting\)/);
  const grown = await statusJson(socket);
  assert.equal(grown.min, 1);
  assert.equal(grown.max, 4);
  assert.equal(grown.slots.length, 4);

  // The child is gone from /proc a moment before the pool logs the shrink (once its process group is empty).
  await waitFor(() => pool.childPids().length === 1 && /pool shrinks to 1 \[1-4\] \(idle\)/.test(pool.stderr()), {
    timeoutMs: 30_000,
    what: 'the pool to shrink back to 1',
  });
  const idle = await statusJson(socket);
  assert.equal(idle.children, 1);
  assert.equal(idle.configured, 1);
  assert.equal(idle.slots.filter((s) => s.state === 'parked').length, 3);
  const again = await httpRequest(`${nginx.baseUrl}/sleep.php?ms=0`);
  assert.equal(again.status, 200);
  await pool.stop();
  assert.deepEqual(watchers(pool), [], 'the watcher is gone with the pool');
});

test('min 0 through lighttpd: no child at start; the first request is answered, not refused; idle, no child again', async (t) => {
  const socket = join(dir, 'ondemand.sock');
  const port = await freePort();
  const pool = await startPool(
    ['-s', socket, '-F', '2', '--min-procs', '0', '--idle-timeout', '1s', '--metrics', `127.0.0.1:${port}`, '--status-page', ...PHP],
    { readyPattern: /0 children serving on .* \(sizes itself: 0 to 2\)/ },
  );
  // startPool's probe request started a child: wait until it idled away.
  await waitFor(() => pool.childPids().length === 0, { timeoutMs: 30_000, what: 'no child left after the probe' });
  const readyz = await curl(`http://127.0.0.1:${port}/readyz`);
  assert.equal(readyz.code, 0, `an idle ondemand pool is ready: ${readyz.stdout}`);
  const lighttpd = await startLighttpd({
    docroot: PHP_FIXTURES,
    config: `fastcgi.server = ( ".php" => (( "socket" => ${quote(socket)}, "check-local" => "disable" )) )`,
  });
  t.after(() => lighttpd.stop());

  const latencies: number[] = [];
  for (let round = 0; round < 3; round++) {
    assert.equal(pool.childPids().length, 0, `round ${round}: no child before the request`);
    const begin = performance.now();
    const answer = await httpRequest(`${lighttpd.baseUrl}/sleep.php?ms=0`, { timeoutMs: 30_000 });
    latencies.push(performance.now() - begin);
    assert.equal(answer.status, 200, `round ${round}: answered, not refused: ${answer.body}`);
    assert.match(answer.body, /^pid=\d+/);
    await waitFor(() => pool.childPids().length === 0, { timeoutMs: 30_000, what: `round ${round}: the child to idle away` });
  }
  t.diagnostic(`first request after idle (--min-procs 0, php-cgi, through lighttpd): ${latencies.map((l) => l.toFixed(1)).join(', ')} ms`);

  // The pool counts a stopping child until its process group is empty, a moment after /proc stops listing it.
  let metrics = await curl(`http://127.0.0.1:${port}/metrics`);
  await waitFor(
    async () => {
      metrics = await curl(`http://127.0.0.1:${port}/metrics`);
      return /^spawn_fcgi_ts_children 0$/m.test(metrics.stdout);
    },
    { timeoutMs: 30_000, what: 'metrics to count no child' },
  );
  assert.match(metrics.stdout, /^spawn_fcgi_ts_children_min 0$/m);
  assert.match(metrics.stdout, /^spawn_fcgi_ts_children_max 2$/m);
  assert.match(metrics.stdout, /^spawn_fcgi_ts_child_state\{slot="1",spawn_fcgi_ts_child_state="parked"\} 1$/m);
  const page = await curl(`http://127.0.0.1:${port}/`);
  assert.match(page.stdout, /0 of 0 children running \(min 0, max 2\)/);
  assert.match(page.stdout, /data-field="ready">ready</);
  const table = await runCli(['status', '-s', socket], { timeoutMs: 20_000 });
  assert.equal(table.code, 0, 'status: ready (exit 0), not degraded');
  assert.match(table.stdout, /0 children \(min 0, max 2\)/);
  await pool.stop();
});

test('TTIN/TTOU in a pool that sizes itself move the upper bound, never below --min-procs', async () => {
  const socket = join(dir, 'ttin.sock');
  const pool = await startPool(['-s', socket, '-F', '2', '--min-procs', '1', ...PHP]);
  process.kill(pool.pid, 'SIGTTIN');
  await waitFor(async () => (await statusJson(socket)).max === 3, { timeoutMs: 20_000, what: 'max 3' });
  const grown = await statusJson(socket);
  // The slot TTIN added is parked, to grow into. (Slot 1 may be running too: on a busy machine the start's
  // readiness probe can wait in the accept queue long enough for the pool to grow.)
  assert.equal(grown.min, 1);
  assert.deepEqual(
    grown.slots.map((s) => s.state),
    ['running', grown.slots[1]!.state === 'running' ? 'running' : 'parked', 'parked'],
  );
  assert.equal(grown.children, grown.slots.filter((s) => s.state === 'running').length);
  // One at a time: signals sent together coalesce.
  for (const max of [2, 1]) {
    process.kill(pool.pid, 'SIGTTOU');
    await waitFor(async () => (await statusJson(socket)).max === max, { timeoutMs: 20_000, what: `max ${max}` });
  }
  process.kill(pool.pid, 'SIGTTOU');
  await sleep(500);
  // A child retired by the shrink to 1 may still be on its way out on a busy machine.
  const shrunk = await waitFor(
    async () => {
      const status = await statusJson(socket);
      return status.children <= 1 ? status : undefined;
    },
    { timeoutMs: 20_000, what: 'at most one child' },
  );
  assert.deepEqual([shrunk.min, shrunk.max, shrunk.children], [1, 1, 1], 'never below one child');
  await pool.stop();
});

test('a static pool (the default) runs no queue watcher and shows min = max', async () => {
  const socket = join(dir, 'static.sock');
  const pool = await startPool(['-s', socket, '-F', '2', ...PHP]);
  assert.deepEqual(watchers(pool), []);
  const status = await statusJson(socket);
  assert.deepEqual([status.min, status.max, status.configured], [2, 2, 2]);
  const table = await runCli(['status', '-s', socket], { timeoutMs: 20_000 });
  assert.doesNotMatch(table.stdout, /min \d/, 'no bounds shown for a static pool');
  await pool.stop();
});

test('min 0 on TCP through nginx: the watcher listens, the first request is answered (not 502)', async (t) => {
  const port = await freePort();
  const pool = await startPool(['-a', '127.0.0.1', '-p', String(port), '-F', '2', '--min-procs', '0', '--idle-timeout', '1s', ...PHP]);
  await waitFor(() => pool.childPids().length === 0, { timeoutMs: 30_000, what: 'no child left after the probe' });
  const nginx = await startNginx({ fastcgiPass: `127.0.0.1:${port}`, docroot: PHP_FIXTURES });
  t.after(() => nginx.stop());
  const begin = performance.now();
  const answer = await httpRequest(`${nginx.baseUrl}/sleep.php?ms=0`, { timeoutMs: 30_000 });
  t.diagnostic(`first request after idle on TCP through nginx: ${(performance.now() - begin).toFixed(1)} ms`);
  assert.equal(answer.status, 200, answer.body);
  // One child answered; with --idle-timeout 1s a slow machine may already have stopped it again.
  assert.ok(pool.childPids().length <= 1, `at most one child for one request: ${pool.childPids().join(',')}`);
  await pool.stop();
});

test('spawn-php.sh and --config: FCGI_MIN_PROCS and FCGI_IDLE_TIMEOUT size the pool', async () => {
  const socket = join(dir, 'conf.sock');
  const config = join(dir, 'dyn.conf');
  writeFileSync(config, `FCGISOCKET="${socket}"\nFCGIPROGRAM=php-cgi\nFCGIPROCS=3\nFCGI_MIN_PROCS=1\nFCGI_IDLE_TIMEOUT=2s\nPHP_FCGI_CHILDREN=0\n`);
  const viaConfig = await startPool(['--config', config], { target: { path: socket } });
  const status = await statusJson(socket);
  assert.deepEqual([status.min, status.max, status.children], [1, 3, 1]);
  await viaConfig.stop();

  const shSocket = join(dir, 'sh.sock');
  const child = spawn('sh', [join(ROOT, 'scripts', 'spawn-php.sh'), '-n'], {
    env: {
      PATH: process.env.PATH!,
      FCGISOCKET: shSocket,
      FCGIPROCS: '2',
      FCGI_MIN_PROCS: '0',
      FCGI_IDLE_TIMEOUT: '1s',
      PHP_FCGI_CHILDREN: '0',
      SPAWNFCGI: join(ROOT, 'dist', 'cli.cjs'),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  track(child.pid!);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await waitFor(() => /serving on /.test(stderr) || child.exitCode !== null, { timeoutMs: 20_000, what: `spawn-php.sh to serve (${stderr})` });
    assert.match(stderr, /0 children serving on .* \(sizes itself: 0 to 2\)/);
    const sh = await statusJson(shSocket);
    assert.deepEqual([sh.min, sh.max, sh.children], [0, 2, 0]);
  } finally {
    child.kill('SIGTERM');
    await exited;
    untrack(child.pid!);
  }
});

test('drain on stop still holds for a grown pool: SIGTERM under load loses no request sent before it', async (t) => {
  const socket = join(dir, 'drain.sock');
  const pool = await startPool(['-s', socket, '-F', '3', '--min-procs', '1', '--idle-timeout', '1s', '--kill-timeout', '60s', ...PHP]);
  const load = fcgiLoad({
    target: { path: socket },
    concurrency: 8,
    durationMs: 60_000,
    params: (i) => ({ SCRIPT_FILENAME: join(PHP_FIXTURES, 'sleep.php'), QUERY_STRING: `ms=30&id=${i}` }),
    timeoutMs: 60_000,
    until: pool.exited,
  });
  await waitFor(() => pool.childPids().length > 1, { timeoutMs: 30_000, what: 'the pool to grow under load' });
  await sleep(500);
  const grown = pool.childPids().length;
  const stopAt = Date.now();
  const exit = await pool.stop('SIGTERM', 60_000);
  const result = await load;
  const before = result.outcomes.filter((o) => o.startedAt < stopAt);
  const failedBefore = before.filter((o) => !o.ok);
  t.diagnostic(`${grown} children at the stop; sent before it: ${before.length}, failed ${failedBefore.length}; errors ${JSON.stringify(result.errors)}`);
  assert.ok(before.length >= 20, `too few requests before the stop: ${before.length}`);
  assert.deepEqual(
    failedBefore.map((o) => `${o.i}: ${o.error ?? o.status}`),
    [],
  );
  assert.equal(exit.code, 0, pool.stderr());
});
