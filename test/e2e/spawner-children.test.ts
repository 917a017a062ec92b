/**
 * Who serves, and who goes away: the supervisor never accepts a connection itself (every answer comes
 * from one of its children and its descriptors do not change), and with -C a php-cgi master's own
 * workers live in the master's process group and are gone after the supervisor's SIGTERM.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PHP_FIXTURES, requireBuild, spawnersOf, startPool } from '../helpers/pool.js';
import { childrenOf, descendants, fdCount, isGone, pgid, readStatus, removePath, settledFdCount, tmpDir, waitFor } from '../helpers/proc.js';

const PID_PHP = join(PHP_FIXTURES, 'pid.php');

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-children');
});
after(() => removePath(dir));

test('the supervisor never accepts: 300 requests to -F 4 php-cgi are all answered by its children', async (t) => {
  const sock = join(dir, 'accept.sock');
  const pool = await startPool(['-s', sock, '-F', '4', '--', 'php-cgi']);
  const children = pool.childPids();
  assert.equal(children.length, 4, `four children expected, got ${children.join(',')}`);
  assert.ok(!children.includes(pool.pid));
  // Let the start-up settle (status pipes closed after exec...) before counting descriptors.
  await pool.request({ SCRIPT_FILENAME: PID_PHP }, { timeoutMs: 20_000 });
  const fdsBefore = await settledFdCount(pool.pid);

  const TOTAL = 300;
  const PARALLEL = 4;
  const perPid = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < TOTAL) {
      next++;
      const answer = await pool.request({ SCRIPT_FILENAME: PID_PHP }, { timeoutMs: 20_000 });
      assert.equal(answer.appStatus, 0);
      const match = /^pid=(\d+)\n$/.exec(answer.body);
      assert.ok(match, `unexpected answer: ${JSON.stringify(answer.body)}`);
      const pid = Number(match[1]);
      perPid.set(pid, (perPid.get(pid) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));

  const fdsAfter = fdCount(pool.pid);
  const counts = [...perPid].map(([pid, n]) => `${pid}:${n}`).join(' ');
  t.diagnostic(`supervisor ${pool.pid}, children ${children.join(',')}; answers per pid: ${counts}; supervisor fds ${fdsBefore} -> ${fdsAfter}`);

  const answered = [...perPid.values()].reduce((a, b) => a + b, 0);
  assert.equal(answered, TOTAL);
  assert.ok(!perPid.has(pool.pid), 'the supervisor answered a request itself');
  for (const pid of perPid.keys()) assert.ok(children.includes(pid), `pid ${pid} is not one of the supervisor's children (${children.join(',')})`);
  assert.ok(perPid.size >= 2, `the socket is shared: more than one child should have answered (${counts})`);
  assert.equal(fdsAfter, fdsBefore, 'the supervisor holds the same number of descriptors before and after');
  assert.deepEqual(pool.childPids(), children, 'no child died or was replaced');
  assert.equal(pool.exitStatus(), undefined, 'the supervisor is still running');
  assert.ok(!isGone(pool.pid));
  assert.deepEqual(await pool.stop(), { code: 0, signal: null });
});

test('-C 4: one php-cgi master, four workers in its process group, all gone after SIGTERM', async (t) => {
  const sock = join(dir, 'php-children.sock');
  const pool = await startPool(['-s', sock, '-C', '4', '--', 'php-cgi']);
  const masters = pool.childPids();
  assert.equal(masters.length, 1, `one php-cgi master expected (no -F), got ${masters.join(',')}`);
  const master = masters[0]!;
  const workers = await waitFor(
    () => {
      const found = childrenOf(master);
      return found.length === 4 ? found : undefined;
    },
    { timeoutMs: 20_000, what: 'four php-cgi workers under the master' },
  );
  assert.equal(readStatus(master)?.name, 'php-cgi');
  for (const worker of workers) {
    assert.equal(readStatus(worker)?.name, 'php-cgi');
    assert.equal(readStatus(worker)?.ppid, master);
  }
  const group = pgid(master);
  assert.equal(group, master, 'the master leads its own process group');
  assert.notEqual(group, pgid(pool.pid), "not the supervisor's group");
  assert.deepEqual(
    workers.map((w) => pgid(w)),
    workers.map(() => group),
    "every worker is in the master's group",
  );
  assert.deepEqual(
    descendants(pool.pid),
    [...spawnersOf(pool.pid), master, ...workers].sort((a, b) => a - b),
    'the spawner, the master and its workers: nothing else',
  );

  // The workers serve (the master only supervises them).
  const answer = await pool.request({ SCRIPT_FILENAME: PID_PHP });
  const pid = Number(/pid=(\d+)/.exec(answer.body)?.[1]);
  assert.ok(workers.includes(pid), `answered by ${pid}, workers are ${workers.join(',')}`);
  t.diagnostic(`supervisor ${pool.pid}, master ${master}, workers ${workers.join(',')} (pgid ${group})`);

  assert.deepEqual(await pool.stop('SIGTERM'), { code: 0, signal: null });
  const left = [master, ...workers].filter((p) => !isGone(p));
  assert.deepEqual(left, [], `still running after the supervisor exited: ${left.join(',')}`);
});

test('-C 2 with a worker busy in a request: the stop ends only when the whole group is gone (SIGKILL after --kill-timeout)', async (t) => {
  const sock = join(dir, 'php-busy.sock');
  const pool = await startPool(['-s', sock, '-C', '2', '--kill-timeout', '500ms', '--', 'php-cgi']);
  const master = pool.childPids()[0]!;
  const workers = await waitFor(() => (childrenOf(master).length === 2 ? childrenOf(master) : undefined), { timeoutMs: 20_000, what: 'two php-cgi workers' });
  // A request that keeps one worker busy for 60 s; php-cgi finishes a request before it obeys SIGTERM.
  // Only the SIGKILL after --kill-timeout can end the stop before the request would end: a stop that is
  // over in less than 30 s is proof of it, on however busy a machine.
  const BUSY_MS = 60_000;
  const ticksBefore = workers.map(cpuTicks);
  const inflight = pool.request({ SCRIPT_FILENAME: join(PHP_FIXTURES, 'sleep.php'), QUERY_STRING: `ms=${BUSY_MS}` }, { timeoutMs: BUSY_MS + 30_000 }).then(
    (a) => `answered: ${a.body.trim().replace(/\n/g, ' ')}`,
    (e: Error) => `cut: ${e.message}`,
  );
  // The worker is busy once it burns CPU in the request (sleep.php spins on usleep(1000)).
  await waitFor(() => workers.some((pid, i) => cpuTicks(pid) - ticksBefore[i]! >= 3), {
    timeoutMs: 20_000,
    intervalMs: 20,
    what: 'a worker busy in the request',
  });

  const startedAt = Date.now();
  assert.deepEqual(await pool.stop('SIGTERM', 30_000), { code: 0, signal: null });
  const stopMs = Date.now() - startedAt;
  const left = [master, ...workers].filter((p) => !isGone(p)).map((p) => `${p} (${readStatus(p)?.state}, ppid ${readStatus(p)?.ppid})`);
  // Let a surviving worker end before the clean-up, whatever the outcome.
  await waitFor(() => [master, ...workers].every(isGone), { timeoutMs: 10_000, intervalMs: 10 }).catch(() => undefined);
  const request = await inflight;
  t.diagnostic(`supervisor exited ${stopMs} ms after SIGTERM; request ${request}`);
  assert.deepEqual(left, [], 'workers still running when the supervisor had exited');
  assert.match(request, /^cut: /, 'the busy worker was killed in its request, not waited for');
  assert.match(pool.stderr(), /SIGKILL/, 'the escalation after --kill-timeout is logged');
});

/** utime + stime of a process, in clock ticks (0 if it is gone). */
function cpuTicks(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}
