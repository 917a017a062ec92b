/**
 * The drop-in spawner's sockets, end to end: php-cgi pools on a unix socket, on TCP 127.0.0.1 and on
 * TCP ::1 answering real FastCGI clients (libfcgi's cgi-fcgi, and the test client), and the socket
 * file's mode and owner as spawn-fcgi sets them (0660 & ~umask, -M exactly, -U/-G, -u alone).
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cgiFcgi, fcgiGet, PHP_FIXTURES, requireBuild, RESPONDER, parseResponder, startPool } from '../helpers/pool.js';
import { freePort, removePath, tmpDir } from '../helpers/proc.js';

const PID_PHP = join(PHP_FIXTURES, 'pid.php');
const ECHO_PHP = join(PHP_FIXTURES, 'echo.php');

let dir: string;
/** A copy of static-responder that every user can run (the repo may sit in a directory others cannot enter). */
let responder: string;

before(() => {
  requireBuild();
  dir = tmpDir('sfts-socket');
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'bin'), { mode: 0o755 });
  responder = join(dir, 'bin', 'responder');
  copyFileSync(RESPONDER, responder);
  chmodSync(responder, 0o755);
});
after(() => removePath(dir));

/** uid and gid of a user or group name, from getent. */
function idOf(database: 'passwd' | 'group', name: string): { id: number; gid?: number } {
  const line = readFileSync(database === 'passwd' ? '/etc/passwd' : '/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  assert.ok(line, `${name} missing from /etc/${database}`);
  const fields = line.split(':');
  return { id: Number(fields[2]), gid: database === 'passwd' ? Number(fields[3]) : undefined };
}

describe('php-cgi pools answer real FastCGI clients', () => {
  test('unix socket: cgi-fcgi and the test client get answers from the pool children', async (t) => {
    const sock = join(dir, 'php.sock');
    const pool = await startPool(['-s', sock, '-F', '2', '--', 'php-cgi']);
    const children = pool.childPids();
    assert.equal(children.length, 2, `two php-cgi children expected, got ${children.join(',')}`);
    assert.ok(lstatSync(sock).isSocket(), `${sock} is not a socket`);

    const viaLibfcgi = await cgiFcgi(sock, { SCRIPT_FILENAME: PID_PHP });
    assert.equal(viaLibfcgi.code, 0, `cgi-fcgi failed: ${viaLibfcgi.stderr}`);
    const pid = Number(/pid=(\d+)/.exec(viaLibfcgi.stdout)?.[1]);
    assert.ok(children.includes(pid), `answered by ${pid}, children are ${children.join(',')}\n${viaLibfcgi.stdout}`);
    assert.match(viaLibfcgi.stdout, /^Content-type: text\/plain/im);

    const echo = await pool.request({ SCRIPT_FILENAME: ECHO_PHP, QUERY_STRING: 'a=1&b=two' });
    assert.equal(echo.headers['x-fixture'], 'echo');
    assert.equal(echo.body, 'method=GET\nquery=a=1&b=two\nbody=\n');
    assert.equal(echo.appStatus, 0);

    const body = 'x'.repeat(70_000); // more than one FCGI_STDIN record
    const post = await pool.request(
      { SCRIPT_FILENAME: ECHO_PHP, REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length), CONTENT_TYPE: 'text/plain' },
      { stdin: body },
    );
    assert.equal(post.body, `method=POST\nquery=\nbody=${body}\n`);

    const exit = await pool.stop();
    t.diagnostic(`children ${children.join(',')}, exit ${JSON.stringify(exit)}`);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.throws(() => lstatSync(sock), { code: 'ENOENT' }, 'the socket file is removed at stop');
  });

  test('TCP 127.0.0.1: cgi-fcgi host:port and the test client', async () => {
    const port = await freePort('127.0.0.1');
    const pool = await startPool(['-a', '127.0.0.1', '-p', String(port), '-F', '2', '--', 'php-cgi']);
    const children = pool.childPids();
    const viaLibfcgi = await cgiFcgi(`127.0.0.1:${port}`, { SCRIPT_FILENAME: PID_PHP });
    assert.equal(viaLibfcgi.code, 0, `cgi-fcgi failed: ${viaLibfcgi.stderr}`);
    const pid = Number(/pid=(\d+)/.exec(viaLibfcgi.stdout)?.[1]);
    assert.ok(children.includes(pid), `answered by ${pid}, children are ${children.join(',')}`);

    const answer = await pool.request({ SCRIPT_FILENAME: ECHO_PHP, QUERY_STRING: 'tcp=4' });
    assert.equal(answer.body, 'method=GET\nquery=tcp=4\nbody=\n');
    // Bound to 127.0.0.1 only: the same port on ::1 is refused.
    await assert.rejects(fcgiGet({ host: '::1', port }, { SCRIPT_FILENAME: PID_PHP }, { timeoutMs: 2000 }), /ECONNREFUSED/);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test('TCP ::1 (libfcgi cannot connect to IPv6: the test client does)', async () => {
    const port = await freePort('::1');
    const pool = await startPool(['-a', '::1', '-p', String(port), '-F', '2', '--', 'php-cgi']);
    assert.deepEqual(pool.target, { host: '::1', port });
    const children = pool.childPids();
    const answer = await pool.request({ SCRIPT_FILENAME: PID_PHP });
    const pid = Number(/pid=(\d+)/.exec(answer.body)?.[1]);
    assert.ok(children.includes(pid), `answered by ${pid}, children are ${children.join(',')}`);
    // Bound to ::1, not to every address: an IPv4 connect to the same port is refused.
    await assert.rejects(fcgiGet({ host: '127.0.0.1', port }, { SCRIPT_FILENAME: PID_PHP }, { timeoutMs: 2000 }), /ECONNREFUSED/);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test('[::1] in brackets is the same address', async () => {
    const port = await freePort('::1');
    const pool = await startPool(['-a', '[::1]', '-p', String(port), '--', responder]);
    const info = parseResponder((await pool.request()).body);
    assert.deepEqual(pool.childPids(), [info.pid]);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test('a unix socket path of exactly 107 bytes works (the limit)', async () => {
    const base = join(dir, 'p');
    const sock = base + 'x'.repeat(107 - Buffer.byteLength(base) - 5) + '.sock';
    assert.equal(Buffer.byteLength(sock), 107);
    const pool = await startPool(['-s', sock, '--', responder]);
    assert.equal(parseResponder((await pool.request()).body).pid, pool.childPids()[0]);
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });
});

describe('socket file mode and owner', () => {
  const modeOf = (path: string) => lstatSync(path).mode & 0o7777;

  test('default under umask 022 is 0640, root-owned', async () => {
    const sock = join(dir, 'm022.sock');
    const pool = await startPool(['-s', sock, '--', responder], { umask: '022' });
    assert.equal(modeOf(sock).toString(8), '640');
    assert.equal(lstatSync(sock).uid, 0);
    assert.equal(lstatSync(sock).gid, 0);
    await pool.stop();
  });

  test('default under umask 077 is 0600', async () => {
    const sock = join(dir, 'm077.sock');
    const pool = await startPool(['-s', sock, '--', responder], { umask: '077' });
    assert.equal(modeOf(sock).toString(8), '600');
    await pool.stop();
  });

  test('-M 0666 is applied exactly, whatever the umask', async () => {
    const sock = join(dir, 'm666.sock');
    const pool = await startPool(['-s', sock, '-M', '0666', '--', responder], { umask: '077' });
    assert.equal(modeOf(sock).toString(8), '666');
    await pool.stop();
  });

  test('-U nobody -G nogroup owns the socket; the child still runs as root', async () => {
    const sock = join(dir, 'owner.sock');
    const pool = await startPool(['-s', sock, '-U', 'nobody', '-G', 'nogroup', '--', responder]);
    const { uid, gid } = lstatSync(sock);
    assert.equal(uid, idOf('passwd', 'nobody').id);
    assert.equal(gid, idOf('group', 'nogroup').id);
    const info = parseResponder((await pool.request()).body);
    assert.equal(info.uid, 0, 'no -u: the child keeps root');
    await pool.stop();
  });

  test("-u nobody alone: the socket is nobody:nogroup (spawn-fcgi's default owner)", async () => {
    const sock = join(dir, 'u-nobody.sock');
    const pool = await startPool(['-s', sock, '-u', 'nobody', '--', responder]);
    const nobody = idOf('passwd', 'nobody');
    const { uid, gid } = lstatSync(sock);
    assert.deepEqual({ uid, gid }, { uid: nobody.id, gid: nobody.gid });
    assert.equal(modeOf(sock).toString(8), '640');
    const info = parseResponder((await pool.request()).body);
    assert.equal(info.uid, nobody.id);
    await pool.stop();
  });
});
