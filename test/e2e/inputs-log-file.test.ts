/**
 * --log-file against real faults and a real attacker: a missing directory at start (foreground and
 * daemon), the directory removed before SIGUSR1, EMFILE at rotation, and `nobody` owning the log
 * directory and planting a symlink (or a FIFO, or a hard link) to a root-owned decoy, at start and
 * after a logrotate-style move. The pool must keep serving, the decoy must stay as it was.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RESPONDER, requireBuild, runCli, startPool, type RunningPool } from '../helpers/pool.js';
import { removePath, tmpDir, waitFor } from '../helpers/proc.js';

const NOBODY = 65534;
let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-inputs-log');
  chmodSync(dir, 0o755);
});
after(() => removePath(dir));

const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');

/** Run a shell command as the attacker (`nobody`), for real. */
const asAttacker = (script: string): void => {
  execFileSync('setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', 'sh', '-c', script], { stdio: 'pipe' });
};

/** A root-owned 0600 file outside the attacker's directory, and how to tell it is untouched. */
function decoy(name: string): { path: string; check: () => void } {
  const path = join(dir, name);
  writeFileSync(path, 'root secret\n', { mode: 0o600 });
  chmodSync(path, 0o600);
  const before = statSync(path);
  return {
    path,
    check: () => {
      const now = statSync(path);
      assert.equal(now.uid, 0, 'decoy owner');
      assert.equal(now.mode & 0o7777, 0o600, 'decoy mode');
      assert.equal(readFileSync(path, 'utf8'), 'root secret\n', 'decoy content');
      assert.equal(now.mtimeMs, before.mtimeMs, 'decoy mtime');
    },
  };
}

/** A directory owned by the attacker, not sticky and not world-writable: fs.protected_symlinks does not apply. */
function attackerDir(name: string): string {
  const path = join(dir, name);
  mkdirSync(path, { mode: 0o755 });
  chownSync(path, NOBODY, NOBODY);
  return path;
}

/** The log file a supervisor still writes to through an fd, read through /proc (works when it was deleted). */
function openLogOf(pid: number, nameContains: string): string {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target.includes(nameContains)) return readFileSync(`/proc/${pid}/fd/${fd}`, 'utf8');
  }
  return '';
}

async function restartOneChild(pool: RunningPool): Promise<number> {
  const [victim] = pool.childPids();
  process.kill(victim!, 'SIGKILL');
  await waitFor(() => (pool.childPids().length === 1 && !pool.childPids().includes(victim!) ? true : undefined), {
    timeoutMs: 10_000,
    what: 'the child to be replaced',
  });
  return victim!;
}

test('--log-file in a missing directory: one line, exit 255, in the foreground and in daemon mode', async () => {
  const log = join(dir, 'no-such-dir', 'y.log');
  const expected = `spawn-fcgi-ts: can't open log file '${log}': No such file or directory\n`;
  const foreground = await runCli(['-n', '-s', join(dir, 'missing-fg.sock'), '--log-file', log, '--', RESPONDER]);
  assert.equal(foreground.code, 255);
  assert.equal(foreground.stderr, expected);
  const daemon = await runCli(['-s', join(dir, 'missing-bg.sock'), '--log-file', log, '--', RESPONDER]);
  assert.equal(daemon.code, 255);
  assert.equal(daemon.stderr, expected, 'the daemon tells the starting command why');
  assert.equal(existsSync(join(dir, 'missing-fg.sock')) || existsSync(join(dir, 'missing-bg.sock')), false, 'no socket left');
});

test('SIGUSR1 with the log directory removed: the pool keeps serving on the old file, warns, and the next SIGUSR1 reopens', async () => {
  const logDir = join(dir, 'logd');
  mkdirSync(logDir);
  const log = join(logDir, 'x.log');
  const pool = await startPool(['-s', join(dir, 'gone.sock'), '--log-file', log, '--', RESPONDER]);
  await waitFor(() => read(log).includes('child serving on'), { timeoutMs: 10_000, what: 'the ready line in the log' });
  rmSync(logDir, { recursive: true });
  process.kill(pool.pid, 'SIGUSR1');
  await waitFor(() => pool.stderr().includes('WARNING'), { timeoutMs: 10_000, what: 'a warning on stderr' });
  assert.match(
    pool.stderr(),
    new RegExp(
      `^spawn-fcgi-ts: WARNING: can't reopen log file '${log}': No such file or directory; still writing to the file opened before \\(the next SIGUSR1 tries again\\)$`,
      'm',
    ),
  );
  assert.equal(pool.exitStatus(), undefined, 'the supervisor is alive');
  assert.match((await pool.request()).body, /pid=/);
  const victim = await restartOneChild(pool);
  assert.match(openLogOf(pool.pid, 'x.log (deleted)'), new RegExp(`\\[0:${victim}\\] child (died|failed)`), 'the old (deleted) file still gets lines');

  mkdirSync(logDir);
  process.kill(pool.pid, 'SIGUSR1');
  await waitFor(() => existsSync(log), { timeoutMs: 10_000, what: 'the log file to be recreated' });
  const second = await restartOneChild(pool);
  await waitFor(() => read(log).includes(`[0:${second}]`), { timeoutMs: 10_000, what: 'the new file to get lines' });
  assert.match((await pool.request()).body, /pid=/);
  await pool.stop();
  assert.match(read(log), /all children gone/);
});

