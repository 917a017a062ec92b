/**
 * Non-PHP FastCGI apps from the seed page's world, spawned by spawn-fcgi-ts and reached through real
 * web servers:
 *
 * - fcgiwrap running a CGI shell script (test/fixtures/cgi/hello.cgi): `-s SOCK -F 2 -- /usr/sbin/fcgiwrap`;
 * - a Perl FCGI app (test/fixtures/perl/app.pl, libfcgi-perl) on TCP: `-a 127.0.0.1 -p PORT -F 2 -- perl app.pl`.
 *
 * Through lighttpd: ".cgi" → fcgiwrap (lighttpd passes SCRIPT_FILENAME), and the page's prefix rules on
 * the Perl pool ("/perl" without a trailing slash: the rest is PATH_INFO; "/remote_scripts/" with
 * "docroot" => "/": the whole path is SCRIPT_NAME). Through nginx (test/helpers/nginx.ts):
 * fastcgi_pass to the unix fcgiwrap pool and to the TCP Perl pool. And the page's troubleshooting note:
 * a pool whose FCGI_WEB_SERVER_ADDRS (`--web-server-addrs`) does not include the web server closes
 * lighttpd's connections unanswered.
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { countBy, diagnosticLines, httpLoad, httpRequest, quote, startLighttpd, type RunningLighttpd, fields } from '../helpers/lighttpd.js';
import { startNginx } from '../helpers/nginx.js';
import { fcgiGet, poolChildren, requireBuild, ROOT, runCli, startPool, track, untrack, type CliResult, type RunningPool } from '../helpers/pool.js';
import { freePort, isGone, removePath, signalIfAlive, tmpDir, waitFor } from '../helpers/proc.js';

const FCGIWRAP = '/usr/sbin/fcgiwrap';
const PERL = '/usr/bin/perl';

let dir: string;
let docroot: string;
let perlApp: string;
let cgiSock: string;
let perlPort: number;
let deniedPort: number;
let fcgiwrap: RunningPool;
let perl: RunningPool;
let deniedStart: CliResult;
let deniedPid: number;
let lighttpd: RunningLighttpd;

before(async () => {
  requireBuild();
  dir = tmpDir('sfts-seed-apps');
  chmodSync(dir, 0o755);
  docroot = join(dir, 'www');
  mkdirSync(docroot, { mode: 0o755 });
  copyFileSync(join(ROOT, 'test', 'fixtures', 'cgi', 'hello.cgi'), join(docroot, 'hello.cgi'));
  chmodSync(join(docroot, 'hello.cgi'), 0o755);
  writeFileSync(join(docroot, 'index.html'), 'static\n');
  perlApp = join(dir, 'app.pl');
  copyFileSync(join(ROOT, 'test', 'fixtures', 'perl', 'app.pl'), perlApp);
  cgiSock = join(dir, 'fcgiwrap.sock');
  [perlPort, deniedPort] = [await freePort(), await freePort()];

  [fcgiwrap, perl] = await Promise.all([
    startPool(['-s', cgiSock, '-F', '2', '--', FCGIWRAP]),
    startPool(['-a', '127.0.0.1', '-p', String(perlPort), '-F', '2', '--web-server-addrs', '127.0.0.1', '--', PERL, perlApp]),
  ]);
  // FCGI_WEB_SERVER_ADDRS without us: libfcgi closes every connection from 127.0.0.1, so no FastCGI
  // probe can tell when this pool serves. Started the spawn-fcgi way instead (daemon mode, -P): the
  // command returns once the children are up and prints spawn-fcgi's line for each.
  const pidFile = join(dir, 'denied.pid');
  deniedStart = await runCli(['-a', '127.0.0.1', '-p', String(deniedPort), '-F', '1', '-P', pidFile, '--web-server-addrs', '192.0.2.250', '--', PERL, perlApp]);
  assert.equal(deniedStart.code, 0, deniedStart.stderr);
  deniedPid = Number(readFileSync(pidFile, 'utf8').trim());
  track(deniedPid);

  // Prefixes first: lighttpd takes the first entry that matches, and ".cgi" would match /remote_scripts/test.cgi.
  lighttpd = await startLighttpd({
    docroot,
    config: `fastcgi.server = (
  "/perl" => (( "host" => "127.0.0.1", "port" => ${perlPort}, "check-local" => "disable" )),
  "/remote_scripts/" => (( "host" => "127.0.0.1", "port" => ${perlPort}, "check-local" => "disable", "docroot" => "/" )),
  "/denied" => (( "host" => "127.0.0.1", "port" => ${deniedPort}, "check-local" => "disable" )),
  ".cgi" => (( "socket" => ${quote(cgiSock)} ))
)`,
  });
});

after(async () => {
  await lighttpd?.stop();
  for (const pool of [fcgiwrap, perl]) if (pool !== undefined && pool.exitStatus() === undefined) await pool.stop().catch(() => undefined);
  if (deniedPid !== undefined) signalIfAlive(deniedPid, 'SIGTERM');
  removePath(dir);
});

describe('fcgiwrap and a Perl FCGI app under spawn-fcgi-ts, through lighttpd and nginx', () => {
  test('lighttpd ".cgi" → fcgiwrap pool (unix socket) runs the CGI script', async (t) => {
    diagnosticLines(t, 'lighttpd.conf:', lighttpd.configText);
    const children = fcgiwrap.childPids();
    assert.equal(children.length, 2);
    const get = await httpRequest(`${lighttpd.baseUrl}/hello.cgi?x=1`);
    assert.equal(get.status, 200, get.body);
    assert.equal(get.headers['x-fixture'], 'hello.cgi');
    const seen = fields(get.body);
    assert.equal(seen.cgi, 'sh');
    assert.ok(children.includes(Number(seen.ppid)), `the script's parent ${seen.ppid} is not a pool child (${children.join(',')})`);
    assert.equal(seen.SCRIPT_NAME, '/hello.cgi');
    assert.equal(seen.SCRIPT_FILENAME, join(docroot, 'hello.cgi'), 'lighttpd passes SCRIPT_FILENAME, which fcgiwrap runs');
    assert.equal(seen.QUERY_STRING, 'x=1');
    assert.match(seen.SERVER_SOFTWARE!, /^lighttpd\//);

    const post = await httpRequest(`${lighttpd.baseUrl}/hello.cgi`, { method: 'POST', body: 'posted=yes&n=42' });
    assert.equal(post.status, 200);
    assert.equal(fields(post.body).REQUEST_METHOD, 'POST');
    assert.equal(fields(post.body).body, 'posted=yes&n=42');

    const results = await httpLoad(`${lighttpd.baseUrl}/hello.cgi`, { concurrency: 4, requests: 20 });
    const byParent = countBy(results, 'ppid');
    t.diagnostic(`20 CGI runs, 4 at a time, per fcgiwrap pid: ${JSON.stringify(byParent)}`);
    for (const pid of Object.keys(byParent)) assert.ok(children.includes(Number(pid)), `run by ${pid}, not a pool child`);
  });

  test('lighttpd "/perl" → Perl FCGI pool (TCP): persistent processes, prefix without slash gives PATH_INFO', async (t) => {
    const children = perl.childPids();
    assert.equal(children.length, 2);
    const answer = await httpRequest(`${lighttpd.baseUrl}/perl/test.cgi?q=perl`);
    assert.equal(answer.status, 200, answer.body);
    const pid = Number(/^perl pid (\d+)$/m.exec(answer.body)?.[1]);
    assert.ok(children.includes(pid), `perl pid ${pid} is not a pool child (${children.join(',')})`);
    const seen = fields(answer.body);
    diagnosticLines(t, '/perl/test.cgi?q=perl:', answer.body);
    // The page: "In the case that the prefix is not terminated with a slash, the prefix will be handled
    // as file and "/test.cgi" would become a PATH_INFO".
    assert.equal(seen.SCRIPT_NAME, '/perl');
    assert.equal(seen.PATH_INFO, '/test.cgi');
    assert.equal(seen.QUERY_STRING, 'q=perl');

    // FastCGI keeps the process running: the same processes serve request after request.
    const results = await httpLoad(`${lighttpd.baseUrl}/perl/x`, { concurrency: 2, requests: 20 });
    const served = results.map((r) => ({ pid: Number(fields(r.body).pid), served: Number(fields(r.body).served) }));
    t.diagnostic(
      `20 requests: answers per perl pid ${JSON.stringify(countBy(results, 'pid'))}, highest per-process count ${Math.max(...served.map((s) => s.served))}`,
    );
    assert.ok(results.every((r) => r.status === 200));
    assert.ok(
      served.every((s) => children.includes(s.pid)),
      'every answer from a pool child',
    );
    assert.ok(Math.max(...served.map((s) => s.served)) >= 10, 'one process served many requests');
  });

  test('lighttpd "/remote_scripts/" with "docroot" => "/": SCRIPT_NAME is the whole path, as the page says', async (t) => {
    const answer = await httpRequest(`${lighttpd.baseUrl}/remote_scripts/test.cgi`);
    assert.equal(answer.status, 200, answer.body);
    diagnosticLines(t, '/remote_scripts/test.cgi:', answer.body);
    const seen = fields(answer.body);
    assert.equal(seen.SCRIPT_NAME, '/remote_scripts/test.cgi');
    assert.ok(seen.PATH_INFO === '(unset)' || seen.PATH_INFO === '', `no PATH_INFO expected, got ${seen.PATH_INFO}`);
    // "if "docroot" is specified then its value will be used in DOCUMENT_ROOT and SCRIPT_FILENAME".
    assert.equal(seen.DOCUMENT_ROOT, '/');
    assert.equal(seen.SCRIPT_FILENAME, '/remote_scripts/test.cgi');
  });

  test("FCGI_WEB_SERVER_ADDRS without the web server: the app closes lighttpd's connections unanswered", async (t) => {
    const children = poolChildren(deniedPid);
    t.diagnostic(`daemon-mode start: exit ${deniedStart.code}, stdout ${JSON.stringify(deniedStart.stdout)}`);
    assert.equal(children.length, 1, 'the daemonized supervisor runs one child');
    assert.equal(deniedStart.stdout, `spawn-fcgi-ts: child spawned successfully: PID: ${children[0]}\n`);
    await assert.rejects(fcgiGet({ host: '127.0.0.1', port: deniedPort }, {}, { timeoutMs: 3000 }), 'a FastCGI request from 127.0.0.1 gets no answer');
    const answer = await httpRequest(`${lighttpd.baseUrl}/denied/x`);
    t.diagnostic(`lighttpd → pool with FCGI_WEB_SERVER_ADDRS=192.0.2.250: HTTP ${answer.status}`);
    diagnosticLines(t, 'lighttpd error.log:', lighttpd.errorLog());
    assert.ok(answer.status >= 500, `expected a 5xx, got ${answer.status}`);
    // The allowed pool (FCGI_WEB_SERVER_ADDRS=127.0.0.1) served all the /perl requests above.
    assert.equal((await httpRequest(`${lighttpd.baseUrl}/perl/ok`)).status, 200);
    assert.deepEqual(poolChildren(deniedPid), children, 'the refusing app keeps running: refusing is not a crash');
  });

  test('nginx fastcgi_pass unix: → fcgiwrap pool', async () => {
    const nginx = await startNginx({ fastcgiPass: `unix:${cgiSock}`, docroot });
    try {
      const answer = await httpRequest(`${nginx.baseUrl}/hello.cgi?via=nginx`);
      assert.equal(answer.status, 200, `${answer.body}\n${nginx.errorLog()}`);
      const seen = fields(answer.body);
      assert.match(seen.SERVER_SOFTWARE!, /^nginx\//);
      assert.equal(seen.SCRIPT_FILENAME, join(docroot, 'hello.cgi'));
      assert.equal(seen.QUERY_STRING, 'via=nginx');
      assert.ok(fcgiwrap.childPids().includes(Number(seen.ppid)), `run by ${seen.ppid}, not a pool child`);
      const post = await httpRequest(`${nginx.baseUrl}/hello.cgi`, { method: 'POST', body: 'from=nginx' });
      assert.equal(fields(post.body).body, 'from=nginx');
    } finally {
      await nginx.stop();
    }
  });

  test('nginx fastcgi_pass host:port → Perl FCGI pool', async () => {
    const nginx = await startNginx({ fastcgiPass: `127.0.0.1:${perlPort}`, docroot });
    try {
      const answer = await httpRequest(`${nginx.baseUrl}/anything/here?via=nginx`);
      assert.equal(answer.status, 200, `${answer.body}\n${nginx.errorLog()}`);
      const pid = Number(/^perl pid (\d+)$/m.exec(answer.body)?.[1]);
      assert.ok(perl.childPids().includes(pid), `perl pid ${pid} is not a pool child`);
      const seen = fields(answer.body);
      assert.match(seen.SERVER_SOFTWARE!, /^nginx\//);
      assert.equal(seen.QUERY_STRING, 'via=nginx');
      assert.equal(seen.SCRIPT_FILENAME, join(docroot, 'anything/here'));
    } finally {
      await nginx.stop();
    }
  });

  test('the pools stop: exit 0, no child left', async (t) => {
    for (const [name, pool] of [
      ['fcgiwrap', fcgiwrap],
      ['perl', perl],
    ] as const) {
      const children = pool.childPids();
      const started = Date.now();
      const exit = await pool.stop();
      t.diagnostic(`${name}: ${JSON.stringify(exit)} after ${Date.now() - started} ms`);
      assert.deepEqual(exit, { code: 0, signal: null }, pool.stderr());
      await waitFor(() => children.every(isGone), { timeoutMs: 20_000, what: `${name} children to exit` });
    }
    const deniedChildren = poolChildren(deniedPid);
    process.kill(deniedPid, 'SIGTERM');
    await waitFor(() => isGone(deniedPid) && deniedChildren.every(isGone), { timeoutMs: 20_000, what: 'the daemonized supervisor and its child to exit' });
    untrack(deniedPid);
  });
});
