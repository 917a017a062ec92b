/**
 * Daemon mode (no -n), the way spawn-fcgi is usually run: the command prints one
 * `child spawned successfully` line per child, exits 0 once the pool serves and leaves a detached
 * supervisor whose pid is in the -P file; SIGTERM to that pid stops everything and removes the socket
 * and the PID file. An app that exits at once makes the command exit with the app's status and leave
 * nothing behind.
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fcgiGet, PHP_FIXTURES, parseResponder, poolChildren, requireBuild, RESPONDER, runCli, spawnersOf, track, untrack } from '../helpers/pool.js';
import { childrenOf, descendants, isAlive, isGone, processesMentioning, readStatus, removePath, sid, tmpDir, waitFor } from '../helpers/proc.js';

const SPAWNED = /^spawn-fcgi-ts: child spawned successfully: PID: (\d+)$/;

let dir: string;
let responder: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-daemon');
  chmodSync(dir, 0o755);
  // A copy whose path is unique to this run, so that "no process left" can look for it.
  responder = join(dir, 'responder');
  copyFileSync(RESPONDER, responder);
  chmodSync(responder, 0o755);
});
after(() => removePath(dir));

function spawnedPids(stdout: string): number[] {
  const lines = stdout.split('\n').filter((l) => l !== '');
  for (const line of lines) assert.match(line, SPAWNED, `unexpected stdout line: ${JSON.stringify(line)}`);
  return lines.map((l) => Number(SPAWNED.exec(l)![1]));
}

const readPid = (file: string): number => {
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^\d+\n?$/, `PID file content: ${JSON.stringify(text)}`);
  return Number(text.trim());
};

test('-F 3 -P: one line per child, exit 0, a detached supervisor in the PID file, the pool serves; SIGTERM cleans up', async (t) => {
  const sock = join(dir, 'pool.sock');
  const pidFile = join(dir, 'pool.pid');
  const result = await runCli(['-s', sock, '-F', '3', '-P', pidFile, '--', responder]);
  assert.equal(result.code, 0, `exit ${result.code}\nstderr: ${result.stderr}`);
  const pids = spawnedPids(result.stdout);
  assert.equal(pids.length, 3, `three spawned lines expected:\n${result.stdout}`);
  assert.equal(new Set(pids).size, 3);

  const supervisor = readPid(pidFile);
  track(supervisor);
  assert.notEqual(supervisor, result.pid, 'the PID file names the daemon, not the command');
  assert.ok(isAlive(supervisor), `supervisor ${supervisor} is not running`);
  assert.ok(isGone(result.pid), 'the command itself has exited');
  assert.equal(sid(supervisor), supervisor, 'the daemon leads its own session');
  assert.equal(readlinkSync(`/proc/${supervisor}/fd/1`), '/dev/null', "the daemon's stdout is /dev/null");
  assert.deepEqual(
    poolChildren(supervisor),
    [...pids].sort((a, b) => a - b),
    "the printed pids are the supervisor's children",
  );

  const seen = new Set<number>();
  for (let i = 0; i < 9; i++) {
    const info = parseResponder((await fcgiGet({ path: sock })).body);
    assert.ok(pids.includes(info.pid), `answered by ${info.pid}, not one of ${pids.join(',')}`);
    assert.deepEqual([info.ppid], spawnersOf(supervisor), "its parent is the supervisor's spawner");
    seen.add(info.pid);
  }
  t.diagnostic(`command ${result.pid}, supervisor ${supervisor}, children ${pids.join(',')}, answered by ${[...seen].join(',')}`);

  process.kill(supervisor, 'SIGTERM');
  await waitFor(() => [supervisor, ...pids].every(isGone), { timeoutMs: 15_000, what: 'supervisor and children to exit' });
  untrack(supervisor);
  assert.ok(!existsSync(sock), 'the socket file is removed');
  assert.ok(!existsSync(pidFile), 'the PID file is removed');
});

test('php-cgi -C 2 in daemon mode: one master line; SIGTERM takes the workers too', async () => {
  const sock = join(dir, 'php.sock');
  const pidFile = join(dir, 'php.pid');
  const result = await runCli(['-s', sock, '-C', '2', '-P', pidFile, '--', 'php-cgi']);
  assert.equal(result.code, 0, result.stderr);
  const [master, ...rest] = spawnedPids(result.stdout);
  assert.deepEqual(rest, []);
  const supervisor = readPid(pidFile);
  track(supervisor);
  assert.deepEqual([readStatus(master!)?.ppid], spawnersOf(supervisor));
  const workers = await waitFor(() => (childrenOf(master!).length === 2 ? childrenOf(master!) : undefined), { what: 'two php-cgi workers' });
  const answer = await fcgiGet({ path: sock }, { SCRIPT_FILENAME: join(PHP_FIXTURES, 'pid.php') });
  assert.ok(workers.includes(Number(/pid=(\d+)/.exec(answer.body)?.[1])), answer.body);
  const family = [supervisor, ...descendants(supervisor)];

  process.kill(supervisor, 'SIGTERM');
  await waitFor(() => family.every(isGone), { timeoutMs: 15_000, what: `${family.join(',')} to exit` });
  untrack(supervisor);
  assert.ok(!existsSync(sock));
  assert.ok(!existsSync(pidFile));
});

test('an app that exits at once: the command exits with its status (1) and leaves nothing behind', async () => {
  const sock = join(dir, 'false.sock');
  const pidFile = join(dir, 'false.pid');
  const result = await runCli(['-s', sock, '-P', pidFile, '--', '/bin/false']);
  assert.equal(result.code, 1, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  assert.equal(result.stdout, '', 'no child spawned successfully');
  assert.ok(result.stderr.split('\n').includes('spawn-fcgi-ts: child exited with: 1'), result.stderr);
  await waitFor(() => processesMentioning(sock).length === 0, { timeoutMs: 30_000, what: 'no process mentioning the socket' }).catch(() => undefined);
  assert.deepEqual(processesMentioning(sock), [], 'a supervisor is still running');
  assert.ok(!existsSync(sock), 'the socket file is removed');
  assert.ok(!existsSync(pidFile), 'no PID file is written for a pool that never served');
});

test('one child of -F 3 exits at once: the command fails and the other two are stopped', async () => {
  const script = join(dir, 'third-fails.sh');
  // Slots start together; the one that wins the mkdir race exits 4, the others serve.
  const flag = join(dir, 'third-fails.flag');
  writeFileSync(script, `#!/bin/sh\nif mkdir ${flag} 2>/dev/null; then exit 4; fi\nexec ${responder}\n`, { mode: 0o755 });
  const sock = join(dir, 'partial.sock');
  const result = await runCli(['-s', sock, '-F', '3', '--', script]);
  assert.equal(result.code, 4, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  assert.ok(result.stderr.split('\n').includes('spawn-fcgi-ts: child exited with: 4'), result.stderr);
  await waitFor(() => processesMentioning(dir).length === 0, { timeoutMs: 30_000, what: 'no process left' }).catch(() => undefined);
  assert.deepEqual(
    processesMentioning(dir).map((p) => `${p}: ${readStatus(p)?.name}`),
    [],
  );
  assert.ok(!existsSync(sock));
});

test('the daemon runs in / (daemon(3)); relative -s, -P, --log-file still work after the start directory is removed', async () => {
  const base = join(dir, 'cwd');
  const start = join(base, 'started-here');
  mkdirSync(start, { recursive: true });
  const result = await runCli(['-s', '../rel.sock', '-P', '../rel.pid', '--log-file', '../rel.log', '--', responder], { cwd: start });
  assert.equal(result.code, 0, result.stderr);
  const [child] = spawnedPids(result.stdout);
  const sock = join(base, 'rel.sock');
  const pidFile = join(base, 'rel.pid');
  const supervisor = readPid(pidFile);
  track(supervisor);
  rmdirSync(start);
  assert.equal(readlinkSync(`/proc/${supervisor}/cwd`), '/', "the daemon left the caller's directory");
  assert.equal(readlinkSync(`/proc/${child}/cwd`), '/', 'the children start in / too (no -d)');
  assert.equal(parseResponder((await fcgiGet({ path: sock })).body).pid, child);

  // SIGUSR1 reopens the log by its (absolute) path: logrotate's move, then a fresh file.
  renameSync(join(base, 'rel.log'), join(base, 'rel.log.1'));
  process.kill(supervisor, 'SIGUSR1');
  await waitFor(() => existsSync(join(base, 'rel.log')), { what: 'the log to be reopened at its path' });

  process.kill(supervisor, 'SIGTERM');
  await waitFor(() => [supervisor, child!].every(isGone), { timeoutMs: 15_000, what: 'supervisor and child to exit' });
  untrack(supervisor);
  assert.ok(!existsSync(sock), 'the socket file is removed');
  assert.ok(!existsSync(pidFile), 'the PID file is removed');
  assert.match(readFileSync(join(base, 'rel.log'), 'utf8'), /stopping/);
});
