/**
 * -c: the socket path is read inside the jail, as spawn-fcgi (which chroots first) reads it. A symlink
 * inside the jail must not carry the socket outside (issue 13 item 6), `..` stops at the jail's root,
 * and a jail deeper than sun_path's 107 bytes still works (item 7). With -S the path is a host path.
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseResponder, requireBuild, RESPONDER, startPool } from '../helpers/pool.js';
import { isGone, removePath, tmpDir, waitFor } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-rootsafe-jail');
  chmodSync(dir, 0o755);
});
after(() => removePath(dir));

/** A jail with the statically linked responder as /bin/app and an empty /tmp. */
function makeJail(jail: string): void {
  mkdirSync(join(jail, 'bin'), { recursive: true, mode: 0o755 });
  copyFileSync(RESPONDER, join(jail, 'bin', 'app'));
  chmodSync(join(jail, 'bin', 'app'), 0o755);
}

describe('the socket path inside a chroot', () => {
  test('a symlink $JAIL/run -> <host dir> resolves inside the jail: the socket lands in $JAIL<host dir>, nothing on the host', async () => {
    const jail = join(dir, 'jail1');
    makeJail(jail);
    const host = join(dir, 'outside'); // a real host directory the link names
    mkdirSync(host, { mode: 0o755 });
    symlinkSync(host, join(jail, 'run'));
    mkdirSync(join(jail, host), { recursive: true, mode: 0o755 }); // the same path, inside the jail
    const inside = join(jail, host, 'php.sock');
    const pool = await startPool(['-c', jail, '-s', '/run/php.sock', '-u', 'nobody', '--', '/bin/app'], { target: { path: inside } });
    assert.ok(lstatSync(inside).isSocket(), `${inside} is not a socket`);
    assert.deepEqual(readdirSync(host), [], 'nothing bound in the host directory');
    const info = parseResponder((await pool.request()).body);
    assert.equal(readlinkSync(`/proc/${info.pid}/root`), jail);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.ok(!existsSync(inside), 'removed at stop');
  });

  test('a relative symlink climbing with .. stops at the jail root', async () => {
    const jail = join(dir, 'jail2');
    makeJail(jail);
    symlinkSync('../../../../../../..', join(jail, 'up'));
    const inside = join(jail, 'up.sock');
    const pool = await startPool(['-c', jail, '-s', '/up/../up/up.sock', '-u', 'nobody', '--', '/bin/app'], { target: { path: inside } });
    assert.ok(lstatSync(inside).isSocket(), `${inside} is not a socket`);
    assert.ok(!existsSync(join(dir, 'up.sock')) && !existsSync('/up.sock'), 'nothing above the jail');
    await pool.request();
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test('-S: the path is a host path, symlinks and all, as before', async () => {
    const jail = join(dir, 'jail3');
    makeJail(jail);
    const host = join(dir, 'host-sockets');
    mkdirSync(host, { mode: 0o755 });
    const link = join(dir, 'host-link');
    symlinkSync(host, link);
    const pool = await startPool(['-c', jail, '-S', '-s', join(link, 'x.sock'), '-u', 'nobody', '--', '/bin/app']);
    assert.ok(lstatSync(join(host, 'x.sock')).isSocket());
    await pool.request();
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test('a jail path of ~150 bytes plus /tmp/php.sock: the pool serves (the bind is relative, not truncated)', async () => {
    let jail = join(dir, 'long');
    while (Buffer.byteLength(jail) < 150) jail = join(jail, 'a-rather-long-directory-name');
    makeJail(jail);
    mkdirSync(join(jail, 'tmp'), { mode: 0o1777 });
    const inside = join(jail, 'tmp', 'php.sock');
    assert.ok(Buffer.byteLength(inside) > 107, 'longer than sun_path');
    // Clients reach it through a short symlink to its directory (connect(2) follows it).
    const short = join(dir, 'short');
    symlinkSync(join(jail, 'tmp'), short);
    const pool = await startPool(['-c', jail, '-s', '/tmp/php.sock', '-u', 'nobody', '--', '/bin/app'], { target: { path: join(short, 'php.sock') } });
    assert.ok(lstatSync(inside).isSocket(), `${inside} is not a socket`);
    assert.deepEqual(
      readdirSync(join(jail, 'tmp')).filter((n) => !n.endsWith('.control')),
      ['php.sock'],
      'no stray or truncated socket',
    );
    const info = parseResponder((await pool.request()).body);
    assert.equal(readlinkSync(`/proc/${info.pid}/root`), jail);
    assert.match(pool.stderr(), /1 child serving on \/tmp\/php\.sock/);
    assert.doesNotMatch(pool.stderr(), /couldn't chmod/);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.ok(!existsSync(inside), 'removed at stop');

    // A stale socket at that long path is probed (from inside its directory) and replaced.
    const again = await startPool(['-c', jail, '-s', '/tmp/php.sock', '-u', 'nobody', '--', '/bin/app'], { target: { path: join(short, 'php.sock') } });
    const children = again.childPids();
    again.kill(); // SIGKILL: the socket file stays behind
    await again.exited;
    await waitFor(() => children.every((pid) => isGone(pid)), { what: 'the children to die with the supervisor' });
    assert.ok(lstatSync(inside).isSocket(), 'a stale socket is left');
    const third = await startPool(['-c', jail, '-s', '/tmp/php.sock', '-u', 'nobody', '--', '/bin/app'], { target: { path: join(short, 'php.sock') } });
    await third.request();
    assert.deepEqual(await third.stop(), { code: 0, signal: null });
  });
});
