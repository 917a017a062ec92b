/**
 * Root-safe socket creation (issue 13): an unprivileged attacker (`nobody`) who owns the socket's
 * directory races the supervisor with an inotify racer (test/fixtures/racer.c) that swaps the new
 * socket, or the supervisor's private directory, for a symlink to a root-owned decoy. No start may
 * change the decoy's owner, mode or content. Independent of fs.protected_symlinks: the attacker owns
 * the directory. Also the clear messages for a symlink, a FIFO, a missing directory and a non-UTF-8 path.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireBuild, RESPONDER, ROOT, runCli, startPool, type CliResult } from '../helpers/pool.js';
import { isGone, removePath, signalIfAlive, tmpDir, waitFor } from '../helpers/proc.js';

const NOBODY = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
const NOGROUP = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
const STARTS = 50;
const SECRET = 'root only\n';

let dir: string;
let racerBinary: string;
let exitApp: string;
let responder: string;

before(() => {
  requireBuild();
  dir = tmpDir('sfts-rootsafe-socket');
  chmodSync(dir, 0o755);
  racerBinary = join(dir, 'racer');
  execFileSync('cc', ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-o', racerBinary, join(ROOT, 'test', 'fixtures', 'racer.c')]);
  exitApp = join(dir, 'exit3.sh');
  writeFileSync(exitApp, '#!/bin/sh\nexit 3\n', { mode: 0o755 });
  responder = join(dir, 'responder');
  copyFileSync(RESPONDER, responder);
  chmodSync(responder, 0o755);
});
after(() => removePath(dir));

interface Arena {
  /** The attacker's directory (owned by nobody), where the socket goes. */
  owned: string;
  /** A root-owned 0600 file in a root-owned directory: what the attacker wants root to chmod/chown. */
  decoy: string;
}

function arena(name: string): Arena {
  const base = join(dir, name);
  const owned = join(base, 'owned');
  const safe = join(base, 'safe');
  mkdirSync(owned, { recursive: true, mode: 0o755 });
  chmodSync(base, 0o755);
  chownSync(owned, NOBODY, NOGROUP);
  mkdirSync(safe, { mode: 0o755 });
  const decoy = join(safe, 'decoy');
  writeFileSync(decoy, SECRET, { mode: 0o600 });
  return { owned, decoy };
}

/** The racer, as nobody; resolves once it watches. */
async function startRacer(owned: string, name: string, decoy: string, extra: string[] = []): Promise<{ child: ChildProcess; swaps: () => number }> {
  const child = spawn('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', racerBinary, owned, name, decoy, ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  await waitFor(() => output.startsWith('ready\n'), { what: 'the racer to watch' });
  return { child, swaps: () => output.split('\n').filter((l) => l.startsWith('swapped')).length };
}

function assertDecoyUntouched(decoy: string, after: string): void {
  const stats = statSync(decoy);
  assert.equal(stats.uid, 0, `decoy owner changed ${after}`);
  assert.equal(stats.gid, 0, `decoy group changed ${after}`);
  assert.equal(stats.mode & 0o7777, 0o600, `decoy mode changed ${after}`);
  assert.equal(readFileSync(decoy, 'utf8'), SECRET, `decoy content changed ${after}`);
}

/** The lines a start printed, without the run-as-root warning every one of them gives. */
const errorLines = (result: CliResult): string[] => result.stderr.split('\n').filter((l) => l !== '' && !l.includes('WARNING'));

describe('an attacker who owns the socket directory races the supervisor', () => {
  test(`${STARTS} starts with -M 0666 -U nobody against a socket-swapping racer: the decoy never changes`, async (t) => {
    const { owned, decoy } = arena('swap-socket');
    const sock = join(owned, 'x.sock');
    const racer = await startRacer(owned, 'x.sock', decoy);
    const outcomes = new Map<string, number>();
    try {
      for (let i = 0; i < STARTS; i++) {
        // The app exits at once: the start fails after the bind, chmod and chown, which is all the race needs.
        const result = await runCli(['-n', '-s', sock, '-M', '0666', '-U', 'nobody', '--', exitApp]);
        assertDecoyUntouched(decoy, `after start ${i + 1}`);
        const lines = errorLines(result);
        for (const line of lines) assert.doesNotMatch(line, /internal error/, result.stderr);
        const outcome = lines.join(' | ');
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        rmSync(sock, { force: true }); // the racer's symlink
      }
    } finally {
      signalIfAlive(racer.child.pid!, 'SIGKILL');
    }
    t.diagnostic(`racer swaps: ${racer.swaps()} in ${STARTS} starts; outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.ok(racer.swaps() >= STARTS / 2, `the racer swapped only ${racer.swaps()} sockets: it did not race`);
    assert.deepEqual([...outcomes.keys()], ['spawn-fcgi-ts: child exited with: 3']);
    // The swapped-aside sockets are the attacker's; nothing else was left in the directory.
    assert.deepEqual(
      readdirSync(owned).filter((n) => !n.startsWith('aside.')),
      [],
    );
  });

  test('a racer that swaps the private directory for a symlink: the start is refused or wins cleanly, the decoy never changes', async (t) => {
    const { owned, decoy } = arena('swap-dir');
    const sock = join(owned, 'x.sock');
    const racer = await startRacer(owned, 'x.sock', decoy, ['--dirs']);
    const outcomes = new Map<string, number>();
    try {
      for (let i = 0; i < 10; i++) {
        const result = await runCli(['-n', '-s', sock, '-M', '0666', '-U', 'nobody', '--', exitApp]);
        assertDecoyUntouched(decoy, `after start ${i + 1}`);
        const outcome = errorLines(result)
          .join(' | ')
          .replace(/'[^']*'/, "'DIR'");
        assert.match(outcome, /^spawn-fcgi-ts: (child exited with: 3|bind failed: the temporary directory 'DIR' was replaced while binding)$/);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        rmSync(sock, { force: true });
      }
    } finally {
      signalIfAlive(racer.child.pid!, 'SIGKILL');
    }
    t.diagnostic(`racer swaps: ${racer.swaps()}; outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.ok(racer.swaps() > 0, 'the racer never swapped anything');
    assert.deepEqual(readdirSync(join(decoy, '..')), ['decoy'], "nothing was bound or linked in the decoy's directory");
  });

  test('the socket is published with the asked mode and owner, and removed at stop only while it is ours', async () => {
    const { owned } = arena('publish');
    const sock = join(owned, 'app.sock');
    const pool = await startPool(['-s', sock, '-M', '0640', '-U', 'nobody', '-u', 'nobody', '--', responder]);
    const stats = lstatSync(sock);
    assert.ok(stats.isSocket());
    assert.equal(stats.mode & 0o7777, 0o640);
    assert.equal(stats.uid, NOBODY);
    assert.deepEqual(
      readdirSync(owned).filter((n) => n !== 'app.sock.control'),
      ['app.sock'],
      'no private directory left behind',
    );
    await pool.request();
    // The attacker moves our socket away and puts a file of theirs at the name: stop must leave it.
    execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'sh', '-c', `mv "$0" "$0.moved" && : > "$0"`, sock]);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.ok(lstatSync(sock).isFile(), "the attacker's file at the socket path is left alone");
    assert.ok(existsSync(`${sock}.moved`), 'our moved socket is not chased');
  });

  test('a stale socket is replaced, a live one refused', async () => {
    const { owned } = arena('stale');
    const sock = join(owned, 'app.sock');
    const first = await startPool(['-s', sock, '--', responder]);
    const again = await runCli(['-n', '-s', sock, '--', responder]);
    assert.equal(again.code, 255);
    assert.deepEqual(errorLines(again), ["spawn-fcgi-ts: socket is already in use, can't spawn"]);
    const children = first.childPids();
    first.kill(); // SIGKILL: the socket file stays, stale
    await first.exited;
    await waitFor(() => children.every((pid) => isGone(pid)), { what: 'the children to die with the supervisor' });
    assert.ok(lstatSync(sock).isSocket());
    const staleInode = lstatSync(sock).ino;
    const second = await startPool(['-s', sock, '--', responder]);
    assert.notEqual(lstatSync(sock).ino, staleInode, 'a new socket replaced the stale one');
    await second.request();
    assert.deepEqual(await second.stop(), { code: 0, signal: null });
    assert.ok(!existsSync(sock));
  });
});

