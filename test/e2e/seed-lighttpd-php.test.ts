/**
 * The seed page (lighttpd's mod_fastcgi docs), "External Spawning": lighttpd talks to a php-cgi pool
 * that spawn-fcgi-ts runs on a unix socket (`-s SOCK -F 2 -- php-cgi`), with
 * `fastcgi.server = ( ".php" => (( "socket" => SOCK, "check-local" => "disable" )) )`.
 *
 * - requests through Debian's real lighttpd are answered by the pool's children, GET and POST;
 * - PATH_INFO / SCRIPT_NAME / PHP_SELF as the page's "Configuring PHP" section describes, with
 *   `"broken-scriptfilename" => "enable"` (and without it, for comparison);
 * - the supervisor's SIGHUP rolling restart under lighttpd traffic: no request fails, every child replaced;
 * - the pool stopped: lighttpd answers 503; started again on the same socket: lighttpd serves again.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { countBy, diagnosticLines, httpLoad, httpRequest, quote, startLighttpd, type RunningLighttpd, fields } from '../helpers/lighttpd.js';
import { requireBuild, startPool, type RunningPool } from '../helpers/pool.js';
import { isGone, removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const PHP_CGI = '/usr/bin/php-cgi';

/** What PHP sees: the CGI variables after php-cgi's own cgi.fix_pathinfo (on by default). */
const INFO_PHP = `<?php
header('Content-Type: text/plain');
if (isset($_GET['us'])) usleep((int)$_GET['us']);
foreach (['SCRIPT_NAME', 'PATH_INFO', 'PHP_SELF', 'SCRIPT_FILENAME', 'ORIG_SCRIPT_FILENAME', 'DOCUMENT_ROOT',
          'QUERY_STRING', 'REQUEST_METHOD', 'GATEWAY_INTERFACE', 'SERVER_SOFTWARE', 'SERVER_ADDR'] as $name) {
  echo $name, '=', $_SERVER[$name] ?? '(unset)', "\\n";
}
echo 'pid=', getmypid(), "\\n";
echo 'body=', file_get_contents('php://input'), "\\n";
`;

let dir: string;
let docroot: string;
let sock: string;
let pool: RunningPool;
let lighttpd: RunningLighttpd;

const startPhpPool = () => startPool(['-s', sock, '-F', '2', '--', PHP_CGI]);

before(async () => {
  requireBuild();
  dir = tmpDir('sfts-seed-php');
  docroot = join(dir, 'www');
  mkdirSync(join(docroot, 'plain'), { recursive: true });
  writeFileSync(join(docroot, 'test.php'), INFO_PHP);
  writeFileSync(join(docroot, 'plain', 'test.php'), INFO_PHP);
  sock = join(dir, 'php.sock');
  pool = await startPhpPool();
  // The page's setup, plus the same backend without broken-scriptfilename under /plain/ for comparison.
  lighttpd = await startLighttpd({
    docroot,
    config: `fastcgi.server = ( ".php" => (( "socket" => ${quote(sock)}, "check-local" => "disable", "broken-scriptfilename" => "enable", "disable-time" => 1 )) )
$HTTP["url"] =~ "^/plain/" {
  fastcgi.server = ( ".php" => (( "socket" => ${quote(sock)}, "check-local" => "disable", "disable-time" => 1 )) )
}`,
  });
});

after(async () => {
  await lighttpd?.stop();
  if (pool !== undefined && pool.exitStatus() === undefined) await pool.stop().catch(() => undefined);
  removePath(dir);
});

