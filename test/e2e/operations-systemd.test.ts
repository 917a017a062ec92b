import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT, RESPONDER, fcgiGet, parseResponder, poolChildren, requireBuild, runCli, startPool, track, untrack } from '../helpers/pool.js';
import { isGone, removePath, tmpDir, waitFor } from '../helpers/proc.js';

const LISTENER = join(ROOT, 'test', 'fixtures', 'ops', 'notify-listener.py');
let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-systemd');
});
after(() => removePath(dir));

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child.pid!);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      untrack(child.pid!);
      resolve(code);
    }),
  );
  return { child, output: () => output, exited };
}

test("socket activation: the passed socket becomes every child's fd 0, LISTEN_* never reach them, the socket file stays", async () => {
  const socket = join(dir, 'activated.sock');
  const activator = run('systemd-socket-activate', ['-l', socket, '--fdname=fcgi', '-E', 'PATH', process.execPath, CLI, '-n', '-F', '2', '--', RESPONDER]);
  await waitFor(() => existsSync(socket), { timeoutMs: 20_000, what: 'systemd-socket-activate to listen' });
  // systemd-socket-activate execs the supervisor (same pid) on the first connection, which then waits in the queue.
  const first = parseResponder((await fcgiGet({ path: socket }, {}, { timeoutMs: 30_000 })).body);
  const supervisor = activator.child.pid!;
  await waitFor(() => activator.output().includes('children serving on'), { timeoutMs: 20_000 });
  assert.match(activator.output(), /serving on .*activated\.sock \(passed by systemd as fd 3, name 'fcgi'\)/);
  const children = poolChildren(supervisor);
  assert.equal(children.length, 2);
  assert.ok(children.includes(first.pid));
  const passed = readlinkSync(`/proc/${supervisor}/fd/3`);
  assert.match(passed, /^socket:\[\d+\]$/);
  for (const pid of children) assert.equal(readlinkSync(`/proc/${pid}/fd/0`), passed);
  assert.deepEqual(
    first.envNames.filter((n) => /^(LISTEN_|NOTIFY_SOCKET)/.test(n)),
    [],
  );
  process.kill(supervisor, 'SIGTERM');
  assert.equal(await activator.exited, 0);
  assert.ok(existsSync(socket), "a passed socket is systemd's: never removed");
  for (const pid of children) assert.ok(isGone(pid));
  removePath(socket);
});

test('socket activation with a -s that names another socket is refused', async () => {
  const socket = join(dir, 'other.sock');
  const activator = run('systemd-socket-activate', [
    '-l',
    socket,
    '-E',
    'PATH',
    process.execPath,
    CLI,
    '-n',
    '-s',
    join(dir, 'not-this.sock'),
    '--',
    RESPONDER,
  ]);
  await waitFor(() => existsSync(socket), { timeoutMs: 20_000 });
  await fcgiGet({ path: socket }, {}, { timeoutMs: 20_000 }).catch(() => undefined);
  assert.equal(await activator.exited, 255);
  assert.match(activator.output(), /the socket passed by systemd \(.*other\.sock\) is not the one given on the command line \(.*not-this\.sock\)/);
  removePath(socket);
});

test('abstract sockets: bound exactly by systemd and adopted with a matching -s @name; binding one ourselves is refused', async () => {
  const name = `@sfts-abstract-${process.pid}`;
  const refused = await runCli(['-n', '-s', name, '--', RESPONDER]);
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /cannot bind the abstract socket '@sfts-abstract-\d+' exactly on this Node\.js: let systemd pass it/);

  const activator = run('systemd-socket-activate', ['-l', name, '-E', 'PATH', process.execPath, CLI, '-n', '-s', name, '-F', '2', '--', RESPONDER]);
  await waitFor(() => activator.output().includes(`Listening on ${name}`), { timeoutMs: 20_000 });
  // A client that uses the exact name (Python, like libfcgi or nginx would) gets through to a child.
  const script = `import socket, struct
s = socket.socket(socket.AF_UNIX)
s.connect(b"\\0" + ${JSON.stringify(name.slice(1))}.encode())
body = b"\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00"
s.sendall(struct.pack("!BBHHBB", 1, 1, 1, 8, 0, 0) + body + struct.pack("!BBHHBB", 1, 4, 1, 0, 0, 0) + struct.pack("!BBHHBB", 1, 5, 1, 0, 0, 0))
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
print(data.decode("latin-1"))`;
  const client = run('/usr/bin/python3', ['-c', script]);
  assert.equal(await client.exited, 0, client.output());
  assert.match(client.output(), /^pid=\d+$/m);
  await waitFor(() => activator.output().includes('children serving on'), { timeoutMs: 20_000 });
  assert.match(activator.output(), new RegExp(`2 children serving on ${name} \\(passed by systemd`));
  process.kill(activator.child.pid!, 'SIGTERM');
  assert.equal(await activator.exited, 0);
});

