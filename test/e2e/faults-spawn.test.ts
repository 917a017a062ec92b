/**
 * Faults, failed spawns: the native helper missing for a moment (an upgrade) when the resident spawner
 * has to be started again, a foreign helper (ENOEXEC), too few file descriptors (EMFILE), an environment
 * too large for exec (E2BIG). The supervisor stays up, the slot backs off with a logged reason and shows
 * it in status, retries, and when it gives up it exits non-zero and cleans up; at start, one clear line
 * and 255.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CLI, RESPONDER, requireBuild, runCli, spawnersOf, startPool, type RunningPool } from '../helpers/pool.js';
import { fdCount, isGone, processesMentioning, removePath, tmpDir, waitFor } from '../helpers/proc.js';
import { helperPath } from '../../src/child/helper-binary.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-faults-spawn');
});
after(() => removePath(dir));

interface SlotView {
  slot: number;
  pid: number | null;
  state: string;
  lastExit: { reason: string } | null;
}

async function slots(control: string): Promise<SlotView[]> {
  const result = await runCli(['status', '--control', control, '--json'], { timeoutMs: 10_000 });
  // 0: every child running; 150: degraded (a slot backing off), which these tests cause on purpose.
  assert.ok(result.code === 0 || result.code === 150, `status failed (${result.code}): ${result.stderr}`);
  return (JSON.parse(result.stdout) as { slots: SlotView[] }).slots;
}

/** A private copy of the helper that the test can take away and put back. */
function helperCopy(name: string): { path: string; env: NodeJS.ProcessEnv } {
  const path = join(dir, name);
  copyFileSync(helperPath(process.env), path);
  chmodSync(path, 0o755);
  return { path, env: { ...process.env, SPAWN_FCGI_TS_HELPER: path } };
}

/** The pool's resident spawner: killing it takes its children with it (their death signal) and makes the next launch start a new one. */
function killSpawner(pool: RunningPool): void {
  const [spawner] = spawnersOf(pool.pid);
  assert.ok(spawner !== undefined, 'the pool has a spawner');
  process.kill(spawner, 'SIGKILL');
}

test('helper missing at run time (-F 1): restarts go on while the spawner runs; once it must start again, the slot backs off with "spawn failed: ENOENT", status says so, it comes back; TERM is prompt', async (t) => {
  const helper = helperCopy('helper-a');
  const sock = join(dir, 'a.sock');
  const control = `${sock}.control`;
  const pool = await startPool(['-s', sock, '-F', '1', '--restart-delay', '100ms', '--max-restart-delay', '300ms', '--', RESPONDER], { env: helper.env });
  t.after(() => pool.stop().catch(() => undefined));
  const [first] = pool.childPids();
  renameSync(helper.path, `${helper.path}.away`);
  // The resident spawner needs no file to fork: an upgrade that moves the helper does not stop restarts.
  process.kill(first!, 'SIGKILL');
  const second = await waitFor(() => pool.childPids().find((pid) => pid !== first), { timeoutMs: 10_000, what: 'a restart while the helper is away' });
  assert.doesNotMatch(pool.stderr(), /spawn failed/);
  // The spawner dies: its child goes with it, and a new spawner cannot be started.
  killSpawner(pool);
  await waitFor(() => isGone(second), { timeoutMs: 10_000, what: 'the child to go with its spawner' });
  await waitFor(() => /spawn failed: ENOENT/.test(pool.stderr()), { timeoutMs: 10_000, what: 'a logged spawn failure' });
  const during = await waitFor(
    async () => {
      const s = (await slots(control))[0]!;
      return s.state === 'backing off' ? s : undefined;
    },
    { timeoutMs: 10_000, what: "status: 'backing off'" },
  );
  t.diagnostic(`status while the helper is away: ${JSON.stringify(during)}`);
  assert.equal(during.pid, null, 'no PID -1, no stale pid');
  assert.match(during.lastExit?.reason ?? '', /could not start: spawn failed: ENOENT/);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(pool.exitStatus(), undefined, `the supervisor must stay up with its only slot backing off:\n${pool.stderr()}`);

  renameSync(`${helper.path}.away`, helper.path);
  const back = await waitFor(
    async () => {
      const s = (await slots(control))[0]!;
      return s.state === 'running' && s.pid !== null ? s : undefined;
    },
    { timeoutMs: 10_000, what: 'the slot running again' },
  );
  assert.deepEqual(pool.childPids(), [back.pid]);
  const answer = await pool.request({}, { timeoutMs: 30_000 });
  assert.equal(answer.appStatus, 0);

  // While backing off again, TERM must not wait the kill timeout (default 10 s) for a child that does not exist.
  renameSync(helper.path, `${helper.path}.away`);
  killSpawner(pool);
  await waitFor(async () => (await slots(control))[0]!.state === 'backing off', { timeoutMs: 10_000, what: 'backing off again' });
  const exit = await pool.stop('SIGTERM', 5000);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.doesNotMatch(pool.stderr(), /did not exit/);
  assert.equal(existsSync(sock), false, 'socket removed');
  assert.equal(existsSync(control), false, 'control socket removed');
  renameSync(`${helper.path}.away`, helper.path);
});

