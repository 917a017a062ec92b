/**
 * Drain on stop through real web servers: under steady load (each client closes its connection as soon
 * as its answer arrives), SIGTERM the pool and count the failures among the requests sent before the stop
 * began (timestamped by the client).
 *
 * - unix socket, nginx and lighttpd: 0. A request the web server had not yet passed on when the path was taken
 *   away fails at connect (nginx: ENOENT in its error log, naming the request; lighttpd: 503): it never reached the
 *   socket. Those are counted apart and reported; every other failure is a queued connection reset.
 * - TCP (nginx, and straight at the socket): the sentinel guarantees the same for everything queued before
 *   it; what is left is the window between its accept and the listener's close (see src/socket/drain.ts).
 *
 * SFTS_DRAIN_CLI=/path/to/other/dist/cli.cjs runs the same scenarios against another build (e.g. main's,
 * for the "before" numbers); its assertions are then expected to fail, the diagnostics carry the numbers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fcgiLoad } from '../helpers/load.js';
import { httpRequest, quote, startLighttpd } from '../helpers/lighttpd.js';
import { startNginx } from '../helpers/nginx.js';
import { CLI, PHP_FIXTURES, READY_LINE, requireBuild, track, untrack } from '../helpers/pool.js';
import { freePort, removePath, signalIfAlive, sleep, tmpDir, waitFor } from '../helpers/proc.js';
import type { RunningWebServer } from '../helpers/web-server.js';

const cli = process.env.SFTS_DRAIN_CLI || CLI;
const SLEEP_PHP = join(PHP_FIXTURES, 'sleep.php');
const PROCS = 4;
const CLIENTS = 16;
const WORK_MS = 50;

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-drain-web');
});
after(() => removePath(dir));

interface Supervisor {
  pid: number;
  stderr(): string;
  exited: Promise<number | null>;
}

/** `node <cli> -n ...args`, resolved once it says it serves (the cli may be another build's). */
async function startSupervisor(args: string[]): Promise<Supervisor> {
  const child = spawn(process.execPath, [cli, '-n', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  track(child.pid!);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      untrack(child.pid!);
      resolve(code);
    }),
  );
  await waitFor(() => READY_LINE.test(stderr) || child.exitCode !== null, { timeoutMs: 20_000, what: 'the pool to serve' });
  if (!READY_LINE.test(stderr)) throw new Error(`the supervisor exited before serving:\n${stderr}`);
  return { pid: child.pid!, stderr: () => stderr, exited };
}

const poolArgs = (socket: string[]) => [...socket, '-F', String(PROCS), '--kill-timeout', '60s', '--env', 'PHP_FCGI_MAX_REQUESTS=0', '--', 'php-cgi'];

interface Sent {
  i: number;
  startedAt: number;
  ok: boolean;
  failure?: string;
}

interface StopResult {
  before: Sent[];
  failedBefore: Sent[];
  /** Failed before the stop because the web server's connect came after the path was gone. */
  neverReached: Sent[];
  afterCount: number;
  failedAfter: number;
  exitCode: number | null;
  line: string;
}

/** HTTP load from CLIENTS loops until the supervisor has exited, SIGTERM after `warmMs`. */
async function stopUnderHttpLoad(web: RunningWebServer, supervisor: Supervisor, neverReached: (s: Sent, errorLog: string) => boolean): Promise<StopResult> {
  let running = true;
  let next = 0;
  const sent: Sent[] = [];
  const loop = async () => {
    while (running) {
      const i = next++;
      const startedAt = Date.now();
      try {
        const answer = await httpRequest(`${web.baseUrl}/sleep.php?ms=${WORK_MS}&id=${i}`, { timeoutMs: 60_000 });
        sent.push({
          i,
          startedAt,
          ok: answer.status === 200 && /busy=/.test(answer.body),
          failure: answer.status === 200 ? undefined : `HTTP ${answer.status}`,
        });
      } catch (error) {
        sent.push({ i, startedAt, ok: false, failure: (error as Error).message });
      }
    }
  };
  const loops = Array.from({ length: CLIENTS }, loop);
  await sleep(1500);
  const stopAt = Date.now();
  process.kill(supervisor.pid, 'SIGTERM');
  const exitCode = await supervisor.exited;
  await sleep(200);
  running = false;
  await Promise.all(loops);
  const log = web.errorLog();
  const before = sent.filter((s) => s.startedAt < stopAt);
  const failedBefore = before.filter((s) => !s.ok);
  const notReached = failedBefore.filter((s) => neverReached(s, log));
  const afterStop = sent.filter((s) => s.startedAt >= stopAt);
  const failedAfter = afterStop.filter((s) => !s.ok).length;
  const why = (list: Sent[]) =>
    JSON.stringify(
      list.reduce<Record<string, number>>((counts, s) => ({ ...counts, [s.failure ?? 'bad body']: (counts[s.failure ?? 'bad body'] ?? 0) + 1 }), {}),
    );
  const line = `sent before the stop ${before.length}, failed ${failedBefore.length} ${why(failedBefore)} (of which never reached the socket: ${notReached.length}); sent after ${afterStop.length}, failed ${failedAfter} ${why(afterStop.filter((s) => !s.ok))}; exit ${exitCode}`;
  return { before, failedBefore, neverReached: notReached, afterCount: afterStop.length, failedAfter, exitCode, line };
}