describe('the relative bind name', () => {
  test('a relative -s with --keep-socket: the socket survives the exit (libuv never unlinks its bind name relative to the cwd)', async () => {
    const work = join(dir, 'relative');
    mkdirSync(work, { mode: 0o755 });
    const pool = await startPool(['-s', 'kept.sock', '--keep-socket', '--', responder], { cwd: work, target: { path: join(work, 'kept.sock') } });
    await pool.request();
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.ok(lstatSync(join(work, 'kept.sock')).isSocket(), 'the kept socket is still there');
    assert.deepEqual(
      readdirSync(work).filter((n) => !n.endsWith('.control')),
      ['kept.sock'],
    );
  });
});

describe('clear refusals', () => {
  test('a symlink, a FIFO, a missing directory, a non-UTF-8 name: one line each, exit 255, nothing created', async () => {
    const { owned, decoy } = arena('refusals');
    const link = join(owned, 'link.sock');
    symlinkSync(decoy, link);
    const fifo = join(owned, 'fifo.sock');
    execFileSync('mkfifo', [fifo]);
    const cases: [string[], string][] = [
      [['-s', link], `refusing to remove '${link}': it is a symbolic link, not a socket`],
      [['-s', fifo], `refusing to remove '${fifo}': it is a FIFO, not a socket`],
      [['-s', join(owned, 'missing', 'x.sock')], 'bind failed: No such file or directory'],
    ];
    for (const [args, message] of cases) {
      for (const mode of [['-n'], []]) {
        const result = await runCli([...mode, ...args, '--', responder]);
        assert.equal(result.code, 255, result.stderr);
        assert.deepEqual(errorLines(result), [`spawn-fcgi-ts: ${message}`], `${mode.join('')} ${args.join(' ')}`);
      }
    }
    // Bytes that are not UTF-8 (Latin-1 "café"): Node would bind caf\uFFFD.sock, a name no web server asks for.
    const latin1 = await new Promise<CliResult>((resolve) => {
      const child = spawn('/bin/sh', [
        '-c',
        `exec "$0" "$1" -n -s "$(printf '%s/caf\\351.sock' "$2")" -- "$3"`,
        process.execPath,
        join(ROOT, 'dist', 'cli.cjs'),
        owned,
        responder,
      ]);
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      child.once('close', (code, signal) => resolve({ pid: child.pid!, code, signal, stdout: '', stderr }));
    });
    assert.equal(latin1.code, 255, latin1.stderr);
    assert.equal(errorLines(latin1).length, 1, latin1.stderr);
    assert.match(errorLines(latin1)[0]!, /^spawn-fcgi-ts: the Unix domain socket path '.*caf\uFFFD\.sock' is not valid UTF-8: use a UTF-8 path$/);
    assert.deepEqual(readdirSync(owned).sort(), ['fifo.sock', 'link.sock']);
    assertDecoyUntouched(decoy, 'after the refusals');
  });
});
