/**
 * Tests of the sd_notify sender: the native build/spawn-fcgi-ts-notify run directly, and src/observe/sd-notify.ts
 * (createNotifier) driving it. The receiving end is a real AF_UNIX SOCK_DGRAM socket held by a small
 * Python listener with SO_PASSCRED, which prints one JSON line per datagram: its bytes, the sender's
 * credentials (SCM_CREDENTIALS) and the CLOCK_MONOTONIC time of arrival.
 */
import { before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createNotifier, type Notifier, type NotifierOptions } from '../../src/observe/sd-notify.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NOTIFY = join(ROOT, 'build', 'spawn-fcgi-ts-notify');
const IS_ROOT = process.getuid?.() === 0;
const ROOT_ONLY = IS_ROOT ? {} : { skip: 'needs root' };
const PYTHON = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

before(() => {
  execFileSync('sh', [join(ROOT, 'scripts', 'build-helper.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  assert.ok(fs.existsSync(NOTIFY), `${NOTIFY} missing: run 'sh scripts/build-helper.sh'`);
});

// ---------------------------------------------------------------- the listener

const LISTENER = `
import json, socket, struct, sys, time
name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\\0' + name[1:] if name.startswith('@') else name)
if not name.startswith('@'):
    import os
    os.chmod(name, 0o777)
print(json.dumps({'ready': True}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(1 << 17, socket.CMSG_SPACE(12))
    cred = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            cred = struct.unpack('iII', payload[:12])
    print(json.dumps({'data': data.decode('utf-8', 'replace'), 'bytes': len(data), 'truncated': bool(flags & socket.MSG_TRUNC),
                      'pid': cred and cred[0], 'uid': cred and cred[1], 'gid': cred and cred[2],
                      'usec': time.monotonic_ns() // 1000}), flush=True)
`;

interface Datagram {
  data: string;
  bytes: number;
  truncated: boolean;
  pid: number | null;
  uid: number | null;
  gid: number | null;
  /** CLOCK_MONOTONIC at arrival, µs (the clock of process.hrtime and of MONOTONIC_USEC). */
  usec: number;
}

interface Listener {
  address: string;
  received: Datagram[];
  /** Resolves with the first `count` datagrams once they have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<Datagram[]>;
  stop(): Promise<void>;
}

async function listen(t: TestContext, address: string): Promise<Listener> {
  const child = spawn(PYTHON, ['-u', '-c', LISTENER, address], { stdio: ['ignore', 'pipe', 'pipe'] });
  const received: Datagram[] = [];
  let stderr = '';
  let rest = '';
  let ready!: () => void;
  const readyPromise = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const parsed = JSON.parse(line) as Datagram | { ready: true };
      if ('ready' in parsed) ready();
      else received.push(parsed);
    }
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    if (address.startsWith('/')) fs.rmSync(address, { force: true });
  };
  t.after(stop);
  await Promise.race([
    readyPromise,
    exited.then(() => {
      throw new Error(`listener on ${address} exited: ${stderr}`);
    }),
    sleep(30_000, undefined, { ref: false }).then(() => {
      throw new Error(`listener on ${address} did not start: ${stderr}`);
    }),
  ]);
  return {
    address,
    received,
    async waitFor(count, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`expected ${count} datagrams on ${address}, got ${received.length}: ${JSON.stringify(received.map((d) => d.data))}`);
        }
        await sleep(10);
      }
      return received.slice(0, count);
    },
    stop,
  };
}

// ---------------------------------------------------------------- utilities

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync('/tmp/sfts-notify-');
  fs.chmodSync(dir, 0o755); // the unprivileged sender must reach the socket
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function abstractName(): string {
  return `@spawn-fcgi-ts-test-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** State letter from /proc/<pid>/status; undefined once the process is gone. */
function procState(pid: number): string | undefined {
  try {
    return /^State:\s*(\S)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

const isGone = (pid: number): boolean => {
  const state = procState(pid);
  return state === undefined || state === 'Z';
};

/** Live notifier processes whose parent is this test process. */
function ourNotifiers(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
    } catch {
      continue;
    }
    const name = /^Name:\s*(.*)$/m.exec(status)?.[1];
    const ppid = Number(/^PPid:\s*(\d+)/m.exec(status)?.[1]);
    const state = /^State:\s*(\S)/m.exec(status)?.[1];
    // comm is cut to 15 characters
    if (ppid === process.pid && name === 'spawn-fcgi-ts-n' && state !== 'Z') pids.push(Number(entry));
  }
  return pids;
}

async function waitUntil(what: string, predicate: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

function notifierFor(t: TestContext, env: NodeJS.ProcessEnv, options: NotifierOptions = {}): Notifier {
  const notifier = createNotifier(env, options);
  assert.ok(notifier, 'createNotifier returned undefined with NOTIFY_SOCKET set');
  t.after(() => notifier.close());
  return notifier;
}

interface Direct {
  child: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the bytes are in the pipe. */
  write(data: string | Buffer): Promise<void>;
}

/** The native notifier run directly, stdin a pipe from this process. */
function runNotifier(t: TestContext, args: string[], command: string[] = []): Direct {
  const [file, ...prefix] = command.length > 0 ? command : [NOTIFY];
  const child = spawn(file!, [...prefix, ...(command.length > 0 ? [NOTIFY] : []), ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  child.stdin!.on('error', () => undefined);
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    stderr: () => stderr,
    exited,
    write: (data) => new Promise<void>((resolve, reject) => child.stdin!.write(data, (error) => (error ? reject(error) : resolve()))),
  };
}

async function waitStderr(direct: Direct, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  await waitUntil(`stderr matching ${pattern} (got ${JSON.stringify(direct.stderr())})`, () => pattern.test(direct.stderr()), timeoutMs);
}

// ---------------------------------------------------------------- the native notifier

describe('spawn-fcgi-ts-notify', () => {
  test('usage errors: one line naming the problem, the usage, exit 1', () => {
    const cases: [string[], RegExp][] = [
      [[], /missing SOCKET/],
      [['--pid', '1'], /SOCKET must come first/],
      [['relative/notify.sock'], /unsupported NOTIFY_SOCKET 'relative\/notify.sock': expected an absolute path or @name/],
      [['vsock:2:1234'], /unsupported NOTIFY_SOCKET/],
      [['@'], /abstract socket name must have 1 to 107 characters/],
      [[`@${'a'.repeat(108)}`], /abstract socket name must have 1 to 107 characters/],
      [[`/tmp/${'a'.repeat(103)}`], /socket path is too long/],
      [['/tmp/x.sock', '--pid'], /unknown argument/],
      [['/tmp/x.sock', '--pid', '0'], /--pid needs a positive process id/],
      [['/tmp/x.sock', '--pid', '12x'], /--pid needs a positive process id/],
      [['/tmp/x.sock', '--verbose'], /unknown argument/],
    ];
    for (const [args, pattern] of cases) {
      let status: number | null = null;
      let stderr = '';
      try {
        execFileSync(NOTIFY, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
        status = 0;
      } catch (error) {
        const e = error as { status: number | null; stderr: string };
        status = e.status;
        stderr = e.stderr;
      }
      assert.equal(status, 1, `args ${JSON.stringify(args)}`);
      assert.match(stderr, pattern, `args ${JSON.stringify(args)}`);
      assert.match(stderr, /^usage: spawn-fcgi-ts-notify SOCKET \[--pid PID\]/m);
    }
  });

  test('longest socket names accepted: a 107-byte path and a 107-character abstract name', async (t) => {
    const name = `@${randomBytes(60).toString('hex').slice(0, 107)}`;
    assert.equal(name.length, 108);
    const listener = await listen(t, name);
    const run = runNotifier(t, [name]);
    await run.write('LONG_NAME=1\0');
    run.child.stdin!.end();
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    assert.equal((await listener.waitFor(1))[0]!.data, 'LONG_NAME=1');

    const dir = tempDir(t);
    const path = `${dir}/${'p'.repeat(107 - dir.length - 1)}`;
    assert.equal(path.length, 107);
    const pathListener = await listen(t, path);
    const pathRun = runNotifier(t, [path]);
    await pathRun.write('LONG_PATH=1\0');
    pathRun.child.stdin!.end();
    assert.deepEqual(await pathRun.exited, { code: 0, signal: null });
    assert.equal((await pathListener.waitFor(1))[0]!.data, 'LONG_PATH=1');
    assert.equal(run.stderr() + pathRun.stderr(), '');
  });

  test('framing: one datagram per NUL-terminated message, empty ones skipped, a trailing fragment dropped', async (t) => {
    const dir = tempDir(t);
    const listener = await listen(t, `${dir}/notify.sock`);
    const run = runNotifier(t, [listener.address]);
    const big = `STATUS=${'b'.repeat(5000)}`;
    await run.write(`READY=1\nSTATUS=two lines\0\0\0WATCHDOG=1\0${big}\0partial`);
    run.child.stdin!.end();
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    const got = await listener.waitFor(3);
    assert.deepEqual(
      got.map((d) => d.data),
      ['READY=1\nSTATUS=two lines', 'WATCHDOG=1', big],
    );
    assert.deepEqual(
      got.map((d) => d.bytes),
      [24, 10, 5007],
    );
    assert.ok(got.every((d) => !d.truncated));
    assert.match(run.stderr(), /^spawn-fcgi-ts-notify: 7 bytes without a terminating NUL at end of input dropped\n$/);
    await sleep(100);
    assert.equal(listener.received.length, 3, 'the fragment must not be sent');
  });

  test('messages split across reads and many in a burst arrive whole and in order', async (t) => {
    const dir = tempDir(t);
    const listener = await listen(t, `${dir}/notify.sock`);
    const run = runNotifier(t, [listener.address]);
    await run.write('READY=1\nSTA');
    await sleep(50);
    await run.write('TUS=joined\0');
    const burst = Array.from({ length: 300 }, (_, i) => `STATUS=message ${i}\nX_SEQ=${i}`);
    await run.write(burst.map((m) => `${m}\0`).join(''));
    run.child.stdin!.end();
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    const got = await listener.waitFor(301, 30_000);
    assert.deepEqual(
      got.map((d) => d.data),
      ['READY=1\nSTATUS=joined', ...burst],
    );
    assert.equal(run.stderr(), '');
  });

  test('a message over 64 KiB is dropped with one line; the next one still goes', async (t) => {
    const dir = tempDir(t);
    const listener = await listen(t, `${dir}/notify.sock`);
    const run = runNotifier(t, [listener.address]);
    await run.write(`STATUS=${'h'.repeat(200_000)}\0AFTER=1\0`);
    run.child.stdin!.end();
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    assert.deepEqual(
      (await listener.waitFor(1)).map((d) => d.data),
      ['AFTER=1'],
    );
    assert.match(run.stderr(), /^spawn-fcgi-ts-notify: message longer than 65536 bytes dropped\n$/);
  });

  test('no listener yet (ENOENT), then one, then gone (ECONNREFUSED): drops, one line per new error, keeps going', async (t) => {
    const dir = tempDir(t);
    const path = `${dir}/notify.sock`;
    const run = runNotifier(t, [path]);
    await run.write('LOST=1\0LOST=2\0');
    await waitStderr(run, /No such file or directory/);
    await sleep(100);
    assert.equal(
      run
        .stderr()
        .split('\n')
        .filter((l) => l !== '').length,
      1,
      `one line for two drops: ${run.stderr()}`,
    );
    assert.match(run.stderr(), new RegExp(`^spawn-fcgi-ts-notify: sending to ${path} failed: No such file or directory; message dropped \\(LOST=1\\)\\n$`));

    const listener = await listen(t, path);
    await run.write('DELIVERED=1\0');
    assert.deepEqual(
      (await listener.waitFor(1)).map((d) => d.data),
      ['DELIVERED=1'],
    );

    await listener.stop(); // the path is removed: ENOENT again, reported again after the success
    await run.write('GONE=1\0');
    await waitUntil(
      'a second error line',
      () =>
        run
          .stderr()
          .split('\n')
          .filter((l) => l !== '').length === 2,
    );
    assert.match(run.stderr().split('\n')[1]!, /No such file or directory; message dropped \(GONE=1\)$/);
    assert.equal(run.child.exitCode, null, 'the notifier must keep running after send errors');
    run.child.stdin!.end();
    assert.deepEqual(await run.exited, { code: 0, signal: null });
  });

  test('ECONNREFUSED from a socket file without a reader: dropped with one line', async (t) => {
    const dir = tempDir(t);
    const path = `${dir}/notify.sock`;
    // A python process binds and exits: the socket file stays, nobody receives.
    execFileSync(PYTHON, ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).bind(sys.argv[1])', path]);
    assert.ok(fs.statSync(path).isSocket());
    const run = runNotifier(t, [path]);
    await run.write('REFUSED=1\0REFUSED=2\0');
    run.child.stdin!.end();
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    assert.match(run.stderr(), /^spawn-fcgi-ts-notify: sending to .* failed: Connection refused; message dropped \(REFUSED=1\)\n$/);
  });

  test('--pid as root: the credentials carry that pid', ROOT_ONLY, async (t) => {
    const listener = await listen(t, abstractName());
    const run = runNotifier(t, [listener.address, '--pid', String(process.pid)]);
    await run.write('READY=1\0');
    run.child.stdin!.end();
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    const [got] = await listener.waitFor(1);
    assert.equal(got!.pid, process.pid);
    assert.notEqual(got!.pid, run.child.pid);
    assert.equal(got!.uid, 0);
    assert.equal(got!.gid, 0);
    assert.equal(run.stderr(), '');
  });

  test("without --pid the kernel reports the notifier's own pid", async (t) => {
    const listener = await listen(t, abstractName());
    const run = runNotifier(t, [listener.address]);
    await run.write('READY=1\0');
    run.child.stdin!.end();
    await run.exited;
    const [got] = await listener.waitFor(1);
    assert.equal(got!.pid, run.child.pid);
  });

  test('--pid when not allowed (an unprivileged user): EPERM once, then sent without credentials', ROOT_ONLY, async (t) => {
    const dir = tempDir(t);
    const listener = await listen(t, `${dir}/notify.sock`);
    // setpriv execs the notifier in place, so the spawned pid is the notifier's.
    const run = runNotifier(t, [listener.address, '--pid', String(process.pid)], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    await run.write('READY=1\0STATUS=still here\0');
    run.child.stdin!.end();
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    const got = await listener.waitFor(2);
    assert.deepEqual(
      got.map((d) => d.data),
      ['READY=1', 'STATUS=still here'],
    );
    for (const d of got) {
      assert.equal(d.pid, run.child.pid, "the kernel fills in the sender's own pid");
      assert.equal(d.uid, 65534);
    }
    assert.equal(run.stderr(), `spawn-fcgi-ts-notify: may not send credentials for pid ${process.pid} (EPERM); sending without them\n`);
  });

  test('SIGTERM: sends every complete message already in the pipe, then exits 0', async (t) => {
    const listener = await listen(t, abstractName());
    const run = runNotifier(t, [listener.address]);
    await run.write('FIRST=1\0');
    await listener.waitFor(1); // the notifier is up and blocked in read(2)
    await run.write('SECOND=1\0THIRD=1\0fragm');
    run.child.kill('SIGTERM');
    assert.deepEqual(await run.exited, { code: 0, signal: null });
    assert.deepEqual(
      (await listener.waitFor(3)).map((d) => d.data),
      ['FIRST=1', 'SECOND=1', 'THIRD=1'],
    );
    assert.match(run.stderr(), /5 bytes without a terminating NUL at end of input dropped/);
  });

  test('dies with its parent even while its stdin stays open (PR_SET_PDEATHSIG)', async (t) => {
    const listener = await listen(t, abstractName());
    // stdin is a FIFO that this process holds open for writing the whole time, so no EOF can end the
    // notifier: only its parent's (sh's) death can. (Node would close a child's stdin pipe when it exits.)
    const dir = tempDir(t);
    const fifo = join(dir, 'stdin');
    execFileSync('mkfifo', [fifo]);
    const writer = fs.openSync(fifo, 'r+'); // O_RDWR: does not wait for a reader
    t.after(() => fs.closeSync(writer));
    const sh = spawn('sh', ['-c', '"$0" "$1" <"$2" & echo $!; wait', NOTIFY, listener.address, fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
    const shExited = new Promise<void>((resolve) => sh.once('exit', () => resolve()));
    t.after(async () => {
      if (sh.exitCode === null && sh.signalCode === null) {
        sh.kill('SIGKILL');
        await shExited;
      }
    });
    const pid = await new Promise<number>((resolve, reject) => {
      let out = '';
      sh.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
      sh.once('exit', () => reject(new Error('sh exited early')));
    });
    t.after(() => {
      if (!isGone(pid)) process.kill(pid, 'SIGKILL');
    });
    fs.writeSync(writer, 'ALIVE=1\0');
    await listener.waitFor(1);
    assert.ok(!isGone(pid), 'the notifier runs');
    sh.kill('SIGKILL');
    await shExited;
    await waitUntil(`notifier ${pid} to die with its parent (state ${procState(pid)})`, () => isGone(pid), 20_000);
  });
});

// ---------------------------------------------------------------- createNotifier

describe('createNotifier (src/observe/sd-notify.ts)', () => {
  test('ready, status, reloading, ready, stopping: whole, in order, one notifier process, gone after close()', async (t) => {
    const listener = await listen(t, abstractName());
    const errors: string[] = [];
    const notifier = notifierFor(t, { NOTIFY_SOCKET: listener.address }, { onError: (line) => errors.push(line) });
    assert.deepEqual(ourNotifiers(), [], 'lazy: nothing started before the first message');
    notifier.ready('serving: 2 of 2 children');
    notifier.status('2 of 2 children, 0 restarts');
    const before = process.hrtime.bigint() / 1000n;
    notifier.reloading('rolling restart');
    const after = process.hrtime.bigint() / 1000n;
    notifier.ready('reloaded');
    notifier.notify({ STATUS: 'multi\nline', ERRNO: 0 });
    notifier.stopping();
    const got = await listener.waitFor(6);
    assert.equal(ourNotifiers().length, 1, 'one notifier for every message');
    const notifierPid = ourNotifiers()[0]!;
    await notifier.close();
    assert.ok(isGone(notifierPid), 'close() waits for the notifier to exit');
    assert.deepEqual(ourNotifiers(), []);

    assert.equal(got[0]!.data, 'READY=1\nSTATUS=serving: 2 of 2 children');
    assert.equal(got[1]!.data, 'STATUS=2 of 2 children, 0 restarts');
    const reload = /^RELOADING=1\nMONOTONIC_USEC=(\d+)\nSTATUS=rolling restart$/.exec(got[2]!.data);
    assert.ok(reload, `reloading message: ${JSON.stringify(got[2]!.data)}`);
    const usec = BigInt(reload[1]!);
    assert.ok(usec >= before && usec <= after, `MONOTONIC_USEC ${usec} not within [${before}, ${after}]`);
    // Same clock as the listener's CLOCK_MONOTONIC arrival time, and before it.
    assert.ok(Number(usec) <= got[2]!.usec && got[2]!.usec - Number(usec) < 5_000_000, `sent ${usec}, received ${got[2]!.usec}`);
    assert.equal(got[3]!.data, 'READY=1\nSTATUS=reloaded');
    assert.equal(got[4]!.data, 'STATUS=multi line\nERRNO=0');
    assert.equal(got[5]!.data, 'STOPPING=1');
    for (const d of got) {
      assert.equal(d.pid, IS_ROOT ? process.pid : notifierPid, 'credentials');
    }
    await sleep(100);
    assert.equal(listener.received.length, 6, 'nothing more');
    assert.deepEqual(errors, []);

    notifier.ready('after close');
    await sleep(100);
    assert.equal(listener.received.length, 6, 'nothing is sent after close()');
    assert.deepEqual(ourNotifiers(), []);
  });

  test('a filesystem socket path works too', async (t) => {
    const dir = tempDir(t);
    const listener = await listen(t, `${dir}/notify.sock`);
    const notifier = notifierFor(t, { NOTIFY_SOCKET: listener.address });
    notifier.ready();
    notifier.stopping('bye');
    await notifier.close();
    assert.deepEqual(
      (await listener.waitFor(2)).map((d) => d.data),
      ['READY=1', 'STOPPING=1\nSTATUS=bye'],
    );
  });

  test("--pid as root: systemd would see the supervisor's pid, not the notifier's", ROOT_ONLY, async (t) => {
    const listener = await listen(t, abstractName());
    const notifier = notifierFor(t, { NOTIFY_SOCKET: listener.address });
    notifier.ready();
    const [got] = await listener.waitFor(1);
    const [notifierPid] = ourNotifiers();
    assert.ok(notifierPid !== undefined);
    assert.equal(got!.pid, process.pid);
    assert.notEqual(got!.pid, notifierPid);
    await notifier.close();
  });

  test('watchdog: WATCHDOG=1 at once and every WATCHDOG_USEC/2 (200000 µs → ~100 ms), stops on close()', async (t) => {
    const listener = await listen(t, abstractName());
    const startedAt = Date.now();
    const notifier = notifierFor(t, { NOTIFY_SOCKET: listener.address, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) });
    assert.equal(notifier.startWatchdog(), 100);
    assert.equal(notifier.startWatchdog(), 100, 'a second call starts no second timer');
    // Outcomes, not a window: pings keep coming (wait for eight), never faster than the interval allows,
    // and none after close(). A busy machine can only delay timers, so it makes the pings fewer, not more.
    await waitUntil(`eight pings (got ${listener.received.length})`, () => listener.received.length >= 8, 20_000);
    await notifier.close();
    const elapsed = Date.now() - startedAt;
    const count = listener.received.length;
    await sleep(300);
    assert.equal(listener.received.length, count, 'no ping after close()');
    const got = listener.received;
    assert.ok(
      got.every((d) => d.data === 'WATCHDOG=1'),
      JSON.stringify(got.map((d) => d.data)),
    );
    // 1 at once + one per 100 ms at most: a doubled timer would exceed it.
    assert.ok(count <= 2 + Math.floor(elapsed / 100), `${count} pings in ${elapsed} ms: more than one per 100 ms`);
    const gaps = got
      .slice(1)
      .map((d, i) => (d.usec - got[i]!.usec) / 1000)
      .sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    t.diagnostic(`${count} pings in ${elapsed} ms; median gap ${median.toFixed(1)} ms (gaps ${gaps.map((g) => g.toFixed(0)).join(' ')})`);
    // Arrival times can bunch up when one ping is delayed and the next is not, so the median, not each gap.
    assert.ok(median >= 80, `median gap ${median} ms: pings come faster than every 100 ms`);
  });

  test('watchdog: nothing when WATCHDOG_PID names another process or WATCHDOG_USEC is absent', async (t) => {
    const listener = await listen(t, abstractName());
    const other = notifierFor(t, { NOTIFY_SOCKET: listener.address, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid + 1) });
    assert.equal(other.startWatchdog(), undefined);
    const none = notifierFor(t, { NOTIFY_SOCKET: listener.address });
    assert.equal(none.startWatchdog(), undefined);
    await sleep(300);
    assert.equal(listener.received.length, 0);
    assert.deepEqual(ourNotifiers(), [], 'no notifier was even started');
    other.status('sentinel');
    assert.deepEqual(
      (await listener.waitFor(1)).map((d) => d.data),
      ['STATUS=sentinel'],
    );
  });

  test('send errors reach onError; a killed notifier is reported and restarted on the next message', async (t) => {
    const dir = tempDir(t);
    const path = `${dir}/notify.sock`;
    const errors: string[] = [];
    const notifier = notifierFor(t, { NOTIFY_SOCKET: path }, { onError: (line) => errors.push(line) });
    notifier.ready('nobody listens yet');
    await waitUntil(`an error line (got ${JSON.stringify(errors)})`, () => errors.length > 0);
    assert.match(errors[0]!, /^spawn-fcgi-ts-notify: sending to .*notify\.sock failed: No such file or directory; message dropped \(READY=1\.\.\.\)$/);

    const listener = await listen(t, path);
    const [first] = ourNotifiers();
    assert.ok(first !== undefined);
    process.kill(first, 'SIGKILL');
    await waitUntil(`the exit to be reported (got ${JSON.stringify(errors)})`, () => errors.length > 1);
    assert.match(errors[1]!, /sd_notify helper exited unexpectedly \(SIGKILL\); restarting it on the next message/);
    notifier.ready('back');
    assert.deepEqual(
      (await listener.waitFor(1)).map((d) => d.data),
      ['READY=1\nSTATUS=back'],
    );
    const [second] = ourNotifiers();
    assert.ok(second !== undefined && second !== first, `a new notifier (${first} → ${second})`);
    await notifier.close();
    assert.equal(errors.length, 2, JSON.stringify(errors));
  });

  test("an unsupported NOTIFY_SOCKET: the notifier's reason reaches onError and notifications stop", async (t) => {
    const errors: string[] = [];
    const notifier = notifierFor(t, { NOTIFY_SOCKET: 'vsock:2:9999' }, { onError: (line) => errors.push(line) });
    notifier.ready();
    await waitUntil(`notifications disabled (got ${JSON.stringify(errors)})`, () => errors.some((l) => /notifications disabled/.test(l)));
    assert.ok(
      errors.some((l) => /unsupported NOTIFY_SOCKET 'vsock:2:9999'/.test(l)),
      JSON.stringify(errors),
    );
    notifier.ready();
    await sleep(100);
    assert.deepEqual(ourNotifiers(), [], 'not restarted');
  });

  test('a notifier that cannot run (not executable, or exits non-zero) is reported once and not retried', async (t) => {
    const dir = tempDir(t);
    const notExecutable = join(dir, 'not-executable');
    fs.writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    const failing = join(dir, 'failing');
    fs.writeFileSync(failing, '#!/bin/sh\necho "broken notifier" >&2\nexit 3\n', { mode: 0o755 });
    const cases: [string, RegExp[]][] = [
      [notExecutable, [/^sd_notify: cannot start .*not-executable: .*EACCES; notifications disabled$/]],
      [failing, [/^broken notifier$/, /^sd_notify helper .*failing @\S+( --pid \d+)? exited with code 3; notifications disabled$/]],
    ];
    for (const [binary, expected] of cases) {
      const errors: string[] = [];
      const notifier = notifierFor(t, { NOTIFY_SOCKET: abstractName(), SPAWN_FCGI_TS_NOTIFY: binary }, { onError: (line) => errors.push(line) });
      notifier.ready();
      await waitUntil(`notifications disabled (got ${JSON.stringify(errors)})`, () => errors.some((l) => /notifications disabled/.test(l)));
      notifier.ready();
      notifier.stopping();
      await sleep(200);
      assert.equal(errors.length, expected.length, JSON.stringify(errors));
      expected.forEach((pattern, i) => assert.match(errors[i]!, pattern));
      await notifier.close();
    }
  });

  test('does not keep the supervisor alive, and what it sent before exiting arrives', async (t) => {
    const listener = await listen(t, abstractName());
    const script = `
      import { createNotifier } from ${JSON.stringify(join(ROOT, 'src', 'observe', 'sd-notify.ts'))};
      const n = createNotifier({ NOTIFY_SOCKET: ${JSON.stringify(listener.address)}, WATCHDOG_USEC: '60000000' });
      n.ready('up');
      n.startWatchdog();
      // Nothing else to do: the loop must end on its own (the notifier, its pipes and the timer are unref'd).
      setTimeout(() => n.stopping('going'), 300);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const code = await Promise.race([exited, sleep(15_000, 'hung', { ref: false })]);
    assert.equal(code, 0, `the script exited: ${stderr}`);
    const got = await listener.waitFor(3);
    assert.deepEqual(
      got.map((d) => d.data),
      ['READY=1\nSTATUS=up', 'WATCHDOG=1', 'STOPPING=1\nSTATUS=going'],
    );
  });
});
