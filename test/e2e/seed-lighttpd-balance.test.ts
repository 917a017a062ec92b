/**
 * The seed page's "Load-Balancing": one ".php" extension with two FastCGI backends on TCP,
 *
 *   fastcgi.server = ( ".php" => (( "host" => A, "port" => 9000 ), ( "host" => B, "port" => 9000 )) )
 *
 * each backend a separate `spawn-fcgi-ts -a <addr> -p 9000` php-cgi pool on its own "host": a network
 * namespace with a veth pair to the root namespace, created and removed by the test (private
 * 10.201.<n>.0/30 addresses that exist only on those veths). lighttpd runs in the root namespace.
 * If namespaces are not permitted here, the pools bind 127.0.0.2 and 127.0.0.3 instead (said in a
 * diagnostic).
 *
 * - both pools get traffic (answers counted per pool by the `--env POOL=a|b` marker);
 * - one pool's supervisor stopped (SIGTERM): lighttpd keeps serving from the other; after the stop
 *   plus lighttpd's disable-time every request succeeds;
 * - the pool started again: lighttpd sends it traffic again;
 * - the namespaces are gone afterwards (`ip netns list`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { countBy, diagnosticLines, httpLoad, httpRequest, startLighttpd, type RunningLighttpd } from '../helpers/lighttpd.js';
import { createHosts, listNamespaces, ourNamespaces, removeAllHosts, startPoolOn, type BackendHost, type HostPool } from '../helpers/netns.js';
import { requireBuild } from '../helpers/pool.js';
import { freePort, isGone, removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const PHP_CGI = '/usr/bin/php-cgi';
/** The backends' port: 9000 on their own hosts; on the loopback fallback, a port free on 127.0.0.1. */
let PORT = 9000;
/** lighttpd's "disable-time" for a backend that refused a connection, in seconds. */
const DISABLE_TIME = 2;
/** Clients sending requests at once during the failover. */
const CLIENTS = 6;

const LB_PHP = `<?php
header('Content-Type: text/plain');
if (isset($_GET['us'])) usleep((int)$_GET['us']);
echo 'pool=', getenv('POOL'), "\\n";
echo 'pid=', getmypid(), "\\n";
`;

let dir: string;
let docroot: string;
let script: string;
let hosts: BackendHost[];
let fallbackReason: string | undefined;
const pools = new Map<string, HostPool>();
let lighttpd: RunningLighttpd;

const startBackend = async (host: BackendHost): Promise<HostPool> => {
  const pool = await startPoolOn(host, PORT, ['-F', '2', '--env', `POOL=${host.label}`, '--', PHP_CGI], {
    procs: 2,
    probeParams: { SCRIPT_FILENAME: script },
  });
  pools.set(host.label, pool);
  return pool;
};

before(async () => {
  requireBuild();
  dir = tmpDir('sfts-seed-lb');
  docroot = join(dir, 'www');
  mkdirSync(docroot);
  script = join(docroot, 'lb.php');
  writeFileSync(script, LB_PHP);
  ({ hosts, fallbackReason } = createHosts(['a', 'b']));
  if (fallbackReason !== undefined) PORT = await freePort();
  await Promise.all(hosts.map(startBackend));
  const backends = hosts.map((h) => `( "host" => "${h.address}", "port" => ${PORT}, "check-local" => "disable", "disable-time" => ${DISABLE_TIME} )`);
  lighttpd = await startLighttpd({ docroot, config: `fastcgi.server = ( ".php" => (\n  ${backends.join(',\n  ')}\n) )` });
});

after(async () => {
  await lighttpd?.stop();
  for (const pool of pools.values()) if (pool.exitStatus() === undefined) await pool.stop().catch(() => undefined);
  removeAllHosts();
  removePath(dir);
});