describe('lighttpd → spawn-fcgi-ts php-cgi pool on a unix socket (the seed page setup)', () => {
  test('GET and POST through lighttpd are answered by the pool children', async (t) => {
    diagnosticLines(t, 'lighttpd.conf:', lighttpd.configText);
    const children = pool.childPids();
    assert.equal(children.length, 2, `two php-cgi children expected: ${children.join(',')}`);

    const get = await httpRequest(`${lighttpd.baseUrl}/test.php?x=1&y=two`);
    assert.equal(get.status, 200, get.body);
    assert.match(String(get.headers['content-type']), /^text\/plain/);
    const seen = fields(get.body);
    assert.ok(children.includes(Number(seen.pid)), `answered by ${seen.pid}, pool children ${children.join(',')}`);
    assert.equal(seen.QUERY_STRING, 'x=1&y=two');
    assert.equal(seen.REQUEST_METHOD, 'GET');
    assert.equal(seen.GATEWAY_INTERFACE, 'CGI/1.1');
    assert.match(seen.SERVER_SOFTWARE!, /^lighttpd\/1\.4\./);
    assert.equal(seen.SERVER_ADDR, '127.0.0.1');
    assert.equal(seen.DOCUMENT_ROOT, docroot);

    const payload = 'name=spawn-fcgi-ts&' + 'z'.repeat(100_000);
    const post = await httpRequest(`${lighttpd.baseUrl}/test.php`, {
      method: 'POST',
      body: payload,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(post.status, 200);
    assert.equal(fields(post.body).REQUEST_METHOD, 'POST');
    assert.equal(fields(post.body).body, payload, 'the POST body reaches php intact through lighttpd and the pool');

    // 4 clients at once, each php request 20 ms: both children must take connections from the shared socket.
    const results = await httpLoad(`${lighttpd.baseUrl}/test.php?us=20000`, { concurrency: 4, requests: 40 });
    const byPid = countBy(results, 'pid');
    t.diagnostic(`40 requests, 4 at a time, answers per child pid: ${JSON.stringify(byPid)}`);
    assert.deepEqual(
      Object.keys(byPid)
        .map(Number)
        .sort((a, b) => a - b),
      children,
      'every answer from a pool child, and both children served',
    );
  });

  test('PATH_INFO with "broken-scriptfilename" => "enable": PHP gets both PATH_INFO and PHP_SELF', async (t) => {
    const answer = await httpRequest(`${lighttpd.baseUrl}/test.php/extra/path`);
    assert.equal(answer.status, 200, answer.body);
    const seen = fields(answer.body);
    diagnosticLines(t, '/test.php/extra/path (broken-scriptfilename):', answer.body);
    assert.equal(seen.SCRIPT_NAME, '/test.php');
    assert.equal(seen.PATH_INFO, '/extra/path');
    assert.equal(seen.PHP_SELF, '/test.php/extra/path');
    assert.equal(seen.SCRIPT_FILENAME, join(docroot, 'test.php'), 'php-cgi (cgi.fix_pathinfo=1) split the path');
    // What lighttpd actually sent: the "broken" SCRIPT_FILENAME with the path info appended, kept by PHP.
    assert.equal(seen.ORIG_SCRIPT_FILENAME, join(docroot, 'test.php/extra/path'));
  });

  test('PATH_INFO without broken-scriptfilename: lighttpd sends the real file name', async (t) => {
    const answer = await httpRequest(`${lighttpd.baseUrl}/plain/test.php/extra/path`);
    assert.equal(answer.status, 200, answer.body);
    const seen = fields(answer.body);
    diagnosticLines(t, '/plain/test.php/extra/path (no broken-scriptfilename):', answer.body);
    assert.equal(seen.SCRIPT_NAME, '/plain/test.php');
    assert.equal(seen.PATH_INFO, '/extra/path');
    assert.equal(seen.SCRIPT_FILENAME, join(docroot, 'plain', 'test.php'));
    assert.equal(seen.ORIG_SCRIPT_FILENAME, '(unset)', 'nothing for php-cgi to fix: SCRIPT_FILENAME was the file itself');
    // The page (2008, PHP 5) says PHP_SELF would be missing this way; PHP 8.2 builds it from SCRIPT_NAME + PATH_INFO.
    t.diagnostic(`PHP_SELF without broken-scriptfilename: ${seen.PHP_SELF}`);
    assert.equal(seen.PHP_SELF, '/plain/test.php/extra/path');
  });

  test('SIGHUP rolling restart while lighttpd sends traffic: no request fails, every child is replaced', async (t) => {
    const before = pool.childPids();
    let done = false;
    let startedAfterOld = 0;
    let oldGone = false;
    // Traffic until 8 requests have been sent once every old child is gone (counted as they start).
    const load = httpLoad(`${lighttpd.baseUrl}/test.php?us=5000`, { concurrency: 4, until: () => done || (oldGone && ++startedAfterOld > 8) });
    await sleep(300);
    process.kill(pool.pid, 'SIGHUP');
    await waitFor(() => /rolling restart done/.test(pool.stderr()), { timeoutMs: 30_000, what: 'the rolling restart to finish' });
    await waitFor(() => before.every(isGone), { timeoutMs: 30_000, what: 'the old children to exit' }).finally(() => {
      done = !before.every(isGone);
    });
    const oldGoneAt = Date.now();
    oldGone = true;
    const results = await load;
    const after = pool.childPids();
    const failures = results.filter((r) => r.status !== 200);
    t.diagnostic(`${results.length} requests during the rolling restart, ${failures.length} failed; children ${before.join(',')} → ${after.join(',')}`);
    assert.ok(results.length >= 8, `too few requests to mean anything: ${results.length}`);
    assert.deepEqual(
      failures.map((f) => `${f.status} ${f.error ?? ''} ${f.body.slice(0, 80)}`),
      [],
    );
    assert.equal(after.length, 2);
    assert.deepEqual(
      after.filter((pid) => before.includes(pid)),
      [],
      'every child replaced',
    );
    // Requests sent once the old children were gone can only have been answered by the new ones.
    const late = results.filter((r) => (r.startedAt ?? 0) > oldGoneAt);
    const pidsSeenAtEnd = countBy(late, 'pid');
    t.diagnostic(`answers to the ${late.length} requests sent after the old children were gone came from ${JSON.stringify(pidsSeenAtEnd)}`);
    assert.ok(late.length >= 4, `requests sent after the restart: ${late.length}`);
    for (const pid of Object.keys(pidsSeenAtEnd)) assert.ok(after.includes(Number(pid)), `late answer from ${pid}, not a new child`);
  });

  test('pool stopped: lighttpd answers 503; pool started again on the same socket: lighttpd serves again', async (t) => {
    const exit = await pool.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    const down = await httpRequest(`${lighttpd.baseUrl}/test.php`);
    assert.equal(down.status, 503, `with the pool stopped lighttpd should answer 503, got ${down.status}`);

    const startedAt = Date.now();
    pool = await startPhpPool();
    const children = pool.childPids();
    // lighttpd disabled the backend after the failed connect ("disable-time" => 1): it comes back after that.
    const back = await waitFor(
      async () => {
        const answer = await httpRequest(`${lighttpd.baseUrl}/test.php`);
        return answer.status === 200 ? answer : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'lighttpd to use the restarted pool' },
    );
    t.diagnostic(`lighttpd served again ${Date.now() - startedAt} ms after the pool was started again`);
    assert.ok(children.includes(Number(fields(back.body).pid)), 'answered by a child of the new pool');
  });
});
