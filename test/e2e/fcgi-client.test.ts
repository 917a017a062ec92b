/**
 * End-to-end tests of the FastCGI client (tools/fcgi/client.ts) and of the
 * example app (examples/hello-fcgi.mjs) against real programs: Debian's
 * spawn-fcgi running php-cgi or the example app. The spawn-fcgi-ts binary is
 * not involved.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { FcgiConnection, FcgiTimeoutError, fcgiGetValues, fcgiRequest, type FcgiTarget } from '../../tools/fcgi/client.js';
import { ProtocolStatus, Role } from '../../tools/fcgi/protocol.js';

const HELLO = fileURLToPath(new URL('../../examples/hello-fcgi.mjs', import.meta.url));
const SPAWN_FCGI = '/usr/bin/spawn-fcgi';
const PHP_CGI = '/usr/bin/php-cgi';
const NODE = process.execPath;
const TEST_TIMEOUT = 30_000;

// ---------------------------------------------------------------- helpers

interface Proc {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code and signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const procs: Proc[] = [];

function start(command: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (stderr += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  assert.ok(child.pid, `could not start ${command}`);
  const proc: Proc = { child, pid: child.pid, exited, stderr: () => stderr };
  procs.push(proc);
  return proc;
}

function running(p: Proc): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** SIGTERM by PID, wait; SIGKILL after 5 s. */
async function stop(p: Proc): Promise<void> {
  if (running(p)) p.child.kill('SIGTERM');
  try {
    await withTimeout(p.exited, 20_000, `process ${p.pid} exit`);
  } catch {
    p.child.kill('SIGKILL');
    await p.exited;
  }
}

async function stopAll(): Promise<void> {
  await Promise.all(procs.map(stop));
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]);
}