/** nginx names the request in its error line: `connect() to ... failed (2: No such file or directory) ... request: "GET /sleep.php?...&id=N`. */
const nginxLogged =
  (reason: RegExp) =>
  (s: Sent, errorLog: string): boolean =>
    new RegExp(`${reason.source}.*[?&]id=${s.i}\\b`).test(errorLog);

function assertNoneLost(result: StopResult, stderr: string): void {
  assert.ok(result.before.length >= 30, `too few requests before the stop to mean anything: ${result.line}`);
  const lost = result.failedBefore.filter((s) => !result.neverReached.includes(s));
  assert.deepEqual(
    lost.map((s) => `${s.i}: ${s.failure}`),
    [],
    `a request that reached the socket before the stop failed (${result.line})`,
  );
  assert.equal(result.exitCode, 0, stderr);
}

test(`nginx, unix socket, ${PROCS} php-cgi, ${CLIENTS} clients: SIGTERM under load, no request sent before the stop is lost`, async (t) => {
  const sock = join(dir, 'nginx.sock');
  const supervisor = await startSupervisor(poolArgs(['-s', sock]));
  const nginx = await startNginx({ fastcgiPass: `unix:${sock}`, docroot: PHP_FIXTURES });
  t.after(() => nginx.stop());
  t.after(() => signalIfAlive(supervisor.pid, 'SIGKILL'));
  const result = await stopUnderHttpLoad(nginx, supervisor, nginxLogged(/No such file or directory/));
  t.diagnostic(`nginx unix: ${result.line}`);
  assertNoneLost(result, supervisor.stderr());
});

test(`lighttpd, unix socket, ${PROCS} php-cgi, ${CLIENTS} clients: SIGTERM under load, no request sent before the stop is lost`, async (t) => {
  const sock = join(dir, 'lighttpd.sock');
  const supervisor = await startSupervisor(poolArgs(['-s', sock]));
  const lighttpd = await startLighttpd({
    docroot: PHP_FIXTURES,
    config: `fastcgi.server = ( ".php" => (( "socket" => ${quote(sock)}, "check-local" => "disable", "disable-time" => 1 )) )`,
  });
  t.after(() => lighttpd.stop());
  t.after(() => signalIfAlive(supervisor.pid, 'SIGKILL'));
  // lighttpd answers 503 when it cannot connect (the path is gone, then the backend is disabled for a
  // second) and 500 when a connection it had made is reset: a 503 never reached the socket.
  const result = await stopUnderHttpLoad(lighttpd, supervisor, (s) => s.failure === 'HTTP 503');
  const log = lighttpd.errorLog();
  const resets = (log.match(/reset|prematurely|Broken pipe/gi) ?? []).length;
  t.diagnostic(`lighttpd unix: ${result.line}; lighttpd logged ${resets} resets`);
  assertNoneLost(result, supervisor.stderr());
  assert.equal(resets, 0, `lighttpd saw a reset:\n${log}`);
  assert.equal(result.exitCode, 0, supervisor.stderr());
});

test(`nginx, TCP, ${PROCS} php-cgi, ${CLIENTS} clients: SIGTERM under load, failures among requests sent before the stop (measured)`, async (t) => {
  const port = await freePort();
  const supervisor = await startSupervisor(poolArgs(['-a', '127.0.0.1', '-p', String(port)]));
  const nginx = await startNginx({ fastcgiPass: `127.0.0.1:${port}`, docroot: PHP_FIXTURES });
  t.after(() => nginx.stop());
  t.after(() => signalIfAlive(supervisor.pid, 'SIGKILL'));
  const result = await stopUnderHttpLoad(nginx, supervisor, nginxLogged(/Connection refused/));
  t.diagnostic(`nginx tcp: ${result.line}`);
  assertNoneLost(result, supervisor.stderr());
});

test(`TCP straight at the socket, ${PROCS} php-cgi, ${CLIENTS} clients: no request sent before the stop fails`, async (t) => {
  const port = await freePort();
  const supervisor = await startSupervisor(poolArgs(['-a', '127.0.0.1', '-p', String(port)]));
  t.after(() => signalIfAlive(supervisor.pid, 'SIGKILL'));
  const exited = supervisor.exited;
  const load = fcgiLoad({
    target: { host: '127.0.0.1', port },
    concurrency: CLIENTS,
    durationMs: 60_000,
    params: (i) => ({ SCRIPT_FILENAME: SLEEP_PHP, QUERY_STRING: `ms=${WORK_MS}&id=${i}` }),
    timeoutMs: 60_000,
    until: exited,
  });
  await sleep(1500);
  const stopAt = Date.now();
  process.kill(supervisor.pid, 'SIGTERM');
  const exitCode = await exited;
  const result = await load;
  const beforeStop = result.outcomes.filter((o) => o.startedAt < stopAt);
  const failedBefore = beforeStop.filter((o) => !o.ok);
  const afterStop = result.outcomes.filter((o) => o.startedAt >= stopAt);
  t.diagnostic(
    `fcgi tcp: sent before the stop ${beforeStop.length}, failed ${failedBefore.length}; sent after ${afterStop.length}, failed ${afterStop.filter((o) => !o.ok).length}; errors ${JSON.stringify(result.errors)}; exit ${exitCode}`,
  );
  assert.ok(beforeStop.length >= 30);
  assert.deepEqual(
    failedBefore.map((o) => `${o.i}: ${o.error ?? o.status}`),
    [],
  );
  assert.equal(exitCode, 0, supervisor.stderr());
});