async function notifications(path: string) {
  const listener = run('/usr/bin/python3', [LISTENER, path]);
  await waitFor(() => listener.output().includes('listening'), { timeoutMs: 20_000, what: 'the notify listener' });
  const messages = () =>
    listener
      .output()
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l) as { message: string; pid: number | null });
  return { listener, messages };
}

for (const abstract of [false, true]) {
  test(`sd_notify on ${abstract ? 'an abstract' : 'a path'} socket: READY with STATUS, RELOADING during a rolling restart, STOPPING, watchdog pings, sent as the supervisor`, async () => {
    const notifySocket = abstract ? `@sfts-notify-${process.pid}` : join(dir, 'notify.sock');
    const { listener, messages } = await notifications(notifySocket);
    const socket = join(dir, 'notified.sock');
    const startedAt = Date.now();
    const pool = await startPool(['-s', socket, '-F', '2', '--', RESPONDER], { env: { ...process.env, NOTIFY_SOCKET: notifySocket, WATCHDOG_USEC: '300000' } });
    await waitFor(() => messages().some((m) => m.message.startsWith('READY=1')), { timeoutMs: 20_000, what: 'READY=1' });
    const ready = messages().find((m) => m.message.startsWith('READY=1'))!;
    assert.match(ready.message, /^READY=1\nSTATUS=2 children serving on .*notified\.sock$/);
    assert.equal(ready.pid, pool.pid, "the datagram carries the supervisor's pid (NotifyAccess=main accepts it)");
    // Pings keep coming (wait for four), and never faster than every WATCHDOG_USEC/2 = 150 ms: at most one
    // at once and one per 150 ms since before the start (a busy machine only makes them fewer).
    const pingCount = () => messages().filter((m) => m.message === 'WATCHDOG=1').length;
    await waitFor(() => pingCount() >= 4, { timeoutMs: 20_000, what: 'four watchdog pings' });
    const pings = pingCount();
    const elapsed = Date.now() - startedAt;
    assert.ok(pings <= 1 + Math.ceil(elapsed / 150), `${pings} watchdog pings in ${elapsed} ms at WATCHDOG_USEC/2 = 150 ms: too many`);

    const before = pool.childPids();
    process.kill(pool.pid, 'SIGHUP');
    await waitFor(() => pool.stderr().includes('rolling restart done'), { timeoutMs: 30_000 });
    await waitFor(() => messages().filter((m) => m.message.startsWith('READY=1')).length === 2, { timeoutMs: 20_000, what: 'READY=1 after the reload' });
    assert.ok(pool.childPids().every((pid) => !before.includes(pid)));
    assert.equal((await pool.stop()).code, 0);
    await waitFor(() => messages().some((m) => m.message.startsWith('STOPPING=1')), { timeoutMs: 20_000, what: 'STOPPING=1' });
    const order = messages()
      .map((m) => m.message.split('\n')[0]!.split('=')[0])
      .filter((n) => n !== 'WATCHDOG');
    assert.deepEqual(order, ['READY', 'RELOADING', 'READY', 'STOPPING']);
    assert.match(messages().find((m) => m.message.startsWith('RELOADING=1'))!.message, /MONOTONIC_USEC=\d+/);
    listener.child.kill('SIGTERM');
    await listener.exited;
  });
}
