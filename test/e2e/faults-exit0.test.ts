/**
 * Faults, exit 0: a child that exits 0 during the start check (php-cgi with PHP_FCGI_MAX_REQUESTS=1 and
 * traffic at start) is a planned recycle, not a failed start; a child that answers one request and exits 0
 * within milliseconds (a libfcgi app doing FCGI_Finish(); exit(0)) is a recycle, not a crash, so no
 * backoff; and `/bin/true` as the app is restarted at a bounded rate instead of spinning.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CLI, RESPONDER, requireBuild, startPool, track, untrack } from '../helpers/pool.js';
import { isGone, removePath, signalIfAlive, sleep, tmpDir, waitFor } from '../helpers/proc.js';
import { RESTART_BURST, RESTART_INTERVAL_MS } from '../../src/pool/restart-policy.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-faults-exit0');
});
after(() => removePath(dir));

/** utime + stime of a process, in clock ticks (100 per second here). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('exit 0 during the start check: the child is restarted and the pool serves (not a failed start with status 0)', async (t) => {
  const marker = join(dir, 'first-run-done');
  const app = join(dir, 'recycle-once.sh');
  // The first run exits 0 at once, as a php-cgi that served its only request during the start check does.
  writeFileSync(app, `#!/bin/sh\nif [ ! -e ${marker} ]; then : > ${marker}; exit 0; fi\nexec ${RESPONDER}\n`, { mode: 0o755 });
  const sock = join(dir, 'check.sock');
  const pool = await startPool(['-s', sock, '-F', '2', '--start-check', '500ms', '--', app]);
  t.after(() => pool.stop().catch(() => undefined));
  t.diagnostic(pool.stderr().trim().split('\n').join(' | '));
  assert.equal(pool.exitStatus(), undefined);
  assert.match(pool.stderr(), /child exited with: 0 after \d+ ms \(planned\), restarting/);
  assert.doesNotMatch(pool.stderr(), /failure \d|could not start/);
  assert.equal(pool.childPids().length, 2);
  assert.equal((await pool.request({}, { timeoutMs: 30_000 })).appStatus, 0);
});

test('a child that answers one request and exits 0 (2-3 ms) under steady traffic: recycled without backoff, every request answered', async (t) => {
  const sock = join(dir, 'quick.sock');
  const pool = await startPool(['-s', sock, '-F', '2', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));
  const total = 150;
  let answered = 0;
  const loop = async () => {
    while (answered < total) {
      answered++;
      const answer = await pool.request({ QUERY_STRING: 'exit=0' }, { timeoutMs: 10_000 });
      assert.equal(answer.appStatus, 0);
      assert.match(answer.body, /^pid=\d+$/m);
    }
  };
  const started = Date.now();
  await Promise.all([loop(), loop()]);
  const planned = (pool.stderr().match(/\(planned\)/g) ?? []).length;
  const bounded = (pool.stderr().match(/restart rate bound/g) ?? []).length;
  t.diagnostic(`${total} one-request children in ${Date.now() - started} ms; ${planned} planned exits logged, ${bounded} of them waited for the rate bound`);
  assert.ok(planned >= total - 2, `every request's child exit is a planned recycle (${planned})`);
  assert.doesNotMatch(pool.stderr(), /restarting in|failure \d/, 'a recycle is not a crash: no backoff');
  assert.equal(pool.exitStatus(), undefined);
});

test('/bin/true as the app: the supervisor stays up and restarts it at a bounded rate, not in a spin', async (t) => {
  const sock = join(dir, 'true.sock');
  const supervisor = spawn(process.execPath, [CLI, '-n', '-s', sock, '-F', '1', '--', '/bin/true'], { stdio: ['ignore', 'ignore', 'pipe'] });
  track(supervisor.pid!);
  let log = '';
  supervisor.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    log += chunk;
  });
  t.after(() => {
    signalIfAlive(supervisor.pid!, 'SIGKILL');
    untrack(supervisor.pid!);
  });
  await waitFor(() => /(child|children) serving on /.test(log), { timeoutMs: 15_000, what: 'start-up over' });
  const count = () => (log.match(/\(planned\)/g) ?? []).length;
  const ticks0 = cpuTicks(supervisor.pid!);
  const planned0 = count();
  const windowMs = 5000;
  await sleep(windowMs);
  const planned = count() - planned0;
  const cpu = (cpuTicks(supervisor.pid!) - ticks0) / 100 / (windowMs / 1000);
  t.diagnostic(`/bin/true: ${planned} restarts in ${windowMs} ms, supervisor CPU ${(cpu * 100).toFixed(1)} %`);
  // At most one burst plus one restart per interval (with room for a late timer), and it does keep going.
  const bound = RESTART_BURST + windowMs / RESTART_INTERVAL_MS + 5;
  assert.ok(planned <= bound, `${planned} restarts in ${windowMs} ms, above the bound of ${bound}`);
  assert.ok(planned >= 10, `the slot should keep restarting (${planned})`);
  assert.doesNotMatch(log, /failure \d|restarting in/, 'exit 0 is no failure');
  assert.equal(supervisor.exitCode, null, `the supervisor exited:\n${log}`);
  supervisor.kill('SIGTERM');
  await waitFor(() => isGone(supervisor.pid!), { timeoutMs: 10_000, what: 'the supervisor to stop' });
  assert.equal(supervisor.exitCode, 0);
  assert.equal(existsSync(sock), false);
});
