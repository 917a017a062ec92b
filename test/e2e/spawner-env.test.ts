/**
 * The children's environment, as the app itself reports it (static-responder's envval: lines):
 * inherited by default, whitelisted by --copy-env, extended by --env, FCGI_WEB_SERVER_ADDRS and
 * PHP_FCGI_CHILDREN set by their flags, and the supervisor's own systemd variables never passed on.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PHP_FIXTURES, parseResponder, requireBuild, RESPONDER, startPool, type ResponderInfo } from '../helpers/pool.js';
import { removePath, tmpDir } from '../helpers/proc.js';

let dir: string;
let count = 0;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-env');
});
after(() => removePath(dir));

const SYSTEMD_VARS = { NOTIFY_SOCKET: '/tmp/sfts-no-such-notify.sock', LISTEN_FDS: '1', LISTEN_PID: '1', LISTEN_FDNAMES: 'web', WATCHDOG_USEC: '5000000' };

/** Start a one-child pool of static-responder with these flags and this caller environment; return what the child saw. */
async function childEnvironment(flags: string[], callerEnv: NodeJS.ProcessEnv): Promise<ResponderInfo> {
  const sock = join(dir, `env${++count}.sock`);
  const pool = await startPool(['-s', sock, ...flags, '--', RESPONDER], { env: callerEnv });
  try {
    const info = parseResponder((await pool.request()).body);
    assert.deepEqual(pool.childPids(), [info.pid]);
    return info;
  } finally {
    await pool.stop();
  }
}

test("by default the child inherits the caller's environment", async () => {
  const callerEnv = { ...process.env, SFTS_MARK: 'inherited value with spaces', SFTS_EMPTY: '' };
  const info = await childEnvironment([], callerEnv);
  assert.equal(info.env.SFTS_MARK, 'inherited value with spaces');
  assert.equal(info.env.SFTS_EMPTY, '');
  assert.equal(info.env.PATH, process.env.PATH);
  assert.equal(info.env.PHP_FCGI_CHILDREN, undefined, 'no -C: PHP_FCGI_CHILDREN is left alone');
  assert.equal(info.env.FCGI_WEB_SERVER_ADDRS, undefined);
});

test('--copy-env PATH,FOO leaves only those', async () => {
  const callerEnv = { PATH: '/usr/bin:/bin', FOO: 'foo', BAR: 'bar', HOME: '/root' };
  const info = await childEnvironment(['--copy-env', 'PATH,FOO'], callerEnv);
  assert.deepEqual(info.env, { PATH: '/usr/bin:/bin', FOO: 'foo' });
});

test('--copy-env with -C 2: the list plus PHP_FCGI_CHILDREN', async () => {
  const callerEnv = { PATH: '/usr/bin:/bin', FOO: 'foo', BAR: 'bar' };
  const info = await childEnvironment(['--copy-env', 'PATH,FOO', '-C', '2'], callerEnv);
  assert.deepEqual(info.env, { PATH: '/usr/bin:/bin', FOO: 'foo', PHP_FCGI_CHILDREN: '2' });
});

test('--env adds and overrides, values kept verbatim', async () => {
  const callerEnv = { ...process.env, B: 'from caller', KEEP: 'kept' };
  const info = await childEnvironment(['--env', 'A=1', '--env', 'B=x y', '--env', 'C=a=b'], callerEnv);
  assert.equal(info.env.A, '1');
  assert.equal(info.env.B, 'x y');
  assert.equal(info.env.C, 'a=b');
  assert.equal(info.env.KEEP, 'kept');
});

test('--web-server-addrs sets FCGI_WEB_SERVER_ADDRS', async () => {
  const info = await childEnvironment(['--web-server-addrs', '127.0.0.1'], { ...process.env });
  assert.equal(info.env.FCGI_WEB_SERVER_ADDRS, '127.0.0.1');
});

test('NOTIFY_SOCKET and LISTEN_* of the caller never reach the child (inherited or whitelisted)', async () => {
  const inherited = await childEnvironment([], { ...process.env, ...SYSTEMD_VARS, SFTS_MARK: 'x' });
  assert.equal(inherited.env.SFTS_MARK, 'x');
  for (const name of Object.keys(SYSTEMD_VARS)) assert.equal(inherited.env[name], undefined, `${name} was passed on`);

  const listed = await childEnvironment(['--copy-env', `PATH,${Object.keys(SYSTEMD_VARS).join(',')}`], { PATH: '/usr/bin:/bin', ...SYSTEMD_VARS });
  assert.deepEqual(listed.env, { PATH: '/usr/bin:/bin' });
});

test('-C 0 sets PHP_FCGI_CHILDREN=0', async () => {
  const info = await childEnvironment(['-C', '0'], { ...process.env, PHP_FCGI_CHILDREN: '8' });
  assert.equal(info.env.PHP_FCGI_CHILDREN, '0');
});

test('php-cgi sees the same environment through getenv()', async () => {
  const sock = join(dir, 'php-env.sock');
  const pool = await startPool(['-s', sock, '--copy-env', 'PATH,FOO', '--env', 'A=1', '-C', '0', '--', 'php-cgi'], {
    env: { PATH: process.env.PATH, FOO: 'foo', BAR: 'bar', NOTIFY_SOCKET: '/tmp/x' },
  });
  const answer = await pool.request({ SCRIPT_FILENAME: join(PHP_FIXTURES, 'env.php'), QUERY_STRING: 'names=FOO,A,BAR,NOTIFY_SOCKET,PHP_FCGI_CHILDREN' });
  assert.equal(answer.body, 'FOO=foo\nA=1\nBAR unset\nNOTIFY_SOCKET unset\nPHP_FCGI_CHILDREN=0\n');
  await pool.stop();
});
