/**
 * Drain on stop, unix socket, straight at the FastCGI socket (no web server): a SIGTERM takes the path
 * away at once (new connects: ENOENT) and the children take every connection already queued before they
 * get the kill signal, so none of those is reset. Nothing is left in the socket's directory afterwards;
 * with --keep-socket the path is back (a socket nobody listens on).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fcgiRequest, type FcgiTarget } from '../helpers/fcgi-mini.js';
import { fcgiLoad } from '../helpers/load.js';
import { PHP_FIXTURES, RESPONDER, requireBuild, startPool } from '../helpers/pool.js';
import { freePort, removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const SLEEP_PHP = join(PHP_FIXTURES, 'sleep.php');
const PID_PHP = join(PHP_FIXTURES, 'pid.php');

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-drain');
});
after(() => removePath(dir));

/** The errno of a connect to `path`, or 'connected'. */
function connectResult(path: string): Promise<string> {
  return new Promise((resolve) => {
    const client = net.connect({ path });
    client.once('connect', () => {
      client.destroy();
      resolve('connected');
    });
    client.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

const sleepRequest = (path: string, ms: number, id: number) =>
  fcgiRequest({ path }, { REQUEST_METHOD: 'GET', SCRIPT_FILENAME: SLEEP_PHP, QUERY_STRING: `ms=${ms}&id=${id}` }, { timeoutMs: 60_000 })
    .then((r) => ({ id, ok: r.appStatus === 0 && /busy=\d+/.test(r.stdout.toString()), error: undefined as string | undefined }))
    .catch((error: NodeJS.ErrnoException) => ({ id, ok: false, error: error.code ?? error.message }));

test('a full accept queue in front of 1 busy php-cgi: SIGTERM, every queued request answered, path gone at once, nothing left', async () => {
  const sub = tmpDir('sfts-drain-q');
  const sock = join(sub, 'q.sock');
  const pool = await startPool(['-s', sock, '-F', '1', '--kill-timeout', '60s', '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    probeParams: { SCRIPT_FILENAME: PID_PHP },
  });
  try {
    const busy = sleepRequest(sock, 2000, 0);
    await sleep(300);
    const N = 8;
    const queued = Array.from({ length: N }, (_, i) => sleepRequest(sock, 50, i + 1));
    // Unix connects complete as soon as they are queued; give the event loop time to issue them.
    await sleep(300);
    const stopped = pool.stop('SIGTERM', 60_000);
    await waitFor(() => !existsSync(sock), { timeoutMs: 10_000, what: 'the socket path to be taken away' });
    const duringStop = pool.exitStatus() === undefined;
    const late = await connectResult(sock);
    const results = await Promise.all([busy, ...queued]);
    const exit = await stopped;

    assert.deepEqual(
      results.filter((r) => !r.ok),
      [],
      'a request sent before the stop failed',
    );
    assert.equal(results.length, N + 1);
    assert.equal(late, 'ENOENT', 'a connect after the stop began reached the socket');
    assert.ok(duringStop, 'the path was still there when the supervisor had already exited');
    assert.equal(exit.code, 0, pool.stderr());
    assert.match(pool.stderr(), /children took the accept queue/);
    assert.equal(await connectResult(sock), 'ENOENT');
    assert.deepEqual(readdirSync(sub), [], 'something was left in the socket directory');
  } finally {
    await pool.stop().catch(() => undefined);
    removePath(sub);
  }
});

test('SIGTERM under steady load (8 clients, 2 php-cgi): no request sent before the stop fails', async (t) => {
  const sub = tmpDir('sfts-drain-l');
  const sock = join(sub, 'l.sock');
  const pool = await startPool(['-s', sock, '-F', '2', '--kill-timeout', '60s', '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    probeParams: { SCRIPT_FILENAME: PID_PHP },
  });
  try {
    const load = fcgiLoad({
      target: { path: sock },
      concurrency: 8,
      durationMs: 60_000,
      params: (i) => ({ SCRIPT_FILENAME: SLEEP_PHP, QUERY_STRING: `ms=30&id=${i}` }),
      timeoutMs: 60_000,
      until: pool.exited,
    });
    await sleep(1500);
    const stopAt = Date.now();
    const exit = await pool.stop('SIGTERM', 60_000);
    const result = await load;
    const before = result.outcomes.filter((o) => o.startedAt < stopAt);
    const failedBefore = before.filter((o) => !o.ok);
    const afterStop = result.outcomes.filter((o) => o.startedAt >= stopAt);
    t.diagnostic(
      `sent before the stop: ${before.length}, failed ${failedBefore.length}; sent after: ${afterStop.length}, errors ${JSON.stringify(result.errors)}`,
    );

    assert.ok(before.length >= 20, `too few requests before the stop to mean anything: ${before.length}`);
    assert.deepEqual(
      failedBefore.map((o) => `${o.i}: ${o.error ?? o.status}`),
      [],
    );
    // After the stop began a request either got an answer or failed at connect (the path is gone), never a reset.
    assert.deepEqual(
      afterStop.filter((o) => !o.ok && o.error !== 'ENOENT').map((o) => `${o.i}: ${o.error ?? o.status}`),
      [],
    );
    assert.equal(exit.code, 0, pool.stderr());
    assert.deepEqual(readdirSync(sub), []);
  } finally {
    await pool.stop().catch(() => undefined);
    removePath(sub);
  }
});

test('--keep-socket: the queue is drained too, and the path is back after the stop (refusing), with no private name left', async () => {
  const sub = tmpDir('sfts-drain-k');
  const sock = join(sub, 'k.sock');
  const pool = await startPool(['-s', sock, '-F', '1', '--keep-socket', '--kill-timeout', '60s', '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    probeParams: { SCRIPT_FILENAME: PID_PHP },
  });
  try {
    const busy = sleepRequest(sock, 1500, 0);
    await sleep(300);
    const queued = Array.from({ length: 4 }, (_, i) => sleepRequest(sock, 50, i + 1));
    await sleep(300);
    const stopped = pool.stop('SIGTERM', 60_000);
    await waitFor(() => !existsSync(sock), { timeoutMs: 10_000, what: 'the socket path to be taken away' });
    const late = await connectResult(sock);
    const results = await Promise.all([busy, ...queued]);
    const exit = await stopped;

    assert.deepEqual(
      results.filter((r) => !r.ok),
      [],
    );
    assert.equal(late, 'ENOENT');
    assert.equal(exit.code, 0, pool.stderr());
    assert.deepEqual(readdirSync(sub), ['k.sock'], 'the kept socket is not back, or a private name is left');
    assert.equal(await connectResult(sock), 'ECONNREFUSED');
  } finally {
    await pool.stop().catch(() => undefined);
    removePath(sub);
  }
});

for (const kind of ['unix', 'tcp'] as const) {
  test(`${kind}: an app that ignores FCGI_GET_VALUES (static-responder waits for a whole request): the accept is read from /proc/net, the queue drains, the stop does not wait for --kill-timeout`, async () => {
    const sub = tmpDir('sfts-drain-s');
    const target: FcgiTarget = kind === 'unix' ? { path: join(sub, 's.sock') } : { host: '127.0.0.1', port: await freePort() };
    // TCP on the wildcard address: the sentinel goes to loopback.
    const where = 'path' in target ? ['-s', target.path] : ['-a', '0.0.0.0', '-p', String(target.port)];
    const pool = await startPool([...where, '-F', '1', '--kill-timeout', '60s', '--', RESPONDER]);
    try {
      const ask = (ms: number) =>
        fcgiRequest(target, { REQUEST_METHOD: 'GET', QUERY_STRING: `sleep=${ms}` }, { timeoutMs: 60_000 }).then(
          (r) => /pid=\d+/.test(r.stdout.toString()),
          () => false,
        );
      const busy = ask(1000);
      await sleep(300);
      const queued = Array.from({ length: 4 }, () => ask(20));
      await sleep(300);
      // Had the sentinel waited for an answer, the stop would take the 60 s kill timeout: this guard is 30 s.
      const exit = await pool.stop('SIGTERM', 30_000);
      assert.deepEqual(await Promise.all([busy, ...queued]), [true, true, true, true, true]);
      assert.equal(exit.code, 0, pool.stderr());
      assert.match(pool.stderr(), /children took the accept queue/);
      assert.deepEqual(readdirSync(sub), []);
    } finally {
      await pool.stop().catch(() => undefined);
      removePath(sub);
    }
  });
}

test('the wait is bounded by --kill-timeout: a child busy for longer does not hold the stop', async () => {
  const sub = tmpDir('sfts-drain-t');
  const sock = join(sub, 't.sock');
  const pool = await startPool(['-s', sock, '-F', '1', '--kill-timeout', '1s', '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    probeParams: { SCRIPT_FILENAME: PID_PHP },
  });
  try {
    const busy = sleepRequest(sock, 20_000, 0);
    await sleep(300);
    // Queued behind the busy child: the drain has something to wait for (an empty queue needs no wait).
    const queued = sleepRequest(sock, 100, 0);
    await sleep(300);
    const exit = await pool.stop('SIGTERM', 30_000);
    const result = await busy;
    await queued;
    assert.equal(exit.code, 0, pool.stderr());
    assert.match(pool.stderr(), /no child took the accept queue of .* within 1000 ms: stopping anyway/);
    assert.equal(result.ok, false, 'the 20 s request was answered: the stop waited for it');
    assert.deepEqual(readdirSync(sub), []);
  } finally {
    await pool.stop().catch(() => undefined);
    removePath(sub);
  }
});

test('a second SIGTERM during the drain kills at once instead of waiting for the queue', async () => {
  const sub = tmpDir('sfts-drain-2');
  const sock = join(sub, '2.sock');
  const pool = await startPool(['-s', sock, '-F', '1', '--kill-timeout', '60s', '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    probeParams: { SCRIPT_FILENAME: PID_PHP },
  });
  try {
    const busy = sleepRequest(sock, 20_000, 0);
    await sleep(300);
    process.kill(pool.pid, 'SIGTERM');
    await waitFor(() => !existsSync(sock), { timeoutMs: 10_000, what: 'the drain to begin' });
    const exit = await pool.stop('SIGTERM', 15_000);
    const result = await busy;
    assert.equal(result.ok, false, 'the 20 s request was answered: the second SIGTERM did not kill');
    assert.match(pool.stderr(), /SIGTERM again: killing the children now/);
    assert.notEqual(exit.code, null, pool.stderr());
    assert.deepEqual(readdirSync(sub), [], 'the private name was left behind');
  } finally {
    await pool.stop().catch(() => undefined);
    removePath(sub);
  }
});

test('a socket path near the 107-byte limit: the private name is longer, reached through a short link, and the queue still drains', async () => {
  const sub = tmpDir('sfts-drain-n');
  const base = join(sub, 'x');
  const sock = base + 'x'.repeat(99 - Buffer.byteLength(base) - 5) + '.sock';
  // 99 bytes: its control socket (`.control` appended) still fits, the private drain name does not.
  assert.equal(Buffer.byteLength(sock), 99);
  const pool = await startPool(['-s', sock, '-F', '1', '--kill-timeout', '60s', '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'], {
    probeParams: { SCRIPT_FILENAME: PID_PHP },
  });
  try {
    const busy = sleepRequest(sock, 1000, 0);
    await sleep(300);
    const queued = Array.from({ length: 4 }, (_, i) => sleepRequest(sock, 50, i + 1));
    await sleep(300);
    const exit = await pool.stop('SIGTERM', 60_000);
    const results = await Promise.all([busy, ...queued]);
    assert.deepEqual(
      results.filter((r) => !r.ok),
      [],
    );
    assert.equal(exit.code, 0, pool.stderr());
    assert.match(pool.stderr(), /children took the accept queue/);
    assert.deepEqual(readdirSync(sub), []);
  } finally {
    await pool.stop().catch(() => undefined);
    removePath(sub);
  }
});