/** Wait until the target accepts connections (the process must stay alive). */
async function waitListening(target: FcgiTarget, p: Proc, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (!running(p)) throw new Error(`process ${p.pid} exited before listening; stderr: ${p.stderr()}`);
    try {
      const conn = await FcgiConnection.connect(target, { timeoutMs: 1000 });
      conn.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

async function waitStderr(p: Proc, re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = re.exec(p.stderr());
    if (m) return m;
    if (!running(p)) throw new Error(`process ${p.pid} exited; stderr: ${p.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no ${re} on stderr of ${p.pid}; got: ${p.stderr()}`);
    await sleep(25);
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function rejection(promise: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  try {
    await promise;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
  assert.fail('expected a rejection');
}

let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spawn-fcgi-ts-client-'));
  await writeFile(join(dir, 'index.php'), `<?php header('X-Test: 1'); echo "pid=".getmypid()."\\n"; echo $_SERVER['QUERY_STRING'];`);
  await writeFile(join(dir, 'notfound.php'), `<?php http_response_code(404); echo "gone";`);
  await writeFile(
    join(dir, 'echo.php'),
    `<?php $in = file_get_contents('php://input');
echo $_SERVER['REQUEST_METHOD'], " ", strlen($in), " ", md5($in), "\\n";
echo strlen($_SERVER['HTTP_X_LONG'] ?? ''), " ", md5($_SERVER['HTTP_X_LONG'] ?? ''), "\\n";`,
  );
  await writeFile(join(dir, 'big.php'), `<?php error_log("to-stderr"); echo str_repeat("a", 200000);`);
});

after(async () => {
  await stopAll();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const md5 = async (b: Buffer | string): Promise<string> => (await import('node:crypto')).createHash('md5').update(b).digest('hex');

// ---------------------------------------------------------------- php-cgi, unix socket

describe('php-cgi under spawn-fcgi, unix socket', { timeout: TEST_TIMEOUT }, () => {
  let php: Proc;
  let target: FcgiTarget;
  const script = (name: string): Record<string, string> => ({
    SCRIPT_FILENAME: join(dir, name),
    SCRIPT_NAME: `/${name}`,
  });

  before(async () => {
    target = { path: join(dir, 'php.sock') };
    php = start(SPAWN_FCGI, ['-n', '-s', target.path, '--', PHP_CGI], { PHP_FCGI_CHILDREN: '0' });
    await waitListening(target, php);
  });
  after(() => stop(php));

  test('GET: status, headers and body', async () => {
    const r = await fcgiRequest(target, { params: { ...script('index.php'), QUERY_STRING: 'foo=bar&x=1' } });
    assert.equal(r.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
    assert.equal(r.appStatus, 0);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-test'], '1');
    assert.match(r.headers['content-type'] ?? '', /^text\/html/);
    // spawn-fcgi -n execs php-cgi: the pid we started is the one that answers
    assert.equal(r.body, `pid=${php.pid}\nfoo=bar&x=1`);
    assert.ok(r.stdout.toString().endsWith(r.body));
  });

  test('Status header from http_response_code(404)', async () => {
    const r = await fcgiRequest(target, { params: script('notfound.php') });
    assert.equal(r.status, 404);
    assert.match(r.headers.status ?? '', /^404\b/);
    assert.equal(r.body, 'gone');
  });

  test('a missing script: 404 from php-cgi itself', async () => {
    const r = await fcgiRequest(target, { params: script('no-such-file.php') });
    assert.equal(r.status, 404);
    assert.match(r.body, /No input file specified/);
  });

  test('a body longer than one record, and a param longer than 127 bytes', async () => {
    const body = Buffer.alloc(100_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const long = 'L'.repeat(300);
    const r = await fcgiRequest(target, { params: { ...script('echo.php'), HTTP_X_LONG: long }, body });
    assert.equal(r.status, 200);
    assert.equal(r.body, `POST 100000 ${await md5(body)}\n300 ${await md5(long)}\n`);
  });

  test('output longer than one record, and FCGI_STDERR', async () => {
    const r = await fcgiRequest(target, { params: script('big.php') });
    assert.equal(r.body.length, 200_000);
    assert.match(r.body, /^a+$/);
    assert.match(r.stderr, /to-stderr/);
  });

  test('fcgiGetValues: php-cgi echoes PHP_FCGI_CHILDREN as FCGI_MAX_CONNS/REQS', async () => {
    const v = await fcgiGetValues(target, ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS', 'NOT_A_VARIABLE']);
    assert.deepEqual(v, { FCGI_MAX_CONNS: '0', FCGI_MAX_REQS: '0', FCGI_MPXS_CONNS: '0' });
  });

  test('FCGI_KEEP_CONN: php-cgi keeps the connection for the next request', async () => {
    const conn = await FcgiConnection.connect(target);
    try {
      const a = await conn.request({ keepConn: true, params: { ...script('index.php'), QUERY_STRING: 'n=1' } });
      const b = await conn.request({ keepConn: true, params: { ...script('index.php'), QUERY_STRING: 'n=2' } });
      assert.equal(a.body, `pid=${php.pid}\nn=1`);
      assert.equal(b.body, `pid=${php.pid}\nn=2`);
      await sleep(100);
      assert.equal(conn.isOpen, true);
      // a management record in between does not disturb it
      assert.equal((await conn.getValues(['FCGI_MPXS_CONNS'])).FCGI_MPXS_CONNS, '0');
      const c = await conn.request({ params: { ...script('index.php'), QUERY_STRING: 'n=3' } });
      assert.equal(c.body, `pid=${php.pid}\nn=3`);
    } finally {
      conn.close();
    }
  });

  test('without FCGI_KEEP_CONN, php-cgi closes the connection', async () => {
    const conn = await FcgiConnection.connect(target);
    try {
      const r = await conn.request({ params: script('index.php') });
      assert.equal(r.status, 200);
      await withTimeout(conn.closed, 20_000, 'php-cgi closing the connection');
      assert.equal(conn.isOpen, false);
    } finally {
      conn.close();
    }
  });

  test('the authorizer role is sent as such (php-cgi runs the script anyway)', async () => {
    const r = await fcgiRequest(target, { role: 'authorizer', params: script('index.php') });
    assert.equal(r.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
    assert.equal(r.status, 200);
    assert.match(r.body, /^pid=\d+\n$/);
  });

  test('SIGTERM: php-cgi exits 0 and leaves its socket file; connecting then gives ECONNREFUSED', async () => {
    php.child.kill('SIGTERM');
    const { code, signal } = await withTimeout(php.exited, 20_000, 'php-cgi exit');
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
    assert.ok(existsSync((target as { path: string }).path), 'spawn-fcgi does not remove the socket file');
    const err = await rejection(fcgiRequest(target, { params: script('index.php') }));
    assert.equal(err.code, 'ECONNREFUSED');
  });
});

// ---------------------------------------------------------------- php-cgi, TCP

describe('php-cgi under spawn-fcgi, TCP', { timeout: TEST_TIMEOUT }, () => {
  let php: Proc;
  let target: FcgiTarget;

  before(async () => {
    const port = await freePort();
    target = { host: '127.0.0.1', port };
    php = start(SPAWN_FCGI, ['-n', '-a', '127.0.0.1', '-p', String(port), '--', PHP_CGI], { PHP_FCGI_CHILDREN: '0' });
    await waitListening(target, php);
  });
  after(() => stop(php));

  test('GET over TCP', async () => {
    const r = await fcgiRequest(target, {
      params: { SCRIPT_FILENAME: join(dir, 'index.php'), QUERY_STRING: 'tcp=1' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-test'], '1');
    assert.equal(r.body, `pid=${php.pid}\ntcp=1`);
  });

  test('404 over TCP', async () => {
    const r = await fcgiRequest(target, { params: { SCRIPT_FILENAME: join(dir, 'notfound.php') } });
    assert.equal(r.status, 404);
  });

  test('fcgiGetValues over TCP', async () => {
    const v = await fcgiGetValues(target, ['FCGI_MPXS_CONNS']);
    assert.deepEqual(v, { FCGI_MPXS_CONNS: '0' });
  });
});

// ---------------------------------------------------------------- the example app

const helloBody = (pid: number, method: string, uri: string): string => `Hello from spawn-fcgi-ts example app: pid ${pid}, ${method} ${uri}\n`;

describe('examples/hello-fcgi.mjs under spawn-fcgi, unix socket', { timeout: TEST_TIMEOUT }, () => {
  let app: Proc;
  let target: FcgiTarget;

  before(async () => {
    target = { path: join(dir, 'hello.sock') };
    app = start(SPAWN_FCGI, ['-n', '-s', target.path, '--', NODE, HELLO]);
    await waitStderr(app, /hello-fcgi: pid \d+ ready\n/);
  });
  after(() => stop(app));

  test('prints its ready line with its own pid', () => {
    assert.match(app.stderr(), new RegExp(`^hello-fcgi: pid ${app.pid} ready\\n`));
  });

  test('answers a GET with text/plain', async () => {
    const r = await fcgiRequest(target, { params: { REQUEST_URI: '/hello?x=1', SCRIPT_NAME: '/hello' } });
    assert.equal(r.protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
    assert.equal(r.appStatus, 0);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain');
    assert.equal(r.body, helloBody(app.pid, 'GET', '/hello?x=1'));
    assert.equal(r.headers['content-length'], String(Buffer.byteLength(r.body)));
  });

  test('uses SCRIPT_NAME without REQUEST_URI; a large POST body is read', async () => {
    const r = await fcgiRequest(target, {
      params: { SCRIPT_NAME: '/app.php', REQUEST_METHOD: 'POST', REQUEST_URI: '' },
      body: Buffer.alloc(150_000, 0x62),
    });
    assert.equal(r.body, helloBody(app.pid, 'POST', '/app.php'));
  });

  test('keep-alive: several requests on one connection, which stays open', async () => {
    const conn = await FcgiConnection.connect(target);
    try {
      for (const n of [1, 2, 3]) {
        const r = await conn.request({ keepConn: true, params: { REQUEST_URI: `/k${n}` } });
        assert.equal(r.body, helloBody(app.pid, 'GET', `/k${n}`));
      }
      await sleep(100);
      assert.equal(conn.isOpen, true);
    } finally {
      conn.close();
    }
  });

  test('without FCGI_KEEP_CONN the app closes the connection after the answer', async () => {
    const conn = await FcgiConnection.connect(target);
    try {
      const r = await conn.request({ params: { REQUEST_URI: '/once' } });
      assert.equal(r.body, helloBody(app.pid, 'GET', '/once'));
      await withTimeout(conn.closed, 20_000, 'the app closing the connection');
      assert.equal(conn.isOpen, false);
    } finally {
      conn.close();
    }
  });

  test('FCGI_GET_VALUES: answers the names it knows', async () => {
    const v = await fcgiGetValues(target, ['FCGI_MAX_CONNS', 'FCGI_MPXS_CONNS', 'NOT_A_VARIABLE']);
    assert.deepEqual(v, { FCGI_MAX_CONNS: '100', FCGI_MPXS_CONNS: '0' });
  });

  test('a role other than responder gets FCGI_UNKNOWN_ROLE', async () => {
    const r = await fcgiRequest(target, { role: Role.FILTER });
    assert.equal(r.protocolStatus, ProtocolStatus.UNKNOWN_ROLE);
    assert.equal(r.stdout.length, 0);
  });

  test('SIGTERM with an idle keep-alive connection: closes it and exits 0', async () => {
    const conn = await FcgiConnection.connect(target);
    try {
      await conn.request({ keepConn: true, params: { REQUEST_URI: '/before-term' } });
      app.child.kill('SIGTERM');
      const { code, signal } = await withTimeout(app.exited, 20_000, 'hello-fcgi exit');
      assert.deepEqual({ code, signal }, { code: 0, signal: null });
      await withTimeout(conn.closed, 20_000, 'connection closed by the app');
    } finally {
      conn.close();
    }
  });
});

describe('examples/hello-fcgi.mjs under spawn-fcgi, TCP', { timeout: TEST_TIMEOUT }, () => {
  let app: Proc;
  let target: FcgiTarget;

  before(async () => {
    const port = await freePort();
    target = { host: '127.0.0.1', port };
    app = start(SPAWN_FCGI, ['-n', '-a', '127.0.0.1', '-p', String(port), '--', NODE, HELLO]);
    await waitStderr(app, /ready\n/);
  });
  after(() => stop(app));

  test('answers over TCP', async () => {
    const r = await fcgiRequest(target, { params: { REQUEST_URI: '/tcp' } });
    assert.equal(r.body, helloBody(app.pid, 'GET', '/tcp'));
  });

  test('SIGUSR1 during a request: the answer still arrives, then exit 0', async () => {
    // Send the request in two parts, with the signal in between, so that the
    // request is in flight when the app starts stopping.
    const socket = net.createConnection(target as { host: string; port: number });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const { encodeRecord, encodeBeginRequest, encodeParams, encodeStream, RecordReader, RecordType } = await import('../../tools/fcgi/protocol.js');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    try {
      socket.write(
        Buffer.concat([
          encodeRecord(RecordType.BEGIN_REQUEST, 7, encodeBeginRequest(Role.RESPONDER, 1)),
          encodeStream(RecordType.PARAMS, 7, encodeParams({ REQUEST_METHOD: 'GET', REQUEST_URI: '/inflight' })),
          // A management record after the params: its answer says the app has read them (the request is
          // in flight), however long a busy machine took to get there.
          encodeRecord(RecordType.GET_VALUES, 0, encodeParams({ FCGI_MPXS_CONNS: '' })),
        ]),
      );
      const deadline = Date.now() + 20_000;
      const answered = () => new RecordReader().push(Buffer.concat(chunks)).some((r) => r.type === RecordType.GET_VALUES_RESULT);
      while (!answered() && Date.now() < deadline) await sleep(10);
      assert.ok(answered(), 'the app read the request (it answered the FCGI_GET_VALUES sent after it)');
      app.child.kill('SIGUSR1');
      await sleep(200);
      assert.equal(running(app), true, 'the app waits for the request in flight');
      socket.write(encodeStream(RecordType.STDIN, 7, Buffer.alloc(0)));
      await withTimeout(closed, 20_000, 'the app closing the connection after the answer');
      const records = new RecordReader().push(Buffer.concat(chunks));
      const stdout = Buffer.concat(records.filter((r) => r.type === RecordType.STDOUT).map((r) => r.content));
      assert.match(stdout.toString(), /GET \/inflight\n$/);
      assert.ok(records.some((r) => r.type === RecordType.END_REQUEST && r.requestId === 7));
      const { code, signal } = await withTimeout(app.exited, 20_000, 'hello-fcgi exit');
      assert.deepEqual({ code, signal }, { code: 0, signal: null });
    } finally {
      socket.destroy();
    }
  });
});

describe('examples/hello-fcgi.mjs on an inherited abstract socket', { timeout: TEST_TIMEOUT }, () => {
  const name = `@spawn-fcgi-ts-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
  let app: Proc;

  before(async () => {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: `\0${name.slice(1)}` }, resolve);
    });
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    assert.ok(fd > 2, `listening fd ${fd}`);
    const child = spawn(NODE, [HELLO], { stdio: [fd, 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
    server.close(); // the child has its own copy of the listening socket
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => (stderr += s));
    app = {
      child,
      pid: child.pid!,
      exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
      stderr: () => stderr,
    };
    procs.push(app);
    await waitStderr(app, /ready\n/);
  });
  after(() => stop(app));

  test('fcgiRequest reaches @name', async () => {
    const r = await fcgiRequest({ path: name }, { params: { REQUEST_URI: '/abstract' } });
    assert.equal(r.body, helloBody(app.pid, 'GET', '/abstract'));
  });
});

// ---------------------------------------------------------------- errors

describe('client errors', { timeout: TEST_TIMEOUT }, () => {
  test('a missing socket file: the Node error (ENOENT)', async () => {
    const err = await rejection(fcgiRequest({ path: join(dir, 'missing.sock') }));
    assert.equal(err.code, 'ENOENT');
    assert.equal(err.syscall, 'connect');
  });

  test('a closed TCP port: ECONNREFUSED', async () => {
    const port = await freePort();
    const err = await rejection(fcgiRequest({ host: '127.0.0.1', port }));
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test('a socket file nobody listens on: ECONNREFUSED', async () => {
    // bind a unix socket in a child that exits at once; the file stays behind
    const path = join(dir, 'stale.sock');
    const p = start(NODE, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`]);
    await p.exited;
    assert.ok(existsSync(path));
    const err = await rejection(fcgiRequest({ path }));
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test('an application that never answers: timeout, socket destroyed', async () => {
    const path = join(dir, 'silent.sock');
    let received = 0;
    let resolveClosed: () => void = () => {};
    const serverClosed = new Promise<void>((resolve) => (resolveClosed = resolve));
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.on('data', (c: Buffer) => (received += c.length)); // read, never answer
      s.once('close', () => resolveClosed());
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      const t0 = Date.now();
      const err = await rejection(fcgiRequest({ path }, { timeoutMs: 300 }));
      const elapsed = Date.now() - t0;
      assert.ok(err instanceof FcgiTimeoutError, `got ${err}`);
      assert.match(err.message, /timeout/);
      assert.equal(err.code, 'ETIMEDOUT');
      // Not before the timeout (20 ms of slack for the loop clock); how much later is the machine's business.
      assert.ok(elapsed >= 280, `timed out after ${elapsed} ms, before the 300 ms timeout`);
      await withTimeout(serverClosed, 20_000, 'the client closing its socket');
      assert.ok(received > 0, 'the request was sent');
    } finally {
      server.close();
    }
  });

  test('bad targets and options are refused with a message naming the value', async () => {
    await assert.rejects(fcgiRequest({ host: '127.0.0.1', port: 70000 }), /port must be .* got 70000/);
    await assert.rejects(fcgiRequest({ path: '' }), /path must be a non-empty string/);
    await assert.rejects(fcgiRequest({ path: '/x' }, { timeoutMs: -1 }), /timeoutMs .* got -1/);
    await assert.rejects(fcgiRequest({ path: '/x' }, { role: 'filter' as never }), /role must be .* got filter/);
  });
});
