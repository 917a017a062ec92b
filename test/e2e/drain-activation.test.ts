/**
 * Drain on stop with socket activation: the socket belongs to whoever passed it (systemd), outlives the
 * supervisor, and so does its accept queue. A stop must leave that queue untouched (no rename, no
 * sentinel) so that the next instance answers it: a `systemctl restart`-style hand-over.
 *
 * The fd holder is this test process, as systemd would be: it binds the socket (without listening: the
 * children's helper calls listen(2) on it), passes it as fd 3 with LISTEN_FDS/LISTEN_PID to instance 1,
 * keeps it while instance 1 stops, and passes the same socket to instance 2. Clients keep sending the
 * whole time; every request is answered, including those that waited in the queue with no instance running.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createServerHandle } from '../../src/socket/socket.js';
import { fcgiLoad } from '../helpers/load.js';
import { CLI, PHP_FIXTURES, READY_LINE, requireBuild, track, untrack } from '../helpers/pool.js';
import { isGone, removePath, signalIfAlive, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const SLEEP_PHP = join(PHP_FIXTURES, 'sleep.php');

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-drain-act');
});
after(() => removePath(dir));

interface Instance {
  pid: number;
  stderr(): string;
  exited: Promise<number | null>;
}

/** One supervisor instance with `fd` passed as its fd 3, the way systemd passes a socket unit's socket. */
async function startInstance(fd: number): Promise<Instance> {
  const script = 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=fcgi exec "$0" "$@"';
  const child = spawn(
    '/bin/sh',
    ['-c', script, process.execPath, CLI, '-n', '-F', '2', '--kill-timeout', '60s', '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'],
    {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    },
  );
  track(child.pid!);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      untrack(child.pid!);
      resolve(code);
    }),
  );
  await waitFor(() => READY_LINE.test(stderr) || child.exitCode !== null, { timeoutMs: 20_000, what: 'the instance to serve' });
  if (!READY_LINE.test(stderr)) throw new Error(`the instance exited before serving:\n${stderr}`);
  return { pid: child.pid!, stderr: () => stderr, exited };
}

test('restart hand-over on a passed socket: instance 1 stops, instance 2 starts, every request sent meanwhile is answered', async (t) => {
  const sock = join(dir, 'activated.sock');
  const handle = createServerHandle(sock, -1, -1);
  if (typeof handle === 'number') throw new Error(`bind ${sock}: ${handle}`);
  t.after(() => handle.close());

  const first = await startInstance(handle.fd);
  t.after(() => signalIfAlive(first.pid, 'SIGKILL'));
  let stopLoad!: () => void;
  const loadDone = new Promise<void>((resolve) => {
    stopLoad = resolve;
  });
  const load = fcgiLoad({
    target: { path: sock },
    concurrency: 8,
    durationMs: 120_000,
    params: (i) => ({ SCRIPT_FILENAME: SLEEP_PHP, QUERY_STRING: `ms=30&id=${i}` }),
    timeoutMs: 60_000,
    until: loadDone,
  });
  await sleep(1000);

  process.kill(first.pid, 'SIGTERM');
  assert.equal(await first.exited, 0, first.stderr());
  const gapStart = Date.now();
  assert.ok(existsSync(sock), "the passed socket's path was taken away");
  assert.doesNotMatch(first.stderr(), /children took the accept queue/, 'instance 1 drained a queue that belongs to the next instance');
  // Connections made now wait in the queue: nobody accepts until instance 2's children do.
  await sleep(500);

  const second = await startInstance(handle.fd);
  t.after(() => signalIfAlive(second.pid, 'SIGKILL'));
  await sleep(1000);
  stopLoad();
  const result = await load;
  process.kill(second.pid, 'SIGTERM');
  assert.equal(await second.exited, 0, second.stderr());

  const inGap = result.outcomes.filter((o) => o.startedAt >= gapStart && o.ok && /pid=/.test(o.body ?? ''));
  t.diagnostic(
    `${result.outcomes.length} requests, ${result.ok} answered, errors ${JSON.stringify(result.errors)}; ${inGap.length} sent while no instance ran or after`,
  );
  assert.deepEqual(result.errors, {}, 'a request was lost in the hand-over');
  assert.ok(result.outcomes.length >= 40, `too few requests: ${result.outcomes.length}`);
  assert.ok(inGap.length >= 8, 'no request was sent while instance 1 was gone');
  assert.ok(isGone(first.pid));
});
