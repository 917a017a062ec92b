/**
 * Who the children are and where they live: privilege drop with -u/-g (supplementary groups kept
 * through initgroups, checked in /proc and by the app itself), and chroot with -c/-d, with the socket
 * inside the chroot and outside it (-S).
 *
 * The test creates its own group and user (never touching `nobody`) and removes them afterwards.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PHP_FIXTURES, parseResponder, requireBuild, RESPONDER, startPool } from '../helpers/pool.js';
import { readStatus, removePath, sleep, tmpDir } from '../helpers/proc.js';

const NOBODY = 65534;
const NOGROUP = 65534;
const suffix = randomBytes(3).toString('hex');
const GROUP = `sfts-g-${suffix}`;
const USER = `sfts-u-${suffix}`;
let userId: number;
let groupId: number;
let dir: string;
let responder: string;

/** useradd & co. fail while another process holds the /etc/passwd lock: retry a few times. */
async function admin(command: string, args: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      return;
    } catch (error) {
      if (attempt >= 10) throw new Error(`${command} ${args.join(' ')}: ${(error as { stderr?: Buffer }).stderr?.toString() ?? error}`);
      await sleep(200);
    }
  }
}

const getentId = (database: string, name: string): number => Number(execFileSync('getent', [database, name], { encoding: 'utf8' }).split(':')[2]);

before(async () => {
  requireBuild();
  dir = tmpDir('sfts-identity');
  chmodSync(dir, 0o755);
  responder = join(dir, 'responder');
  copyFileSync(RESPONDER, responder);
  chmodSync(responder, 0o755);
  await admin('groupadd', [GROUP]);
  await admin('useradd', ['-M', '-N', '-g', 'nogroup', '-G', GROUP, '-s', '/usr/sbin/nologin', '-d', '/nonexistent', USER]);
  userId = getentId('passwd', USER);
  groupId = getentId('group', GROUP);
});

after(async () => {
  removePath(dir);
  // Each step on its own: a failed useradd must not keep the group around.
  await admin('userdel', [USER]).catch(() => undefined);
  await admin('groupdel', [GROUP]).catch(() => undefined);
  assert.throws(() => execFileSync('getent', ['passwd', USER]), `user ${USER} was not removed`);
  assert.throws(() => execFileSync('getent', ['group', GROUP]), `group ${GROUP} was not removed`);
});

const sorted = (ids: number[]) => [...ids].sort((a, b) => a - b);

