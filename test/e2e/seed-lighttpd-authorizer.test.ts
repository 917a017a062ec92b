/**
 * The seed page's authorizer mode: a FastCGI authorizer written in C against libfcgi (the page's
 * skeleton: test/fixtures/authorizer.c, built here with `cc ... -lfcgi`), spawned by spawn-fcgi-ts with
 * `--kill-signal USR1` (the page: "Applications, which link libfcgi, need to be killed with SIGUSR1"),
 * and lighttpd with
 *
 *   fastcgi.server = ( "/docs/" => (( "socket" => SOCK, "mode" => "authorizer",
 *                                     "docroot" => PRIVATE, "check-local" => "disable" )) )
 *
 * - an allowed request gets the static file from the authorizer's docroot, a denied one the
 *   authorizer's 403;
 * - stopping the pool (SIGTERM to the supervisor) sends USR1: a request in flight still completes, the
 *   children leave FCGI_Accept and exit 0, the supervisor exits 0 long before the kill timeout;
 * - for contrast, a kill signal that libfcgi does not catch (INT) kills the request in flight.
 *   (Debian's libfcgi 2.4.2 catches SIGTERM as well as SIGUSR1, so the default TERM would also be
 *   graceful here; the page's advice is for libfcgi builds that catch only SIGUSR1.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { diagnosticLines, httpRequest, quote, startLighttpd, type RunningLighttpd } from '../helpers/lighttpd.js';
import { requireBuild, ROOT, startPool, type RunningPool } from '../helpers/pool.js';
import { isGone, removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const SOURCE = join(ROOT, 'test', 'fixtures', 'authorizer.c');
const KILL_TIMEOUT_MS = 30_000;
/** How long the authorizer holds the request that is in flight when the pool is stopped (USR1 case). */
const HOLD_MS = 2500;
/** The INT case holds longer: a stop that ends well before the hold would is one that did not wait for it. */
const LONG_HOLD_MS = 20_000;
const SECRET = 'secret content: only with token=ok\n';

let dir: string;
let authorizer: string;
let privateRoot: string;
let sock: string;
let pool: RunningPool | undefined;
let lighttpd: RunningLighttpd;

const startAuthorizer = (extra: string[]) => startPool(['-s', sock, '-F', '2', '--kill-timeout', `${KILL_TIMEOUT_MS}ms`, ...extra, '--', authorizer]);

before(async () => {
  requireBuild();
  dir = tmpDir('sfts-seed-auth');
  authorizer = join(dir, 'authorizer');
  const cc = spawnSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', authorizer, SOURCE, '-lfcgi'], { encoding: 'utf8' });
  assert.equal(cc.status, 0, `cc ${SOURCE} -lfcgi failed (is libfcgi-dev installed?): ${cc.stderr}`);
  const docroot = join(dir, 'www');
  mkdirSync(docroot);
  writeFileSync(join(docroot, 'index.html'), 'public page\n');
  // The authorizer's docroot is outside server.document-root, as the page recommends.
  privateRoot = join(dir, 'private');
  mkdirSync(join(privateRoot, 'docs'), { recursive: true });
  writeFileSync(join(privateRoot, 'docs', 'secret.txt'), SECRET);
  sock = join(dir, 'auth.sock');
  pool = await startAuthorizer(['--kill-signal', 'USR1']);
  lighttpd = await startLighttpd({
    docroot,
    config: `fastcgi.server = ( "/docs/" => (( "socket" => ${quote(sock)}, "mode" => "authorizer", "docroot" => ${quote(privateRoot)}, "check-local" => "disable" )) )`,
  });
});

