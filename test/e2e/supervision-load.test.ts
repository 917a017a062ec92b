/**
 * Supervision under load: a SIGHUP rolling restart while wrk hammers nginx in front of the pool loses
 * no request and never leaves fewer than N children; a graceful stop (SIGTERM) under load lets every
 * request a child had accepted finish.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { fcgiLoad, startWrk } from '../helpers/load.js';
import { startNginx } from '../helpers/nginx.js';
import { requireBuild, startPool } from '../helpers/pool.js';
import { removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const APPS = fileURLToPath(new URL('../fixtures/apps/', import.meta.url));
const PHP_DIR = join(APPS, 'php');
const PID_PHP = join(PHP_DIR, 'pid.php');
const SLOW_PHP = join(PHP_DIR, 'slow.php');
const N = 4;

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-load');
});
after(() => removePath(dir));

test(`SIGHUP rolling restart under wrk -t2 -c32 -d6s through nginx: no failed request, every child replaced, never fewer than ${N}`, async (t) => {
  const sock = join(dir, 'hup.sock');
  // PHP_FCGI_MAX_REQUESTS=0: no recycling by php-cgi itself (its default is 500), so that only the
  // rolling restart replaces children and any dip below N would be the supervisor's.
  const pool = await startPool(['-s', sock, '-F', String(N), '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    probeParams: { SCRIPT_FILENAME: PID_PHP },
  });
  t.after(() => pool.stop().catch(() => undefined));
  const nginx = await startNginx({ fastcgiPass: `unix:${sock}`, docroot: PHP_DIR });
  t.after(() => nginx.stop());
  const initial = pool.childPids();
  assert.equal(initial.length, N);

  const wrk = startWrk({ url: `${nginx.baseUrl}/pid.php`, threads: 2, connections: 32, durationS: 6 });
  t.after(() => wrk.kill());
  await sleep(2000);

  // Children count every 20 ms, from just before the SIGHUP until wrk is done.
  const samples: number[] = [];
  const sampledAt: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push(pool.childPids().length);
      sampledAt.push(Date.now());
      await sleep(20);
    }
  })();
  await sleep(40);
  const hupAt = Date.now();
  process.kill(pool.pid, 'SIGHUP');
  let replacedAfter = -1;
  try {
    const replaced = await waitFor(
      () => {
        const now = pool.childPids();
        return now.length === N && now.every((pid) => !initial.includes(pid)) ? now : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20, what: 'every child replaced' },
    );
    replacedAfter = Date.now() - hupAt;
    assert.equal(replaced.length, N);
  } finally {
    const result = await wrk.done.finally(() => {
      sampling = false;
    });
    await sampler;
    const errorLog = nginx.errorLog();
    const nginxErrors = errorLog.split('\n').filter((line) => /\[(error|crit|alert|emerg)\]/.test(line));
    t.diagnostic(
      `wrk: ${result.requests} requests (${result.requestsPerSec}/s), non-2xx ${result.non2xx}, socket errors ${JSON.stringify(result.socketErrors)}; all ${N} children replaced ${replacedAfter} ms after SIGHUP; children count over ${samples.length} samples: min ${Math.min(...samples)}, max ${Math.max(...samples)}; nginx error lines ${nginxErrors.length}`,
    );

    assert.ok(result.requests > 200, `too few requests to mean anything:\n${result.output}`);
    assert.equal(result.non2xx, 0, `non-2xx responses:\n${result.output}\n${nginxErrors.slice(0, 5).join('\n')}`);
    assert.equal(result.totalSocketErrors, 0, `socket errors:\n${result.output}`);
    assert.doesNotMatch(errorLog, /connect\(\) failed/, 'nginx could not connect to the pool');
    assert.deepEqual(nginxErrors, [], 'nginx logged errors');
    // What matters is that the replacement window was watched at all, however busy the machine is
    // (the sampler is as slow as the machine; the count goes to the log above).
    const duringRestart = sampledAt.filter((at) => at >= hupAt && at <= hupAt + replacedAfter).length;
    assert.ok(duringRestart >= 1, `no sample while the children were replaced (${duringRestart} of ${samples.length})`);
    assert.ok(Math.min(...samples) >= N, `the pool dropped below ${N} children during the rolling restart: ${samples.join(',')}`);
  }
  const final = await waitFor(() => (pool.childPids().length === N ? pool.childPids() : undefined), { timeoutMs: 20_000, what: `${N} children` });
  assert.deepEqual(
    final.filter((pid) => initial.includes(pid)),
    [],
    `every child pid changed (${initial} -> ${final})`,
  );
  assert.equal(pool.exitStatus(), undefined);
});

test('graceful stop under load: no request that a child had accepted fails', async (t) => {
  const sock = join(dir, 'stop.sock');
  const slowLog = join(dir, 'slow.log');
  const pool = await startPool(['-s', sock, '-F', String(N), '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    probeParams: { SCRIPT_FILENAME: PID_PHP },
  });
  t.after(() => pool.stop().catch(() => undefined));
  const children = pool.childPids();

  // 16 loops of 200 ms requests against 4 children: a queue on the socket, and a request in every child.
  const load = fcgiLoad({
    target: pool.target,
    concurrency: 16,
    // Until the supervisor exits (the SIGTERM comes when the children are busy, whenever that is).
    durationMs: 60_000,
    timeoutMs: 30_000,
    until: pool.exited,
    params: (i) => ({ SCRIPT_FILENAME: SLOW_PHP, QUERY_STRING: `id=${i}`, SLOW_LOG: slowLog }),
  });
  // SIGTERM once requests run in every child and some have finished (not after a fixed time: a busy
  // machine may not have got that far).
  const logLines = (prefix: string) =>
    existsSync(slowLog)
      ? readFileSync(slowLog, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith(prefix)).length
      : 0;
  await waitFor(() => logLines('end ') >= 8 && logLines('start ') - logLines('end ') >= 1, {
    timeoutMs: 30_000,
    intervalMs: 20,
    what: 'requests running and finished in the children',
  });
  const termAt = Date.now();
  process.kill(pool.pid, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    pool.exited,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, 30_000, undefined);
    }),
  ]);
  clearTimeout(timer);
  const stopMs = Date.now() - termAt;
  const result = await load;

  const lines = existsSync(slowLog) ? readFileSync(slowLog, 'utf8').split('\n') : [];
  const started = new Set(lines.filter((l) => l.startsWith('start ')).map((l) => Number(l.slice(6))));
  const ended = new Set(lines.filter((l) => l.startsWith('end ')).map((l) => Number(l.slice(4))));
  const failed = result.outcomes.filter((o) => !o.ok);
  const acceptedFailed = failed.filter((o) => started.has(o.i));
  const notAccepted = failed.filter((o) => !started.has(o.i));
  const inFlightAtTerm = result.outcomes.filter((o) => started.has(o.i) && o.startedAt < termAt && o.endedAt >= termAt);
  const unfinished = [...started].filter((i) => !ended.has(i));
  t.diagnostic(
    `${result.outcomes.length} requests: ${result.ok} ok, ${failed.length} failed (${JSON.stringify(result.errors)}); ` +
      `accepted by a child and failed: ${acceptedFailed.length}; failed without being accepted: ${notAccepted.length}; ` +
      `accepted requests still running at SIGTERM: ${inFlightAtTerm.length}; supervisor exit ${stopMs} ms after SIGTERM (${JSON.stringify(exit)})`,
  );

  assert.ok(exit, `the supervisor did not exit within 30 s of SIGTERM:\n${pool.stderr()}`);
  assert.equal(exit.code, 0);
  assert.ok(result.ok >= 8, `too few answered requests: ${result.ok}`);
  assert.ok(inFlightAtTerm.length >= 1, 'no request was running when SIGTERM came: the test proves nothing');
  assert.deepEqual(
    acceptedFailed.map((o) => `${o.i}: ${o.error ?? o.status}`),
    [],
    'requests a child had accepted failed',
  );
  assert.deepEqual(unfinished, [], 'requests a child started but did not finish');
  for (const pid of children) assert.ok(!pool.childPids().includes(pid));
});