describe('privilege drop', () => {
  test('-u <user>: uid, primary gid and the supplementary group from /etc/group', async (t) => {
    const sock = join(dir, 'user.sock');
    const pool = await startPool(['-s', sock, '-F', '2', '-u', USER, '--', responder]);
    const children = pool.childPids();
    assert.equal(children.length, 2);
    for (const pid of children) {
      const status = readStatus(pid)!;
      assert.deepEqual(status.uid, [userId, userId, userId, userId], `Uid of ${pid}`);
      assert.deepEqual(status.gid, [NOGROUP, NOGROUP, NOGROUP, NOGROUP], `Gid of ${pid}`);
      assert.deepEqual(sorted(status.groups), sorted([groupId, NOGROUP]), `Groups of ${pid}`);
    }
    const info = parseResponder((await pool.request()).body);
    assert.ok(children.includes(info.pid));
    assert.deepEqual([info.uid, info.euid, info.gid, info.egid], [userId, userId, NOGROUP, NOGROUP]);
    assert.deepEqual(sorted(info.groups), sorted([groupId, NOGROUP]));
    // The socket belongs to the children's user, so that they could re-open it.
    assert.deepEqual([lstatSync(sock).uid, lstatSync(sock).gid], [userId, NOGROUP]);
    t.diagnostic(`${USER}=${userId}, ${GROUP}=${groupId}: groups ${info.groups.join(',')}`);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test('-u <numeric uid> -g <group>: the group named by -g, initgroups still applied', async () => {
    const sock = join(dir, 'numeric.sock');
    const pool = await startPool(['-s', sock, '-u', String(userId), '-g', GROUP, '--', responder]);
    const info = parseResponder((await pool.request()).body);
    assert.deepEqual([info.uid, info.gid, info.egid], [userId, groupId, groupId]);
    assert.deepEqual(info.groups, [groupId]);
    const status = readStatus(info.pid)!;
    assert.deepEqual(status.gid, [groupId, groupId, groupId, groupId]);
    assert.deepEqual(status.groups, [groupId]);
    await pool.stop();
  });

  test('-u nobody -g nogroup', async () => {
    const sock = join(dir, 'nobody.sock');
    const pool = await startPool(['-s', sock, '-u', 'nobody', '-g', 'nogroup', '--', responder]);
    const [child] = pool.childPids();
    const status = readStatus(child!)!;
    assert.deepEqual(status.uid, [NOBODY, NOBODY, NOBODY, NOBODY]);
    assert.deepEqual(status.gid, [NOGROUP, NOGROUP, NOGROUP, NOGROUP]);
    assert.deepEqual(status.groups, [NOGROUP]);
    const info = parseResponder((await pool.request()).body);
    assert.deepEqual([info.pid, info.uid, info.gid, info.groups], [child, NOBODY, NOGROUP, [NOGROUP]]);
    await pool.stop();
  });

  test('php-cgi -u <user>: PHP itself sees the dropped ids and the supplementary group', async () => {
    const sock = join(dir, 'php-user.sock');
    const pool = await startPool(['-s', sock, '-u', USER, '--', 'php-cgi']);
    const answer = await pool.request({ SCRIPT_FILENAME: join(PHP_FIXTURES, 'id.php') });
    assert.match(answer.body, new RegExp(`^uid=${userId} euid=${userId}$`, 'm'));
    assert.match(answer.body, new RegExp(`^gid=${NOGROUP} egid=${NOGROUP}$`, 'm'));
    const groups = /^groups=(.*)$/m.exec(answer.body)![1]!.split(',').map(Number);
    assert.deepEqual(sorted(groups), sorted([groupId, NOGROUP]));
    await pool.stop();
  });
});

describe('chroot', () => {
  let jail: string;
  before(() => {
    jail = join(dir, 'jail');
    mkdirSync(join(jail, 'bin'), { recursive: true, mode: 0o755 });
    mkdirSync(join(jail, 'www'), { mode: 0o755 });
    copyFileSync(RESPONDER, join(jail, 'bin', 'app'));
    chmodSync(join(jail, 'bin', 'app'), 0o755);
  });

  test('-c DIR -d /www -s /sock: the socket is created inside the chroot, the app runs in /www', async () => {
    const pool = await startPool(['-c', jail, '-d', '/www', '-s', '/sock', '-u', 'nobody', '--', '/bin/app']);
    const inside = join(jail, 'sock');
    assert.deepEqual(pool.target, { path: inside });
    assert.ok(lstatSync(inside).isSocket(), `${inside} is not a socket`);
    assert.ok(!existsSync('/sock'), 'nothing bound at /sock outside the chroot');
    const info = parseResponder((await pool.request()).body);
    assert.equal(info.cwd, '/www');
    assert.equal(info.uid, NOBODY);
    assert.equal(readlinkSync(`/proc/${info.pid}/root`), jail);
    assert.equal(readlinkSync(`/proc/${info.pid}/cwd`), join(jail, 'www'));
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.ok(!existsSync(inside), 'the socket file inside the chroot is removed at stop');
  });

  test('-S: the socket is bound outside the chroot, before it', async () => {
    const outside = join(dir, 'outside.sock');
    const pool = await startPool(['-c', jail, '-S', '-d', '/www', '-s', outside, '--', '/bin/app']);
    assert.ok(lstatSync(outside).isSocket(), `${outside} is not a socket`);
    assert.ok(!existsSync(join(jail, outside)), 'no socket inside the chroot');
    const info = parseResponder((await pool.request()).body);
    assert.equal(info.cwd, '/www');
    assert.equal(readlinkSync(`/proc/${info.pid}/root`), jail);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
    assert.ok(!existsSync(outside));
  });
});