test('helper missing when the spawner must start again, with --max-failures 3: gives up, exits 255, removes socket, control socket and PID file', async (t) => {
  const helper = helperCopy('helper-b');
  const sock = join(dir, 'b.sock');
  const pidFile = join(dir, 'b.pid');
  const pool = await startPool(
    ['-s', sock, '-P', pidFile, '-F', '2', '--restart-delay', '50ms', '--max-restart-delay', '100ms', '--max-failures', '3', '--', RESPONDER],
    { env: helper.env },
  );
  t.after(() => pool.stop().catch(() => undefined));
  const children = pool.childPids();
  renameSync(helper.path, `${helper.path}.away`);
  killSpawner(pool);
  const exit = await Promise.race([pool.exited, new Promise<undefined>((resolve) => setTimeout(resolve, 15_000, undefined))]);
  t.diagnostic(pool.stderr().trim().split('\n').slice(-4).join(' | '));
  assert.ok(exit, `the supervisor did not give up:\n${pool.stderr()}`);
  assert.equal(exit.code, 255);
  assert.match(pool.stderr(), /spawn failed: ENOENT.*giving up \(--max-failures 3\)/);
  assert.equal(existsSync(sock), false, 'socket removed');
  assert.equal(existsSync(`${sock}.control`), false, 'control socket removed');
  assert.equal(existsSync(pidFile), false, 'PID file removed');
  for (const pid of children) assert.ok(isGone(pid), `child ${pid} left behind`);
});

test('a foreign helper (ENOEXEC) when the spawner must start again: the slot backs off, the supervisor stays up, recovers when the right one is back', async (t) => {
  const helper = helperCopy('helper-c');
  const sock = join(dir, 'c.sock');
  const pool = await startPool(['-s', sock, '-F', '1', '--restart-delay', '100ms', '--max-restart-delay', '200ms', '--', RESPONDER], { env: helper.env });
  t.after(() => pool.stop().catch(() => undefined));
  renameSync(helper.path, `${helper.path}.good`);
  // An ELF header for another machine (e_machine = 0xB7, aarch64): the kernel refuses it with ENOEXEC.
  const elf = Buffer.alloc(64);
  elf.write('\x7fELF', 0, 'latin1');
  elf[4] = 2;
  elf[5] = 1;
  elf[6] = 1;
  elf[16] = 2;
  elf[18] = 0xb7;
  writeFileSync(helper.path, elf, { mode: 0o755 });
  killSpawner(pool);
  // exec(2) gives ENOEXEC; glibc's execvp (which libuv uses) then hands the file to /bin/sh, which fails
  // with 126/127: the spawner never runs, and each launch fails, backed off like any other (the up-front
  // ELF check at start is the place for a clear "wrong architecture" message).
  await waitFor(() => /failure 3, restarting in \d+ ms/.test(pool.stderr()), { timeoutMs: 10_000, what: 'repeated failures backed off' });
  assert.match(pool.stderr(), /could not start: spawn failed: /);
  assert.equal(pool.exitStatus(), undefined);
  renameSync(`${helper.path}.good`, helper.path);
  await waitFor(() => pool.childPids().length === 1, { timeoutMs: 10_000, what: 'a child again' });
  assert.equal((await pool.request({}, { timeoutMs: 30_000 })).appStatus, 0);
});

