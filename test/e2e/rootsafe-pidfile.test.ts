/**
 * Root-safe PID file (issue 13): the directory of the PID file belongs to the attacker (`nobody`), who
 * plants symlinks and files at the temporary names the old code used (`<pidfile>.<pid>.tmp`); the
 * PID file must still be root's own 0644 regular file with our pid, and nothing the attacker pointed
 * at may change. A symlinked directory above the PID file (/var/run -> /run) is accepted, a symlink
 * as the PID file itself is not; at stop only our own regular file is removed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireBuild, RESPONDER, runCli, startPool, track } from '../helpers/pool.js';
import { removePath, tmpDir, waitFor } from '../helpers/proc.js';

const NOBODY = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
const NOGROUP = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
/** How many future pids get a planted symlink: the supervisor's pid must fall among them. */
const PLANTED = 3000;
const SECRET = 'root only\n';

let dir: string;
let responder: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-rootsafe-pid');
  chmodSync(dir, 0o755);
  responder = join(dir, 'responder');
  copyFileSync(RESPONDER, responder);
  chmodSync(responder, 0o755);
});
after(() => removePath(dir));

function attackerDirectory(name: string): string {
  const owned = join(dir, name);
  mkdirSync(owned, { mode: 0o755 });
  chownSync(owned, NOBODY, NOGROUP);
  return owned;
}

function rootDecoy(name: string): string {
  const safe = join(dir, `${name}-safe`);
  mkdirSync(safe, { mode: 0o755 });
  const decoy = join(safe, 'decoy');
  writeFileSync(decoy, SECRET, { mode: 0o600 });
  return decoy;
}

/** As the attacker: files and links are theirs, as they would be. */
function asNobody(script: string, ...args: string[]): void {
  execFileSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'sh', '-c', script, 'sh', ...args]);
}

/** As the attacker, in one process (a shell loop would use up the very pids it plants for). */
function plantAsNobody(kind: 'symlink' | 'file', base: string, from: number, count: number, target = ''): void {
  const program = `const fs = require('node:fs');
const [base, first, count, kind, target] = process.argv.slice(1);
process.umask(0);
for (let pid = Number(first); pid < Number(first) + Number(count); pid++) {
  const name = base + '.' + pid + '.tmp';
  if (kind === 'symlink') fs.symlinkSync(target, name); else fs.closeSync(fs.openSync(name, 'w', 0o666));
}`;
  execFileSync('setpriv', [
    '--reuid=nobody',
    '--regid=nogroup',
    '--clear-groups',
    process.execPath,
    '-e',
    program,
    base,
    String(from),
    String(count),
    kind,
    target,
  ]);
}

function assertRootPidFile(path: string, pid: number): void {
  const stats = lstatSync(path);
  assert.ok(stats.isFile(), `${path} is not a regular file`);
  assert.equal(stats.uid, 0, "the PID file is root's");
  assert.equal(stats.gid, 0, "the PID file's group is root's");
  assert.equal(stats.mode & 0o7777, 0o644);
  assert.equal(stats.nlink, 1, 'the PID file has no other name');
  assert.equal(readFileSync(path, 'utf8'), `${pid}\n`);
}

