/**
 * Supervision, crash loops: a child that keeps failing is restarted after capped exponential delays
 * (with ±20 % jitter); with --max-failures the supervisor gives up by itself, exits with the app's
 * status, removes its socket and leaves no child; a child that cannot start at all is reported as such.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { RESPONDER, requireBuild, runCli, startPool } from '../helpers/pool.js';
import { isGone, processesMentioning, removePath, tmpDir, waitFor } from '../helpers/proc.js';

const APPS = fileURLToPath(new URL('../fixtures/apps/', import.meta.url));
const CRASH_LOOP = join(APPS, 'crash-loop.sh');

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-crashloop');
});
after(() => removePath(dir));

/** The delays of `restarting in N ms` lines, in order. */
function loggedDelays(log: string): number[] {
  return [...log.matchAll(/restarting in (\d+) ms/g)].map((m) => Number(m[1]));
}

/** `<pid> <ms>` lines the crash-loop app wrote, one per start. */
function starts(logFile: string): { pid: number; at: number }[] {
  if (!existsSync(logFile)) return [];
  return readFileSync(logFile, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      const [pid, at] = line.split(' ').map(Number);
      return { pid: pid!, at: at! };
    });
}

test('crash loop: the first failure restarts at once, then delays grow 50, 100, 200, 400 ms (±20 %) and stay capped at 400 ms', async (t) => {
  const sock = join(dir, 'backoff.sock');
  const appLog = join(dir, 'backoff.log');
  // The first start stays up 1.5 s (well past the 100 ms start check, even on a busy machine), every later
  // one exits 1 at once.
  // --max-failures 8 makes the run end by itself after 7 restarts: one at once, then 6 delays.
  const result = await runCli(
    ['-n', '-s', sock, '--restart-delay', '50ms', '--max-restart-delay', '400ms', '--max-failures', '8', '--', CRASH_LOOP, appLog, '1', '1500'],
    { timeoutMs: 60_000 },
  );
  const delays = loggedDelays(result.stderr);
  const runs = starts(appLog);
  const gaps = runs.slice(1).map((run, i) => run.at - runs[i]!.at);
  t.diagnostic(`logged delays ${delays.join(', ')} ms; gaps between starts ${gaps.join(', ')} ms; exit ${result.code}`);

  assert.equal((result.stderr.match(/failure 1, restarting now/g) ?? []).length, 1, `the first failure restarts at once:\n${result.stderr}`);
  assert.equal(delays.length, 6, `6 restarts with a delay expected before the 8th failure:\n${result.stderr}`);
  const expected = [50, 100, 200, 400, 400, 400];
  delays.forEach((delay, i) => {
    const nominal = expected[i]!;
    assert.ok(delay >= Math.floor(nominal * 0.8) && delay <= Math.ceil(nominal * 1.2), `delay ${i + 1} is ${delay} ms, expected ${nominal} ms ±20 %`);
    assert.ok(delay <= 400, `delay ${i + 1} is ${delay} ms, above the 400 ms cap`);
  });
  // The app really was started again after (about) each delay.
  assert.equal(runs.length, 8, `the app should have started 8 times:\n${readFileSync(appLog, 'utf8')}`);
  // gaps[0]: the first run's 1.5 s plus the immediate restart; then one gap per delay. A gap can only be
  // longer than its delay on a busy machine; the 10 ms of slack are libuv's cached loop clock, which can
  // start a timer a few ms early.
  gaps.slice(1).forEach((gap, i) => {
    assert.ok(gap >= delays[i]! - 10, `start ${i + 3} came ${gap} ms after the previous one, before its delay of ${delays[i]} ms`);
  });
  assert.equal(result.code, 1);
});

test("--max-failures 4: the supervisor exits with the app's status 1 by itself, removes its socket, leaves no child", async (t) => {
  const sock = join(dir, 'giveup.sock');
  const appLog = join(dir, 'giveup.log');
  const result = await runCli(
    ['-n', '-s', sock, '--restart-delay', '50ms', '--max-restart-delay', '400ms', '--max-failures', '4', '--', CRASH_LOOP, appLog, '1', '1500'],
    { timeoutMs: 60_000 },
  );
  t.diagnostic(`exit ${result.code}; ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  assert.equal(result.code, 1, `exit status: the app's (1)\n${result.stderr}`);
  assert.match(result.stderr, /giving up/);
  assert.equal((result.stderr.match(/restarting now/g) ?? []).length, 1, `one immediate restart:\n${result.stderr}`);
  assert.equal(loggedDelays(result.stderr).length, 2, `then two restarts with a delay before the 4th failure:\n${result.stderr}`);
  assert.equal(existsSync(sock), false, 'the socket file is removed');
  assert.deepEqual(processesMentioning(appLog), [], 'no child (nor anything started with its log path) remains');
  for (const run of starts(appLog)) assert.ok(isGone(run.pid), `child ${run.pid} still alive`);
});

test('-d /nonexistent: the child cannot start; the supervisor says why, exits 255 and leaves nothing behind', async (t) => {
  const sock = join(dir, 'nodir.sock');
  const result = await runCli(['-n', '-s', sock, '-d', '/nonexistent', '--', RESPONDER], { timeoutMs: 60_000 });
  t.diagnostic(`exit ${result.code}; stderr: ${result.stderr.trim().split('\n').join(' | ')}`);
  assert.match(result.stderr, /could not start: chdir\('?\/nonexistent'?\) failed/);
  assert.equal(result.code, 255);
  assert.equal(existsSync(sock), false, 'the socket file is removed');
  assert.deepEqual(processesMentioning(sock), [], 'nothing started with the socket path remains');
  // A child that never ran is no crash to restart: the supervisor must not announce a restart.
  assert.doesNotMatch(result.stderr, /restarting in/, 'a start-up failure is reported as a crash with a restart');
});

test('a child that cannot start any more (its -d directory removed): every failure says "could not start", exit 255', async (t) => {
  const workdir = join(dir, 'workdir');
  mkdirSync(workdir);
  const sock = join(dir, 'lostdir.sock');
  const pool = await startPool(['-s', sock, '-d', workdir, '--restart-delay', '20ms', '--max-restart-delay', '100ms', '--max-failures', '3', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));
  const [child] = pool.childPids();
  rmdirSync(workdir);
  process.kill(child!, 'SIGKILL');
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    pool.exited,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(resolve, 30_000, undefined);
    }),
  ]);
  clearTimeout(timer);
  assert.ok(exit, `the supervisor did not give up:\n${pool.stderr()}`);
  await waitFor(() => /all children gone/.test(pool.stderr()), { timeoutMs: 10_000, what: 'the last log line' }).catch(() => undefined);
  // The kill is failure 1; the two children started after it cannot chdir: failures 2 and 3 (the last one gives up).
  const failures = pool
    .stderr()
    .split('\n')
    .filter((line) => /\] child failed/.test(line) && !line.includes(`:${child}]`));
  t.diagnostic(`exit ${JSON.stringify(exit)}; failures after the kill: ${failures.map((l) => l.trim()).join(' | ')}`);
  assert.equal(failures.length, 2, `two failures after the kill expected:\n${pool.stderr()}`);
  for (const line of failures) assert.match(line, /could not start: chdir\('?[^)]*workdir'?\) failed/, `the reason should be the helper's: ${line}`);
  assert.equal(exit.code, 255, `a child that cannot start makes the supervisor exit 255:\n${pool.stderr()}`);
  assert.equal(existsSync(sock), false, 'the socket file is removed');
  assert.deepEqual(pool.childPids(), []);
});