test('SIGUSR1 at EMFILE (prlimit on the running supervisor): a warning, the old file kept, no crash', async () => {
  const log = join(dir, 'emfile.log');
  const pool = await startPool(['-s', join(dir, 'emfile.sock'), '--log-file', log, '--', RESPONDER]);
  await waitFor(() => read(log).includes('serving on'), { timeoutMs: 10_000 });
  // The soft limit at the lowest free descriptor number: the next open(2) fails with EMFILE.
  const used = new Set(readdirSync(`/proc/${pool.pid}/fd`).map(Number));
  let lowestFree = 0;
  while (used.has(lowestFree)) lowestFree++;
  const hard = /^Max open files\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pool.pid}/limits`, 'utf8'))![1]!;
  execFileSync('prlimit', ['--pid', String(pool.pid), `--nofile=${lowestFree}:${hard}`]);
  try {
    process.kill(pool.pid, 'SIGUSR1');
    await waitFor(() => pool.stderr().includes('WARNING'), { timeoutMs: 10_000, what: 'a warning on stderr' });
    assert.match(pool.stderr(), /can't reopen log file '.*emfile\.log': Too many open files; still writing to the file opened before/);
  } finally {
    execFileSync('prlimit', ['--pid', String(pool.pid), `--nofile=${hard}:${hard}`]);
  }
  assert.equal(pool.exitStatus(), undefined);
  assert.match((await pool.request()).body, /pid=/);
  assert.match(read(log), /WARNING: can't reopen log file/);
  await pool.stop();
});

test('attack: a symlink planted in a directory nobody owns is refused at start (exit 255) and the decoy is untouched', async () => {
  const owned = attackerDir('owned-start');
  const target = decoy('decoy-start');
  const log = join(owned, 'pool.log');
  asAttacker(`ln -s '${target.path}' '${log}'`);
  const result = await runCli(['-n', '-s', join(dir, 'attack-start.sock'), '--log-file', log, '--', RESPONDER]);
  assert.equal(result.code, 255);
  assert.equal(result.stderr, `spawn-fcgi-ts: can't open log file '${log}': it is a symbolic link (refused)\n`);
  target.check();

  // A FIFO must be refused without blocking the start, and a hard link to the decoy too.
  rmSync(log);
  asAttacker(`mkfifo '${log}'`);
  const fifo = await runCli(['-n', '-s', join(dir, 'attack-fifo.sock'), '--log-file', log, '--', RESPONDER]);
  assert.equal(fifo.code, 255);
  assert.match(fifo.stderr, /^spawn-fcgi-ts: can't open log file '.*': it is not a regular file \(refused\)\n$/);
  rmSync(log);
  linkSync(target.path, log); // as root: an attacker can do it where fs.protected_hardlinks is 0
  const hard = await runCli(['-n', '-s', join(dir, 'attack-link.sock'), '--log-file', log, '--', RESPONDER]);
  assert.equal(hard.code, 255);
  assert.match(hard.stderr, /it has more than one hard link \(refused\)/);
  rmSync(log);
  target.check();
});

test('attack: after a logrotate-style move, a planted symlink (then a FIFO) is refused on SIGUSR1; the pool keeps its file', async () => {
  const owned = attackerDir('owned-rotate');
  const target = decoy('decoy-rotate');
  const log = join(owned, 'pool.log');
  const pool = await startPool(['-s', join(dir, 'attack-rotate.sock'), '--log-file', log, '--', RESPONDER]);
  await waitFor(() => read(log).includes('serving on'), { timeoutMs: 10_000 });
  asAttacker(`mv '${log}' '${log}.1' && ln -s '${target.path}' '${log}'`);
  process.kill(pool.pid, 'SIGUSR1');
  await waitFor(() => pool.stderr().includes('WARNING'), { timeoutMs: 10_000, what: 'a warning on stderr' });
  assert.match(pool.stderr(), /can't reopen log file '.*pool\.log': it is a symbolic link \(refused\); still writing to the file opened before/);
  const victim = await restartOneChild(pool);
  await waitFor(() => read(`${log}.1`).includes(`[0:${victim}]`), { timeoutMs: 10_000, what: 'the old file to keep getting lines' });
  target.check();

  asAttacker(`rm '${log}' && mkfifo '${log}'`);
  process.kill(pool.pid, 'SIGUSR1');
  await waitFor(() => /not a regular file/.test(pool.stderr()), { timeoutMs: 10_000, what: 'the FIFO warning' });
  assert.match((await pool.request()).body, /pid=/, 'a FIFO does not block the supervisor');
  await pool.stop();
  target.check();
  assert.equal(statSync(`${log}.1`).uid, 0);
});
