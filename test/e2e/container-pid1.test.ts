/**
 * spawn-fcgi-ts as PID 1 of a container, the way `docker run image spawn-fcgi-ts -n ...` runs it:
 * `unshare --pid --fork --mount-proc node dist/cli.cjs -n -s S -F 1 -C 2 -- php-cgi`. Signals reach the
 * supervisor (SIGHUP restarts, SIGTERM stops with status 0), and the php-cgi workers orphaned when their
 * master is killed with -9 are reaped instead of piling up as zombies. The namespace's processes are read
 * from outside, through /proc/<pid>/task/<tid>/children of the namespace's PID 1.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, fcgiGet, requireBuild, RESPONDER, track, untrack, type Exit } from '../helpers/pool.js';
import { readStatus, removePath, tmpDir, waitFor } from '../helpers/proc.js';

const PHP_CGI = '/usr/bin/php-cgi';
const canUnshare = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;
const SKIP = !canUnshare ? 'unshare --pid --mount-proc is not permitted here' : spawnSync(PHP_CGI, ['-v']).status !== 0 ? 'no php-cgi' : false;

let dir = '';
before(() => {
  requireBuild();
  dir = tmpDir('sfts-pid1');
});
after(() => removePath(dir));

/** Direct children of `pid`, from every thread's children list (Node's children belong to its main thread, but not always). */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
      try {
        return readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

function descendants(pid: number): number[] {
  return childrenOf(pid).flatMap((child) => [child, ...descendants(child)]);
}

const isZombie = (pid: number): boolean => readStatus(pid)?.state.startsWith('Z') ?? false;

interface Container {
  unshare: ChildProcess;
  /** The host pid of the namespace's PID 1. */
  init: number;
  exited: Promise<Exit>;
  stderr(): string;
}

async function startContainer(socket: string): Promise<Container> {
  const unshare = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, CLI, '-n', '-s', socket, '-F', '1', '-C', '2', '--', PHP_CGI], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  track(unshare.pid!);
  let stderr = '';
  unshare.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<Exit>((resolve) => unshare.once('exit', (code, signal) => resolve({ code, signal })));
  const init = await waitFor(() => childrenOf(unshare.pid!)[0], { what: 'the namespace PID 1' });
  await waitFor(() => /(child|children) serving on /.test(stderr), { timeoutMs: 20_000, what: `the pool to serve (stderr: ${stderr})` });
  return { unshare, init, exited, stderr: () => stderr };
}

test('as PID 1: orphaned php-cgi workers are reaped, SIGHUP and SIGTERM reach the supervisor, exit 0', { timeout: 90_000, skip: SKIP }, async () => {
  const socket = join(dir, 'php.sock');
  const container = await startContainer(socket);
  const { init } = container;

  // PID 1 is the relay; under it the init helper, under that the supervisor, its php-cgi master and workers.
  const [initHelper] = childrenOf(init);
  assert.match(cmdline(initHelper!), /spawn-fcgi-ts-helper --init -- /);
  const supervisor = await waitFor(() => childrenOf(initHelper!).find((pid) => cmdline(pid).includes(CLI)), { what: 'the supervisor' });
  // The supervisor's children are its resident spawner and what serves; the spawner's, the FastCGI apps.
  const apps = () => childrenOf(supervisor).flatMap((pid) => (cmdline(pid).includes(' --spawner ') ? childrenOf(pid) : []));
  const master = await waitFor(() => apps().find((pid) => cmdline(pid).startsWith(PHP_CGI)), { what: 'the php-cgi master' });
  const workers = await waitFor(
    () => {
      const w = childrenOf(master);
      return w.length === 2 ? w : undefined;
    },
    { what: 'two php-cgi workers' },
  );
  await fcgiGet({ path: socket });

  // The master dies without taking its workers along: they are orphans of the namespace.
  process.kill(master, 'SIGKILL');
  await waitFor(() => workers.every((pid) => readStatus(pid)?.ppid !== master), { what: 'the workers to be reparented' });
  for (const pid of workers) assert.equal(readStatus(pid)?.ppid, initHelper, `worker ${pid} belongs to the init helper now`);
  // They end (here: a signal; in real life their max requests): each must be reaped, not left a zombie.
  for (const pid of workers) process.kill(pid, 'SIGTERM');
  await waitFor(() => workers.every((pid) => readStatus(pid) === undefined), {
    timeoutMs: 10_000,
    what: `orphans ${workers.join(', ')} to be reaped (states: ${workers.map((pid) => readStatus(pid)?.state).join(', ')})`,
  });
  // The supervisor restarted its slot; nothing in the namespace is a zombie.
  await waitFor(() => apps().some((pid) => pid !== master && cmdline(pid).startsWith(PHP_CGI)), { what: 'the slot to be restarted' });
  await waitFor(() => !descendants(init).some(isZombie), { what: 'no zombie in the namespace' });

  // SIGHUP to PID 1: a rolling restart by the supervisor.
  process.kill(init, 'SIGHUP');
  await waitFor(() => /rolling restart done/.test(container.stderr()), { timeoutMs: 30_000, what: 'the rolling restart' });
  await fcgiGet({ path: socket });

  // SIGTERM to PID 1: a clean stop, status 0, relayed by unshare.
  process.kill(init, 'SIGTERM');
  const exit = await container.exited;
  untrack(container.unshare.pid!);
  assert.deepEqual(exit, { code: 0, signal: null }, container.stderr());
  assert.match(container.stderr(), /stopping \(SIGTERM\)/);
  assert.match(container.stderr(), /all children gone/);
});

test('as PID 1 with a helper that cannot run here: the same one-line error, exit 255', {
  timeout: 30_000,
  skip: canUnshare ? false : 'unshare --pid is not permitted here',
}, async () => {
  // A file execvp() cannot exec (ENOEXEC) would be handed to /bin/sh: PID 1 must not even try it.
  const broken = join(dir, 'broken-helper');
  copyFileSync(RESPONDER, broken);
  const bytes = readFileSync(broken);
  bytes.writeUInt16LE(process.arch === 'arm64' ? 62 : 183, 18);
  writeFileSync(broken, bytes);
  chmodSync(broken, 0o755);
  const run = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, CLI, '-n', '-s', join(dir, 'b.sock'), '--', RESPONDER], {
    encoding: 'utf8',
    env: { ...process.env, SPAWN_FCGI_TS_HELPER: broken },
    timeout: 20_000,
  });
  assert.equal(run.status, 255, run.stderr);
  const lines = run.stderr.split('\n').filter((line) => line !== '' && !line.includes('runs as root'));
  assert.deepEqual(lines, [
    `spawn-fcgi-ts: no native helper for linux-${process.arch}: ${broken} is an ELF executable for ${process.arch === 'arm64' ? 'x64' : 'arm64'}, not ${process.arch}; point SPAWN_FCGI_TS_HELPER to a helper built for this machine, or unset it`,
  ]);
});
