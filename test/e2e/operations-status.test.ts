import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { parseOpenMetrics } from '../helpers/openmetrics.js';
import { RESPONDER, requireBuild, runCli, startPool } from '../helpers/pool.js';
import { freePort, isGone, removePath, tmpDir, waitFor } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-ops');
});
after(() => removePath(dir));

function httpGet(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, type: String(response.headers['content-type']), body }));
    })
      .on('error', reject)
      .end();
  });
}

test('status prints one table with the real PIDs; --json the same data; restarts and last exits show up', async () => {
  const socket = join(dir, 'status.sock');
  const pidFile = join(dir, 'status.pid');
  const pool = await startPool(['-s', socket, '-F', '3', '-P', pidFile, '--', RESPONDER]);
  const pids = pool.childPids();
  assert.equal(pids.length, 3);

  const table = await runCli(['status', '-P', pidFile]);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0]!, new RegExp(`^supervisor ${pool.pid} on ${socket}: 3 children`));
  assert.match(lines[1]!, /^SLOT\s+PID\s+STATE\s+UPTIME\s+RESTARTS\s+LAST EXIT\s+CPU %\s+RSS$/);
  const rows = lines.slice(2).map((l) => l.split(/\s{2,}/));
  assert.deepEqual(rows.map((r) => Number(r[1])).sort(), [...pids].sort());
  for (const row of rows) {
    assert.equal(row[2], 'running');
    assert.match(row[7]!, /^\d+(\.\d)? (KiB|MiB)$/);
  }
  assert.doesNotMatch(table.stdout, /\x1b\[/, 'no colour when stdout is not a terminal');

  process.kill(pids[1]!, 'SIGKILL');
  await waitFor(() => pool.childPids().length === 3 && !pool.childPids().includes(pids[1]!), { timeoutMs: 30_000, what: 'the killed child to be replaced' });
  const json = await runCli(['status', '-s', socket, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const status = JSON.parse(json.stdout) as {
    supervisorPid: number;
    children: number;
    restarts: number;
    slots: { slot: number; pid: number; state: string; restarts: number; rssBytes: number; lastExit: { signal: string | null; reason: string } | null }[];
  };
  assert.equal(status.supervisorPid, pool.pid);
  assert.equal(status.children, 3);
  assert.equal(status.restarts, 1);
  assert.deepEqual(status.slots.map((s) => s.pid).sort(), pool.childPids().sort());
  const restarted = status.slots.find((s) => s.restarts === 1)!;
  assert.equal(restarted.lastExit?.signal, 'SIGKILL');
  assert.match(restarted.lastExit!.reason, /signal SIGKILL/);
  for (const slot of status.slots) assert.ok(slot.rssBytes > 0);

  assert.equal((await pool.stop()).code, 0);
  assert.throws(() => readFileSync(pidFile), /ENOENT/, 'the PID file is removed at stop');
  const gone = await runCli(['status', '-s', socket]);
  assert.equal(gone.code, 3);
  assert.match(gone.stderr, /no pool answers on/);
});

test('--metrics serves OpenMetrics that the reference parser accepts, with per-slot series, the PID as a value and the TCP listen queue', async () => {
  const port = await freePort();
  const metricsPort = await freePort();
  const pool = await startPool(['-a', '127.0.0.1', '-p', String(port), '-F', '2', '--metrics', `127.0.0.1:${metricsPort}`, '--', RESPONDER]);
  const answer = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(answer.status, 200);
  assert.match(answer.type, /^application\/openmetrics-text; version=1.0.0/);
  const families = new Map(parseOpenMetrics(answer.body).map((f) => [f.name, f]));
  assert.equal(families.get('spawn_fcgi_ts_children')?.samples[0]?.value, 2);
  assert.equal(families.get('spawn_fcgi_ts_listen_queue')?.samples[0]?.value, 0);
  assert.equal(families.get('spawn_fcgi_ts_children_configured')?.samples[0]?.value, 2);
  const rss = families.get('spawn_fcgi_ts_child_rss_bytes')!;
  assert.deepEqual(
    rss.samples.map((s) => s.labels),
    [{ slot: '0' }, { slot: '1' }],
  );
  for (const sample of rss.samples) assert.ok(sample.value > 0);
  assert.deepEqual(
    families
      .get('spawn_fcgi_ts_child_pid')!
      .samples.map((s) => s.value)
      .sort(),
    pool.childPids().sort(),
  );
  assert.equal(families.get('spawn_fcgi_ts_child_cpu_seconds')?.type, 'counter');
  assert.equal((await httpGet(`http://127.0.0.1:${metricsPort}/nothing`)).status, 404);
  // The detailed status (PIDs, paths, exit reasons) stays off the TCP listener without --status-page.
  assert.equal((await httpGet(`http://127.0.0.1:${metricsPort}/status`)).status, 404);
  assert.equal((await httpGet(`http://127.0.0.1:${metricsPort}/`)).status, 404);
  await pool.stop();
});

test('--rlimit is applied to every child before exec (read back from /proc/<pid>/limits)', async () => {
  const socket = join(dir, 'limits.sock');
  const pool = await startPool(['-s', socket, '-F', '2', '--rlimit', 'nofile=1234:2345', '--rlimit', 'CORE=0', '--', RESPONDER]);
  for (const pid of pool.childPids()) {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    assert.match(limits, /^Max open files\s+1234\s+2345\s+files/m);
    assert.match(limits, /^Max core file size\s+0\s+0\s+bytes/m);
  }
  await pool.stop();
  const bad = await runCli(['-n', '-s', socket, '--rlimit', 'files=1', '--', RESPONDER]);
  assert.equal(bad.code, 255);
  assert.match(bad.stderr, /invalid --rlimit 'files=1'/);
});

test('an idle pool does no periodic work: the supervisor uses no CPU over 3 s', async () => {
  const socket = join(dir, 'idle.sock');
  const pool = await startPool(['-s', socket, '-F', '2', '--', RESPONDER]);
  const ticks = () => {
    const fields = readFileSync(`/proc/${pool.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  };
  await new Promise((resolve) => setTimeout(resolve, 500));
  const before = ticks();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const used = ticks() - before;
  assert.ok(used <= 1, `supervisor used ${used} ticks (10 ms each) while idle`);
  await pool.stop();
  assert.ok(isGone(pool.pid));
});