describe('the PID file in a directory the attacker owns', () => {
  test(`symlinks planted at the old temporary names of the next ${PLANTED} pids: the decoy is untouched`, async (t) => {
    const owned = attackerDirectory('links');
    const decoy = rootDecoy('links');
    const pidFile = join(owned, 'app.pid');
    const next = Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8')) + 1;
    plantAsNobody('symlink', pidFile, next, PLANTED, decoy);
    const pool = await startPool(['-s', join(dir, 'links.sock'), '-P', pidFile, '--', responder]);
    t.diagnostic(`supervisor pid ${pool.pid}, links planted for ${next}..${next + PLANTED - 1}`);
    assert.ok(pool.pid >= next && pool.pid < next + PLANTED, `pid ${pool.pid} outside the planted range: the test proves nothing`);
    assert.ok(lstatSync(`${pidFile}.${pool.pid}.tmp`).isSymbolicLink(), 'the link for our own pid was planted');
    assertRootPidFile(pidFile, pool.pid);
    assert.equal(readFileSync(decoy, 'utf8'), SECRET);
    assert.equal(statSync(decoy).mode & 0o7777, 0o600);
    assert.equal(statSync(decoy).uid, 0);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.ok(!existsSync(pidFile), 'our PID file is removed at stop');
    assert.equal(readdirSync(owned).filter((n) => !n.endsWith('.tmp')).length, 0, 'no temporary file left');
    assert.equal(readdirSync(owned).length, PLANTED, 'the planted links are left alone');
    assert.equal(readFileSync(decoy, 'utf8'), SECRET);
  });

  test('a 0666 file pre-created at the old temporary name does not become the PID file', async () => {
    const owned = attackerDirectory('precreated');
    const pidFile = join(owned, 'app.pid');
    const next = Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'utf8')) + 1;
    // Pre-create for a range of future pids (the old code would have written into whichever matched).
    plantAsNobody('file', pidFile, next, 1000);
    const pool = await startPool(['-s', join(dir, 'pre.sock'), '-P', pidFile, '--', responder]);
    assertRootPidFile(pidFile, pool.pid);
    const planted = `${pidFile}.${pool.pid}.tmp`;
    assert.ok(existsSync(planted), `pid ${pool.pid} outside the pre-created range: the test proves nothing`);
    assert.equal(lstatSync(planted).uid, NOBODY);
    assert.equal(lstatSync(planted).mode & 0o777, 0o666);
    assert.equal(readFileSync(planted, 'utf8'), '', "the attacker's file was not written");
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test("at stop, a PID file replaced by a symlink to a file with our pid is not followed, nor is someone else's removed", async () => {
    const owned = attackerDirectory('replaced');
    const decoy = rootDecoy('replaced');
    const pidFile = join(owned, 'app.pid');
    const pool = await startPool(['-s', join(dir, 'replaced.sock'), '-P', pidFile, '--', responder]);
    writeFileSync(decoy, `${pool.pid}\n`); // the decoy even holds our pid
    asNobody('rm -f "$1" && ln -s "$2" "$1"', pidFile, decoy);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.equal(readlinkSync(pidFile), decoy, 'the symlink is not removed');
    assert.equal(readFileSync(decoy, 'utf8'), `${pool.pid}\n`, 'the decoy is not touched');

    const second = await startPool(['-s', join(dir, 'replaced2.sock'), '-P', join(owned, 'b.pid'), '--', responder]);
    writeFileSync(join(owned, 'b.pid'), '1\n');
    assert.deepEqual(await second.stop(), { code: 0, signal: null });
    assert.equal(readFileSync(join(owned, 'b.pid'), 'utf8'), '1\n', 'a PID file naming another process is left');
  });
});

describe('symlinks around the PID file', () => {
  test('a symlinked directory above the PID file works (-P /var/run/x.pid, /var/run -> /run)', async () => {
    const real = join(dir, 'run');
    mkdirSync(real, { mode: 0o755 });
    const varRun = join(dir, 'var-run');
    symlinkSync(real, varRun);
    const pool = await startPool(['-s', join(dir, 'varrun.sock'), '-P', join(varRun, 'x.pid'), '--', responder]);
    assertRootPidFile(join(real, 'x.pid'), pool.pid);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.ok(!existsSync(join(real, 'x.pid')));
  });

  test('the real /var/run, in daemon mode as init scripts use it', async (t) => {
    if (!lstatSync('/var/run').isSymbolicLink()) {
      t.skip('/var/run is not a symlink here');
      return;
    }
    const pidFile = `/var/run/sfts-rootsafe-${process.pid}.pid`;
    const sock = join(dir, 'daemon.sock');
    try {
      const result = await runCli(['-s', sock, '-P', pidFile, '--', responder]);
      assert.equal(result.code, 0, result.stderr);
      const pid = Number(readFileSync(pidFile, 'utf8'));
      track(pid);
      assertRootPidFile(pidFile, pid);
      process.kill(pid, 'SIGTERM');
      await waitFor(() => !existsSync(pidFile), { what: 'the daemon to remove its PID file', timeoutMs: 15_000 });
    } finally {
      rmSync(pidFile, { force: true });
    }
  });

  test('a symlink as the PID file itself is refused, before anything starts', async () => {
    const decoy = rootDecoy('final-link');
    const link = join(dir, 'link.pid');
    symlinkSync(decoy, link);
    const result = await runCli(['-n', '-s', join(dir, 'final-link.sock'), '-P', link, '--', responder]);
    assert.equal(result.code, 255);
    assert.match(result.stderr, new RegExp(`spawn-fcgi-ts: PID-file exists and isn't regular file: '${link}'\n$`));
    assert.equal(readFileSync(decoy, 'utf8'), SECRET);
    assert.ok(!existsSync(join(dir, 'final-link.sock')));
  });
});