describe('lighttpd load-balances ".php" over two spawn-fcgi-ts pools on two hosts', () => {
  test('each pool runs and answers on its own host', async (t) => {
    if (fallbackReason !== undefined) t.diagnostic(`FALLBACK: ${fallbackReason}`);
    for (const host of hosts) {
      t.diagnostic(
        `host ${host.label}: ${host.kind}${host.namespace ? ` ${host.namespace}, veth ${host.hostInterface} ${host.hostAddress} ↔ ${host.address}` : ` ${host.address}`}`,
      );
    }
    diagnosticLines(t, 'lighttpd.conf:', lighttpd.configText);
    for (const host of hosts) {
      const pool = pools.get(host.label)!;
      assert.equal(pool.childPids().length, 2);
      const answer = await pool.request({ SCRIPT_FILENAME: script });
      assert.match(answer.body, new RegExp(`^pool=${host.label}$`, 'm'), answer.body);
      assert.ok(pool.childPids().includes(Number(/^pid=(\d+)$/m.exec(answer.body)?.[1])), 'answered by one of its children');
      if (host.kind === 'netns') {
        // Its address is not one of the root namespace's: lighttpd reaches it through the veth only.
        const local = Object.values(networkInterfaces())
          .flat()
          .map((i) => i?.address);
        assert.ok(!local.includes(host.address), `${host.address} is an address of the root namespace`);
        // The supervisor and its children live in the namespace: its network is not the root one.
        const own = readlinkSync('/proc/self/ns/net');
        assert.notEqual(readlinkSync(`/proc/${pool.pid}/ns/net`), own, 'the supervisor runs in its own network namespace');
        for (const child of pool.childPids()) assert.equal(readlinkSync(`/proc/${child}/ns/net`), readlinkSync(`/proc/${pool.pid}/ns/net`));
      }
    }
  });

  test('both pools get traffic through lighttpd', async (t) => {
    // The page: lighttpd picks the backend with the lowest load. One request at a time, every backend has
    // load 0 and lighttpd takes the first; with several at once the load spreads.
    const sequential = await httpLoad(`${lighttpd.baseUrl}/lb.php`, { concurrency: 1, requests: 20 });
    t.diagnostic(`20 requests one at a time: ${JSON.stringify(countBy(sequential, 'pool'))}`);
    assert.ok(sequential.every((r) => r.status === 200));

    const results = await httpLoad(`${lighttpd.baseUrl}/lb.php?us=3000`, { concurrency: 8, requests: 200 });
    const counts = countBy(results, 'pool');
    t.diagnostic(`200 requests, 8 at a time, answers per backend: ${JSON.stringify(counts)}`);
    assert.equal(results.filter((r) => r.status === 200).length, 200, JSON.stringify(counts));
    assert.deepEqual(Object.keys(counts).sort(), ['a', 'b']);
    for (const label of ['a', 'b']) assert.ok(counts[label]! >= 20, `backend ${label} got only ${counts[label]} of 200`);
  });

  test('pool a stopped (SIGTERM): lighttpd keeps serving from b; after the disable-time every request succeeds', async (t) => {
    const a = pools.get('a')!;
    const aChildren = a.childPids();
    type Phase = 'before' | 'stopping' | 'after';
    let phase = 'before' as Phase;
    let done = false;
    const tagged: { phase: Phase; status: number; pool?: string; error?: string; at: number }[] = [];
    const url = `${lighttpd.baseUrl}/lb.php?us=3000`;
    const worker = async () => {
      while (!done) {
        const current = phase;
        try {
          const answer = await httpRequest(url, { timeoutMs: 10_000 });
          tagged.push({ phase: current, status: answer.status, pool: /^pool=(.*)$/m.exec(answer.body)?.[1], at: Date.now() });
        } catch (error) {
          tagged.push({ phase: current, status: 0, error: (error as Error).message, at: Date.now() });
        }
      }
    };
    const load = Promise.all(Array.from({ length: CLIENTS }, worker));
    await waitFor(() => ['a', 'b'].every((name) => tagged.some((r) => r.pool === name)), {
      timeoutMs: 30_000,
      intervalMs: 20,
      what: 'answers from both pools before the stop',
    });
    phase = 'stopping';
    const stopStarted = Date.now();
    const exit = await a.stop();
    const stopMs = Date.now() - stopStarted;
    assert.deepEqual(exit, { code: 0, signal: null }, a.stderr());
    assert.ok(aChildren.every(isGone), "the pool's children are gone");
    // lighttpd notices on its next connect to a and disables it for DISABLE_TIME seconds.
    await sleep(DISABLE_TIME * 1000 + 1000);
    phase = 'after';
    await waitFor(() => tagged.filter((r) => r.phase === 'after').length >= 50, {
      timeoutMs: 30_000,
      intervalMs: 20,
      what: '50 requests after the disable-time',
    }).catch(() => undefined);
    done = true;
    await load;

    const summary = (p: Phase) => {
      const list = tagged.filter((r) => r.phase === p);
      const counts: Record<string, number> = {};
      for (const r of list) {
        const key = r.status === 200 ? (r.pool ?? '(none)') : `HTTP ${r.status}${r.error ? ` ${r.error}` : ''}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
      return { total: list.length, counts };
    };
    const [pre, during, post] = [summary('before'), summary('stopping'), summary('after')];
    t.diagnostic(`supervisor a stopped in ${stopMs} ms, exit ${JSON.stringify(exit)}`);
    t.diagnostic(`before the stop: ${JSON.stringify(pre)}`);
    t.diagnostic(`from the stop to stop + disable-time (${DISABLE_TIME} s) + 1 s: ${JSON.stringify(during)}`);
    t.diagnostic(`after that: ${JSON.stringify(post)}`);
    diagnosticLines(t, 'lighttpd error.log:', lighttpd.errorLog());

    assert.ok(pre.counts.a! > 0 && pre.counts.b! > 0, `both served before the stop: ${JSON.stringify(pre)}`);
    assert.ok(post.total >= 50, `too few requests after the stop to mean anything: ${post.total}`);
    assert.deepEqual(post.counts, { b: post.total }, 'after the stop and the disable-time, every request succeeds, all from b');
    // Connects refused by the stopped pool are retried by lighttpd on b (the "establishing connection failed"
    // lines of its error log cost no request). What cannot be retried is a request lighttpd had already
    // written into a connection that sat in the listen queue of pool a's socket when its last holder
    // closed it: the kernel resets those. At most one per client, and only right at the stop.
    const failures = tagged.filter((r) => r.status !== 200);
    // Refused once the listener is gone; reset when a connect landed in the queue of a listener closing right then.
    const refusedConnects = (lighttpd.errorLog().match(/establishing connection failed.*Connection (refused|reset by peer)/g) ?? []).length;
    t.diagnostic(
      `connects refused by the stopped pool (retried by lighttpd): ${refusedConnects}; failed requests: ${failures.length} of ${tagged.length}, at ${failures.map((f) => `${f.at - stopStarted} ms`).join(', ') || '-'} from the stop`,
    );
    assert.ok(refusedConnects >= 1, 'lighttpd tried the stopped pool and was refused or reset (else the test did not test the failover)');
    assert.ok(failures.length <= CLIENTS, `more failed requests than clients: ${JSON.stringify(failures)}`);
    // Only right at the stop: every failed request ended after the stop began and was sent before the
    // disable-time was over (an order of events, not a window a busy machine could miss).
    for (const failure of failures) {
      assert.notEqual(failure.phase, 'after', `a failure of a request sent after the disable-time: ${JSON.stringify(failure)}`);
      assert.ok(failure.at >= stopStarted, `a failure before the stop began: ${JSON.stringify(failure)}`);
    }
  });

  test('pool a started again: lighttpd sends it traffic again', async (t) => {
    const startedAt = Date.now();
    const a = await startBackend(hosts[0]!);
    const counts = await waitFor(
      async () => {
        const results = await httpLoad(`${lighttpd.baseUrl}/lb.php?us=3000`, { concurrency: 8, requests: 40 });
        const c = countBy(results, 'pool');
        return c.a !== undefined && c.a > 0 ? c : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'lighttpd to send traffic to the restarted pool a' },
    );
    t.diagnostic(`traffic back on a ${Date.now() - startedAt} ms after its restart: ${JSON.stringify(counts)}`);
    assert.ok(a.childPids().length === 2);
  });

  test('the pools stop cleanly and the namespaces are removed', async (t) => {
    for (const pool of pools.values()) {
      if (pool.exitStatus() !== undefined) continue;
      const children = pool.childPids();
      assert.deepEqual(await pool.stop(), { code: 0, signal: null });
      await waitFor(() => children.every(isGone), { timeoutMs: 20_000, what: `children of ${pool.host.label} to exit` });
    }
    removeAllHosts();
    assert.deepEqual(ourNamespaces(), []);
    const left = listNamespaces().filter((n) => hosts.some((h) => h.namespace === n));
    t.diagnostic(`ip netns list after removal: ${JSON.stringify(listNamespaces())}`);
    assert.deepEqual(left, []);
    const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
    for (const host of hosts) if (host.hostInterface !== undefined) assert.ok(!links.includes(host.hostInterface), `${host.hostInterface} still there`);
  });
});