test('prlimit --nofile=40 with -F 24: one line "could not start: spawn failed: EMFILE", exit 255, nothing left', async (t) => {
  const sock = join(dir, 'm.sock');
  // The spawner holds two pipes per child (its stdout and stderr): 24 children need more than 40 descriptors.
  const result = spawnSync('prlimit', ['--nofile=40:40', process.execPath, CLI, '-n', '-s', sock, '-F', '24', '--', RESPONDER], {
    encoding: 'utf8',
    timeout: 20_000,
    killSignal: 'SIGKILL',
  });
  t.diagnostic(`exit ${result.status}; ${result.stderr.trim().split('\n').join(' | ')}`);
  assert.equal(result.status, 255);
  assert.match(result.stderr, /^spawn-fcgi-ts: could not start: spawn failed: EMFILE \(too many open files in the supervisor\)$/m);
  assert.doesNotMatch(result.stderr, /internal error|TypeError|    at /);
  assert.equal(existsSync(sock), false);
  assert.deepEqual(processesMentioning(sock), []);
});

test('out of descriptors at run time (prlimit --nofile on the running spawner): EMFILE → backing off, no crash; raised → running again', async (t) => {
  const sock = join(dir, 'n.sock');
  const pool = await startPool(['-s', sock, '-F', '2', '--restart-delay', '100ms', '--max-restart-delay', '300ms', '--', RESPONDER]);
  t.after(() => pool.stop().catch(() => undefined));
  const [victim, other] = pool.childPids();
  const [spawner] = spawnersOf(pool.pid);
  // The spawner's own descriptors are 0-4 (socket, events, errors, commands, signalfd); every child's pipe
  // is above. A soft limit of 5 keeps those open and leaves no number for its successor's pipes.
  const limit = 5;
  t.diagnostic(`spawner descriptors before: ${fdCount(spawner!)}`);
  const lower = spawnSync('prlimit', ['--pid', String(spawner), `--nofile=${limit}:`], { encoding: 'utf8' });
  assert.equal(lower.status, 0, lower.stderr);
  process.kill(victim!, 'SIGKILL');
  await waitFor(() => /spawn failed: EMFILE/.test(pool.stderr()), { timeoutMs: 10_000, what: 'EMFILE logged' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(pool.exitStatus(), undefined, `the supervisor died:\n${pool.stderr()}`);
  assert.doesNotMatch(pool.stderr(), /internal error|TypeError|    at /);
  assert.deepEqual(pool.childPids(), [other], 'the other child keeps serving');
  const raise = spawnSync('prlimit', ['--pid', String(spawner), '--nofile=1024:'], { encoding: 'utf8' });
  assert.equal(raise.status, 0, raise.stderr);
  await waitFor(() => pool.childPids().length === 2, { timeoutMs: 10_000, what: 'two children again' });
  assert.equal((await pool.request({}, { timeoutMs: 30_000 })).appStatus, 0);
});

test('a config value over 128 KiB (what exec would refuse with E2BIG) gives one line and exit 255, not exit 0', async (t) => {
  const sock = join(dir, 'e.sock');
  const conf = join(dir, 'e.conf');
  writeFileSync(conf, `FCGISOCKET=${sock}\nFCGIPROGRAM=${RESPONDER}\nFCGI_WEB_SERVER_ADDRS=${'127.0.0.1,'.repeat(20_000)}127.0.0.1\n`);
  const result = await runCli(['-n', '--config', conf], { timeoutMs: 20_000 });
  t.diagnostic(`exit ${result.code}; ${result.stderr.trim().split('\n').join(' | ')}`);
  assert.equal(result.code, 255);
  assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
  assert.match(result.stderr, /FCGI_WEB_SERVER_ADDRS is longer than/);
  assert.equal(existsSync(sock), false);
});

test('E2BIG at exec (an environment over ARG_MAX): one line and exit 255, nothing left bound', (t) => {
  // ARG_MAX is a quarter of RLIMIT_STACK: under a 2 MiB stack, six 100 KB variables (each one allowed) are too many.
  const sock = join(dir, 'e2.sock');
  const conf = join(dir, 'e2.conf');
  const names = ['A1', 'A2', 'A3', 'A4', 'A5', 'A6'];
  const lines = names.map((name) => `export ${name}=${'x'.repeat(100_000)}`);
  writeFileSync(conf, `FCGISOCKET=${sock}\nFCGIPROGRAM=${RESPONDER}\n${lines.join('\n')}\nALLOWED_ENV="${names.join(' ')}"\n`);
  const result = spawnSync('prlimit', ['--stack=2097152', process.execPath, CLI, '-n', '--config', conf], { encoding: 'utf8', timeout: 30_000 });
  t.diagnostic(`exit ${result.status}; ${result.stderr.trim().split('\n').join(' | ')}`);
  assert.equal(result.status, 255);
  assert.match(result.stderr, /could not start: spawn failed: E2BIG/);
  assert.equal(existsSync(sock), false);
});