/** Names of the signals a process has a handler for (SigCgt in /proc/<pid>/status). */
function signalsCaught(pid: number): string[] {
  const mask = BigInt(`0x${/^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
  return Object.entries(osConstants.signals)
    .filter(([, n]) => (mask >> BigInt(n - 1)) & 1n)
    .map(([name]) => name);
}

/**
 * A request that the authorizer holds for `holdMs`, and SIGTERM to the supervisor 300 ms after it holds it:
 * the supervisor's exit, how long it took, the HTTP answer of that request, the supervisor's output.
 */
async function stopDuringRequest(t: { diagnostic(message: string): void }, holdMs = HOLD_MS) {
  const current = pool!;
  const children = current.childPids();
  assert.equal(children.length, 2);
  // lighttpd may have marked the socket down while no pool was there: wait until it asks this one.
  await waitFor(async () => (await httpRequest(`${lighttpd.baseUrl}/docs/secret.txt?token=wrong`)).status === 403, {
    timeoutMs: 30_000,
    intervalMs: 200,
    what: 'lighttpd to reach the authorizer pool',
  });
  const inFlight = httpRequest(`${lighttpd.baseUrl}/docs/secret.txt?token=ok&sleep=${holdMs}`, { timeoutMs: holdMs + 30_000 }).catch((error: Error) => ({
    status: 0,
    body: error.message,
  }));
  // The authorizer says on its stderr (relayed by the supervisor) when it holds the request.
  await waitFor(() => /holding a request for/.test(current.stderr()), { timeoutMs: 30_000, what: 'the authorizer to hold the request' });
  const heldAt = Date.now();
  await sleep(300);
  const stopStarted = Date.now();
  /** What was left of the held request when the stop began. */
  const remainingMs = holdMs - (stopStarted - heldAt);
  const exit = await current.stop('SIGTERM', KILL_TIMEOUT_MS + 5000);
  const stopMs = Date.now() - stopStarted;
  const answer = await inFlight;
  const held = current.stderr().match(/holding a request for/g)?.length ?? 0;
  assert.equal(held, 1, 'exactly one request was held');
  const stderr = current.stderr();
  diagnosticLines(t, 'supervisor output:', stderr);
  t.diagnostic(
    `supervisor exited ${JSON.stringify(exit)} ${stopMs} ms after SIGTERM (${remainingMs} ms of the held request were left; kill timeout ${KILL_TIMEOUT_MS} ms); request in flight: HTTP ${answer.status} ${answer.body.slice(0, 60).trim()}`,
  );
  assert.deepEqual(exit, { code: 0, signal: null });
  for (const pid of children) assert.ok(isGone(pid), `child ${pid} still running`);
  assert.doesNotMatch(stderr, /SIGKILL(?! in [\d.]+ m?s to what is left)/, 'no escalation to SIGKILL (the stop line only announces it)');
  return { exit, stopMs, remainingMs, answer, stderr, children };
}

after(async () => {
  await lighttpd?.stop();
  if (pool !== undefined && pool.exitStatus() === undefined) await pool.stop().catch(() => undefined);
  removePath(dir);
});

describe('lighttpd "mode" => "authorizer" with a libfcgi authorizer pool', () => {
  test("allowed: the file from the authorizer docroot; denied: the authorizer's 403", async (t) => {
    diagnosticLines(t, 'lighttpd.conf:', lighttpd.configText);
    const children = pool!.childPids();
    assert.equal(children.length, 2);

    const allowed = await httpRequest(`${lighttpd.baseUrl}/docs/secret.txt?token=ok`);
    assert.equal(allowed.status, 200, allowed.body);
    assert.equal(allowed.body, SECRET);
    assert.match(String(allowed.headers['content-type']), /^text\/plain/);

    const denied = await httpRequest(`${lighttpd.baseUrl}/docs/secret.txt?token=wrong`);
    assert.equal(denied.status, 403);
    const decidedBy = Number(/denied by authorizer pid (\d+)/.exec(denied.body)?.[1]);
    assert.ok(children.includes(decidedBy), `403 body from a pool child expected, got: ${denied.body}`);
    assert.ok(!denied.body.includes('secret'), 'the file is not sent with a 403');

    const noQuery = await httpRequest(`${lighttpd.baseUrl}/docs/secret.txt`);
    assert.equal(noQuery.status, 403, 'no QUERY_STRING: denied');

    const missing = await httpRequest(`${lighttpd.baseUrl}/docs/missing.txt?token=ok`);
    assert.equal(missing.status, 404, 'allowed, but no such file in the authorizer docroot');

    const publicPage = await httpRequest(`${lighttpd.baseUrl}/index.html`);
    assert.equal(publicPage.status, 200);
    assert.equal(publicPage.body, 'public page\n', 'outside /docs/ the authorizer is not asked');
  });

  test('the libfcgi children catch SIGUSR1 (and, in this libfcgi build, SIGTERM) but not SIGINT', async (t) => {
    for (const pid of pool!.childPids()) {
      const caught = signalsCaught(pid);
      t.diagnostic(`child ${pid} catches: ${caught.join(' ')}`);
      assert.ok(caught.includes('SIGUSR1'), "libfcgi installs its SIGUSR1 handler (the page's kill-signal advice)");
      assert.ok(!caught.includes('SIGINT'), 'SIGINT keeps its default action');
    }
  });

  test('stop with --kill-signal USR1: the request in flight completes, children exit 0, supervisor exits 0 well before the kill timeout', async (t) => {
    const run = await stopDuringRequest(t);
    assert.match(run.stderr, /sending SIGUSR1 to 2 children/);
    assert.equal(run.answer.status, 200, `the request in flight was allowed and served: ${run.answer.body}`);
    assert.equal(run.answer.body, SECRET);
    // It waited for the rest of the request (the 200 with the file says so), and not for the kill
    // timeout (no SIGKILL in the log, checked in stopDuringRequest, and the exit came before it).
    assert.ok(run.stopMs < KILL_TIMEOUT_MS, `stop took ${run.stopMs} ms, not before the ${KILL_TIMEOUT_MS} ms kill timeout`);
    for (const pid of run.children) {
      assert.match(
        run.stderr,
        new RegExp(`authorizer ${pid}: FCGI_Accept returned -1, exiting 0`),
        `child ${pid} did not leave through libfcgi's SIGUSR1 path`,
      );
    }
  });

  test('for contrast, --kill-signal INT (which libfcgi does not catch) kills the request in flight', async (t) => {
    pool = await startAuthorizer(['--kill-signal', 'INT']);
    const run = await stopDuringRequest(t, LONG_HOLD_MS);
    assert.match(run.stderr, /sending SIGINT to 2 children/);
    assert.notEqual(run.answer.status, 200, 'SIGINT does not let libfcgi finish the request');
    // Waiting for the request would take the rest of the 20 s hold: an exit in under half of it did not wait.
    assert.ok(run.stopMs < LONG_HOLD_MS / 2, `SIGINT kills at once, without waiting for the request (${run.stopMs} ms, ${run.remainingMs} ms of it were left)`);
    assert.doesNotMatch(run.stderr, /FCGI_Accept returned -1/, "libfcgi's clean path was not taken");
  });
});
