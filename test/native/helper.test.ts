/**
 * Tests of the native exec helper (build/spawn-fcgi-ts-helper), run directly:
 * fd 0 = a socket bound (not listening) by this process, fd 3 = the status pipe.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { fcgiRequest, parseCgiResponse } from '../helpers/fcgi-mini.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HELPER = join(ROOT, 'build', 'spawn-fcgi-ts-helper');
const RESPONDER = join(ROOT, 'build', 'static-responder');
const IS_ROOT = process.getuid?.() === 0;
const ROOT_ONLY = IS_ROOT ? {} : { skip: 'needs root' };
const SLEEP = fs.realpathSync('/bin/sleep');
const SIGTERM = 15;

before(() => {
  execFileSync('sh', [join(ROOT, 'scripts', 'build-helper.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  assert.ok(fs.existsSync(HELPER), `${HELPER} missing: run 'sh scripts/build-helper.sh'`);
});

function requireResponder(): void {
  assert.ok(fs.existsSync(RESPONDER), `${RESPONDER} missing: it is linked -static; install libc6-dev and run 'sh scripts/build-helper.sh'`);
}

// ---------------------------------------------------------------- utilities

function tempDir(t: TestContext, prefix: string): string {
  const dir = fs.mkdtempSync(join('/tmp', prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Bind (never listen) a unix socket the way the supervisor does; the fd goes to the child as fd 0. */
function bindUnix(t: TestContext, path: string): number {
  const create = (net as unknown as { _createServerHandle: (...args: unknown[]) => unknown })._createServerHandle;
  assert.equal(typeof create, 'function', 'net._createServerHandle is gone from this Node version');
  const handle = create(path, -1, -1);
  assert.notEqual(typeof handle, 'number', `binding ${path} failed: errno ${String(handle)}`);
  const { fd, close } = handle as { fd: number; close: () => void };
  assert.ok(fd > 2, `bound handle has no usable fd (${fd})`);
  t.after(() => {
    close.call(handle);
    fs.rmSync(path, { force: true });
  });
  return fd;
}

interface Run {
  child: ChildProcess;
  pid: number;
  /** Everything written to the status fd, settled when it is closed. */
  status: Promise<string>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout: () => string;
  stderr: () => string;
}

function collect(stream: Readable | null | undefined): { text: () => string; closed: Promise<string> } {
  let text = '';
  if (!stream) return { text: () => text, closed: Promise.resolve('') };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    text += chunk;
  });
  const closed = new Promise<string>((resolve) => stream.once('close', () => resolve(text)));
  return { text: () => text, closed };
}

/** Spawn a command with fd 3 = a pipe; kill it (by PID) after the test if it still runs. */
function run(
  t: TestContext,
  file: string,
  args: string[],
  options: { fd0?: number | 'ignore'; extra?: StdioOptions[number][]; env?: NodeJS.ProcessEnv } = {},
): Run {
  const stdio = [options.fd0 ?? 'ignore', 'pipe', 'pipe', 'pipe', ...(options.extra ?? [])] as StdioOptions;
  const child = spawn(file, args, { stdio, env: options.env ?? { PATH: '/usr/bin:/bin' } });
  assert.ok(child.pid !== undefined, `spawning ${file} failed`);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exit;
    }
  });
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  const status = collect(child.stdio[3] as Readable).closed;
  return { child, pid: child.pid, status, exit, stdout: out.text, stderr: err.text };
}

function runHelper(t: TestContext, args: string[], options: Parameters<typeof run>[3] = {}): Run {
  return run(t, HELPER, args, options);
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function procStatus(pid: number): Record<string, string> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return fields;
}

/** Gone, or a zombie (PID 1 here reaps orphans late: DESIGN.md §8). */
function deadOrZombie(pid: number): boolean {
  const status = procStatus(pid);
  return status === undefined || status.State!.startsWith('Z');
}

function exeOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Kill a process that is not our child (by PID) after the test. */
function killAfter(t: TestContext, pid: number): void {
  t.after(() => {
    if (!deadOrZombie(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

function ids(field: string | undefined): string[] {
  return (field ?? '').split(/\s+/).filter((s) => s !== '');
}

function sh(...args: string[]): string {
  return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8' }).trim();
}

// ---------------------------------------------------------------- exec success

test('exec success: status fd closes empty, --listen makes the bound socket accept, stray fds are closed', { timeout: 60_000 }, async (t) => {
  requireResponder();
  const dir = tempDir(t, 'sfts-helper-');
  const path = join(dir, 'app.sock');
  const fd0 = bindUnix(t, path);

  // Bound but not listening: nobody may connect yet (the supervisor never listens).
  await assert.rejects(new Promise((resolve, reject) => net.connect(path).once('connect', resolve).once('error', reject)), /ECONNREFUSED/);

  const stray = fs.openSync('/dev/null', 'r');
  t.after(() => fs.closeSync(stray));
  const r = runHelper(t, ['--status-fd', '3', '--listen', '16', '--', RESPONDER], {
    fd0,
    extra: [stray],
    env: { PATH: '/usr/bin:/bin', SFTS_MARK: 'hello world' },
  });
  assert.equal(await r.status, '', 'the status fd must close without data on exec');
  assert.equal(exeOf(r.pid), RESPONDER, 'the helper must exec the program in place (same pid)');
  assert.deepEqual(fs.readdirSync(`/proc/${r.pid}/fd`).sort(), ['0', '1', '2'], 'only fds 0-2 survive the exec');

  const answer = await fcgiRequest({ path }, { QUERY_STRING: 'a=1', REQUEST_METHOD: 'GET' });
  const { headers, body } = parseCgiResponse(answer.stdout);
  assert.equal(headers['content-type'], 'text/plain');
  assert.match(body, new RegExp(`^pid=${r.pid}$`, 'm'));
  assert.match(body, new RegExp(`^ppid=${process.pid}$`, 'm'));
  assert.match(body, /^envval:SFTS_MARK=hello world$/m);
  assert.match(body, /^param:QUERY_STRING=a=1$/m);
  assert.equal(answer.appStatus, 0);

  // A long PARAMS stream (4-byte lengths, several records) is handled too; exit=N ends the responder.
  const long = 'x'.repeat(70000);
  const last = await fcgiRequest({ path }, { HTTP_X_LONG: long, QUERY_STRING: 'exit=7' });
  assert.match(parseCgiResponse(last.stdout).body, /^param:QUERY_STRING=exit=7$/m);
  assert.deepEqual(await r.exit, { code: 7, signal: null });
  assert.equal(r.stderr(), '');
});

test('without --status-fd a successful exec needs no fd 3', { timeout: 60_000 }, async (t) => {
  const r = runHelper(t, ['--', '/bin/sh', '-c', 'echo "ran $0 $1"', 'a', 'b']);
  assert.deepEqual(await r.exit, { code: 0, signal: null });
  await r.status;
  assert.equal(r.stdout(), 'ran a b\n');
});

// ---------------------------------------------------------------- failures

describe('each failure writes one line to the status fd and exits 111', () => {
  const missing = `/tmp/sfts-missing-${randomBytes(4).toString('hex')}`;
  const cases: Array<{
    name: string;
    args: (dir: string) => string[];
    message: (dir: string) => string;
    fd0?: 'devnull';
    rootOnly?: boolean;
  }> = [
    { name: 'exec of a missing program', args: () => ['--', missing], message: () => `exec('${missing}') failed: No such file or directory` },
    {
      name: 'exec of a non-executable file',
      args: (dir) => ['--', join(dir, 'not-exec')],
      message: (dir) => `exec('${join(dir, 'not-exec')}') failed: Permission denied`,
    },
    {
      name: 'chroot into a missing dir',
      args: () => ['--chroot', missing, '--', '/bin/true'],
      message: () => `chroot('${missing}') failed: No such file or directory`,
      rootOnly: true,
    },
    {
      name: 'chdir into a missing dir',
      args: () => ['--chdir', missing, '--', '/bin/true'],
      message: () => `chdir('${missing}') failed: No such file or directory`,
    },
    { name: '--uid 0 without --allow-root', args: () => ['--uid', '0', '--', '/bin/true'], message: () => 'I will not set uid to 0' },
    { name: '--gid 0 without --allow-root', args: () => ['--gid', '0', '--', '/bin/true'], message: () => 'I will not set gid to 0' },
    { name: 'unknown rlimit name', args: () => ['--rlimit', 'foo=1', '--', '/bin/true'], message: () => "unknown rlimit 'foo'" },
    { name: 'bad rlimit value', args: () => ['--rlimit', 'nofile=12x', '--', '/bin/true'], message: () => "invalid rlimit value for nofile: '12x'" },
    {
      name: 'soft rlimit above hard',
      args: () => ['--rlimit', 'nofile=100:50', '--', '/bin/true'],
      message: () => 'setrlimit(nofile) failed: Invalid argument',
    },
    {
      name: 'listen on a non-socket fd 0',
      args: () => ['--listen', '16', '--', '/bin/true'],
      message: () => 'listen failed: Socket operation on non-socket',
      fd0: 'devnull',
    },
    { name: 'parent already gone', args: () => ['--pdeathsig', '15', '--parent', '1', '--', '/bin/true'], message: () => 'parent 1 died before exec' },
    { name: 'no program', args: () => ['--listen', '1', '--'], message: () => 'usage: spawn-fcgi-ts-helper [' },
    { name: 'unknown option', args: () => ['--frobnicate', '1', '--', '/bin/true'], message: () => "usage: unknown option '--frobnicate'" },
    { name: '--groups without ids', args: () => ['--groups', '65534', '--', '/bin/true'], message: () => 'usage: --groups needs --gid or --uid' },
    {
      name: '--groups with a name',
      args: () => ['--groups', 'nogroup', '--gid', '65534', '--', '/bin/true'],
      message: () => "usage: invalid --groups 'nogroup'",
    },
    {
      name: '--groups with an empty item',
      args: () => ['--groups', '1,,2', '--gid', '65534', '--', '/bin/true'],
      message: () => "usage: invalid --groups '1,,2'",
    },
    {
      name: '--groups with a trailing comma',
      args: () => ['--groups', '1,', '--gid', '65534', '--', '/bin/true'],
      message: () => "usage: invalid --groups '1,'",
    },
    { name: '--groups with a negative id', args: () => ['--groups', '-1', '--gid', '65534', '--', '/bin/true'], message: () => "usage: invalid --groups '-1'" },
    {
      name: '--user is gone (no NSS call in the helper)',
      args: () => ['--user', 'nobody', '--gid', '65534', '--', '/bin/true'],
      message: () => "usage: unknown option '--user'",
    },
  ];

  for (const c of cases) {
    test(c.name, { timeout: 60_000, ...(c.rootOnly ? ROOT_ONLY : {}) }, async (t) => {
      const dir = tempDir(t, 'sfts-helper-');
      fs.writeFileSync(join(dir, 'not-exec'), '#!/bin/sh\nexit 0\n', { mode: 0o644 });
      let fd0: number | 'ignore' = 'ignore';
      if (c.fd0 === 'devnull') {
        const fd = fs.openSync('/dev/null', 'r');
        t.after(() => fs.closeSync(fd));
        fd0 = fd;
      }
      const r = runHelper(t, ['--status-fd', '3', ...c.args(dir)], { fd0 });
      const [status, exit] = await Promise.all([r.status, r.exit]);
      assert.deepEqual(exit, { code: 111, signal: null });
      const expected = c.message(dir);
      if (expected.endsWith('[')) assert.ok(status.startsWith(expected) && status.endsWith(']\n'), status);
      else assert.equal(status, `${expected}\n`);
      assert.equal(status.split('\n').length, 2, 'exactly one line');
      assert.equal(r.stderr(), '', 'nothing on stderr when a status fd is given');
    });
  }

  test('without --status-fd the line goes to stderr', { timeout: 60_000 }, async (t) => {
    const r = runHelper(t, ['--', missing]);
    assert.deepEqual(await r.exit, { code: 111, signal: null });
    await r.status;
    assert.equal(r.stderr(), `exec('${missing}') failed: No such file or directory\n`);
  });

  test('a --status-fd that is not open is reported on stderr', { timeout: 60_000 }, async (t) => {
    const r = runHelper(t, ['--status-fd', '9', '--', '/bin/true']);
    assert.deepEqual(await r.exit, { code: 111, signal: null });
    assert.equal(r.stderr(), 'status fd 9 is not open: Bad file descriptor\n');
  });
});

// ---------------------------------------------------------------- rlimits

test('rlimits are applied before exec', { timeout: 60_000 }, async (t) => {
  const r = runHelper(t, [
    '--status-fd',
    '3',
    '--rlimit',
    'nofile=123:456',
    '--rlimit',
    'core=0',
    '--rlimit',
    'STACK=8388608:unlimited',
    '--',
    '/bin/sleep',
    '5',
  ]);
  assert.equal(await r.status, '');
  const limits = fs.readFileSync(`/proc/${r.pid}/limits`, 'utf8');
  const limit = (name: string): string[] => {
    const m = new RegExp(`^${name}\\s+(\\S+)\\s+(\\S+)`, 'm').exec(limits);
    assert.ok(m, `no '${name}' line in /proc/${r.pid}/limits`);
    return [m[1]!, m[2]!];
  };
  assert.deepEqual(limit('Max open files'), ['123', '456']);
  assert.deepEqual(limit('Max core file size'), ['0', '0']);
  assert.deepEqual(limit('Max stack size'), ['8388608', 'unlimited']);
});

// ---------------------------------------------------------------- signals

test('signal dispositions and mask are reset: an inherited SIG_IGN for TERM does not reach the app', { timeout: 60_000 }, async (t) => {
  const TERM_BIT = 1n << BigInt(SIGTERM - 1);
  // Control: without the helper the ignored SIGTERM survives exec.
  const control = run(t, '/bin/sh', ['-c', 'trap "" TERM; exec /bin/sleep 30']);
  await waitFor('the control sleep', () => exeOf(control.pid) === SLEEP, 20_000);
  assert.notEqual(BigInt(`0x${procStatus(control.pid)!.SigIgn}`) & TERM_BIT, 0n, 'the control must ignore SIGTERM');

  const r = run(t, '/bin/sh', ['-c', 'trap "" TERM; exec "$0" --status-fd 3 -- /bin/sleep 30', HELPER]);
  assert.equal(await r.status, '');
  assert.equal(exeOf(r.pid), SLEEP);
  const status = procStatus(r.pid)!;
  assert.equal(BigInt(`0x${status.SigIgn}`), 0n, `SigIgn ${status.SigIgn}`);
  assert.equal(BigInt(`0x${status.SigBlk}`), 0n, `SigBlk ${status.SigBlk}`);
  r.child.kill('SIGTERM');
  assert.deepEqual(await r.exit, { code: null, signal: 'SIGTERM' });
});

// ---------------------------------------------------------------- pdeathsig

/**
 * Start the helper under a small sh whose pid is passed as --parent; return the
 * sh run and the helper's (then the app's) pid.
 */
async function underShell(t: TestContext, helperArgs: string[]): Promise<{ shell: Run; pid: number }> {
  const shell = run(t, '/bin/sh', ['-c', '"$0" "$@" --parent $$ -- /bin/sleep 30 & echo $!; wait', HELPER, ...helperArgs]);
  await waitFor('the helper pid from sh', () => shell.stdout().includes('\n'), 20_000);
  const pid = Number(shell.stdout().trim());
  assert.ok(Number.isInteger(pid) && pid > 0, `bad pid '${shell.stdout()}'`);
  killAfter(t, pid);
  await waitFor('the exec of sleep', () => exeOf(pid) === SLEEP || deadOrZombie(pid), 20_000);
  assert.equal(exeOf(pid), SLEEP, `helper failed: ${shell.stderr()}`);
  assert.equal(procStatus(pid)!.PPid, String(shell.pid));
  return { shell, pid };
}

test('--pdeathsig: the app dies when its parent is killed', { timeout: 60_000 }, async (t) => {
  const { shell, pid } = await underShell(t, ['--pdeathsig', String(SIGTERM)]);
  process.kill(shell.pid, 'SIGKILL');
  await waitFor(`pid ${pid} to die after its parent`, () => deadOrZombie(pid), 20_000);
});

test('control: without --pdeathsig the app outlives its parent', { timeout: 60_000 }, async (t) => {
  const { shell, pid } = await underShell(t, []);
  process.kill(shell.pid, 'SIGKILL');
  await shell.exit;
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(deadOrZombie(pid), false, 'the orphan should still run without a death signal');
});

// ---------------------------------------------------------------- privilege drop (root)

describe('privilege drop with a temporary user and groups', ROOT_ONLY, () => {
  const tag = randomBytes(3).toString('hex');
  const user = `sfts-u${tag}`;
  const primary = `sfts-p${tag}`;
  const extra = `sfts-s${tag}`;
  const created: Array<() => void> = [];
  let uid = 0;
  let gid = 0;
  let extraGid = 0;

  before(() => {
    sh('groupadd', '-r', primary);
    created.push(() => sh('groupdel', primary));
    sh('groupadd', '-r', extra);
    created.push(() => sh('groupdel', extra));
    sh('useradd', '-r', '-M', '-N', '-d', '/nonexistent', '-s', '/usr/sbin/nologin', '-g', primary, '-G', extra, user);
    created.push(() => sh('userdel', user));
    uid = Number(sh('id', '-u', user));
    gid = Number(sh('getent', 'group', primary).split(':')[2]);
    extraGid = Number(sh('getent', 'group', extra).split(':')[2]);
    assert.ok(uid > 0 && gid > 0 && extraGid > 0);
  });

  after(() => {
    const errors: unknown[] = [];
    for (const undo of created.reverse()) {
      try {
        undo();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw errors[0];
  });

  test('--gid --groups --uid sets uid, gid and the supplementary groups', { timeout: 60_000 }, async (t) => {
    const r = runHelper(t, ['--status-fd', '3', '--gid', String(gid), '--groups', `${gid},${extraGid}`, '--uid', String(uid), '--', '/bin/sleep', '5']);
    assert.equal(await r.status, '');
    const status = procStatus(r.pid)!;
    assert.deepEqual(ids(status.Uid), Array(4).fill(String(uid)));
    assert.deepEqual(ids(status.Gid), Array(4).fill(String(gid)));
    assert.deepEqual(ids(status.Groups).sort(), [String(gid), String(extraGid)].sort());
  });

  test('resolveCredentials gives the groups initgroups() would: the target gid and the memberships', async () => {
    const { resolveCredentials } = await import('../../src/common/identity.js');
    assert.deepEqual(resolveCredentials(user, undefined), { uid, gid, userName: user, groups: [gid, extraGid] });
    assert.deepEqual(resolveCredentials(user, 'nogroup').groups, [Number(sh('getent', 'group', 'nogroup').split(':')[2]), extraGid]);
    assert.deepEqual(resolveCredentials(String(uid), undefined).groups, [gid, extraGid]);
    assert.deepEqual(resolveCredentials(undefined, String(gid)), { gid, groups: [] });
  });

  test("resolveCredentials falls back to 'id -G' where getent has no initgroups database (musl, busybox)", async (t) => {
    const bin = tempDir(t, 'sfts-getent-');
    const real = sh('sh', '-c', 'command -v getent');
    fs.writeFileSync(join(bin, 'getent'), `#!/bin/sh\n[ "$1" = initgroups ] && { echo "Unknown database: $1" >&2; exit 1; }\nexec ${real} "$@"\n`, {
      mode: 0o755,
    });
    const { resolveCredentials } = await import('../../src/common/identity.js');
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      assert.deepEqual(resolveCredentials(user, undefined).groups, [gid, extraGid]);
      // -g other than the primary group: the primary group is not a membership, so it is left out.
      assert.deepEqual(resolveCredentials(user, 'nogroup').groups, [Number(sh('getent', 'group', 'nogroup').split(':')[2]), extraGid]);
    } finally {
      process.env.PATH = path;
    }
  });

  test('without --groups the supplementary groups are cleared', { timeout: 60_000 }, async (t) => {
    const r = runHelper(t, ['--status-fd', '3', '--gid', String(gid), '--uid', String(uid), '--', '/bin/sleep', '5']);
    assert.equal(await r.status, '');
    const status = procStatus(r.pid)!;
    assert.deepEqual(ids(status.Uid), Array(4).fill(String(uid)));
    assert.deepEqual(ids(status.Gid), Array(4).fill(String(gid)));
    assert.deepEqual(ids(status.Groups), []);
  });

  test('--chdir happens as the target user', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t, 'sfts-helper-');
    fs.chmodSync(dir, 0o700); // root only: the dropped user may not enter
    const r = runHelper(t, ['--status-fd', '3', '--gid', String(gid), '--uid', String(uid), '--chdir', dir, '--', '/bin/true']);
    assert.equal(await r.status, `chdir('${dir}') failed: Permission denied\n`);
    assert.equal((await r.exit).code, 111);
  });

  test('--pdeathsig survives the privilege drop', { timeout: 60_000 }, async (t) => {
    const { shell, pid } = await underShell(t, ['--gid', String(gid), '--groups', `${gid},${extraGid}`, '--uid', String(uid), '--pdeathsig', String(SIGTERM)]);
    assert.deepEqual(ids(procStatus(pid)!.Uid), Array(4).fill(String(uid)));
    process.kill(shell.pid, 'SIGKILL');
    await waitFor(`pid ${pid} to die after its parent`, () => deadOrZombie(pid), 20_000);
  });
});

// ---------------------------------------------------------------- chroot (root)

async function chrootedResponder(t: TestContext, dropArgs: string[]): Promise<{ body: string; pid: number }> {
  requireResponder();
  const jail = tempDir(t, 'sfts-jail-');
  fs.chmodSync(jail, 0o755);
  fs.copyFileSync(RESPONDER, join(jail, 'app'));
  fs.chmodSync(join(jail, 'app'), 0o755);
  fs.mkdirSync(join(jail, 'www'), { mode: 0o755 });
  const path = join(tempDir(t, 'sfts-sock-'), 's'); // outside the jail: the fd is inherited
  const fd0 = bindUnix(t, path);
  const r = runHelper(t, ['--status-fd', '3', '--listen', '8', ...dropArgs, '--chroot', jail, '--chdir', '/www', '--', '/app'], {
    fd0,
    env: { SFTS_JAIL: '1' },
  });
  assert.equal(await r.status, '');
  const answer = await fcgiRequest({ path }, { QUERY_STRING: '' });
  return { body: parseCgiResponse(answer.stdout).body, pid: r.pid };
}

test('--chroot --chdir: a static app runs in an empty jail on an fd bound outside it', { timeout: 60_000, ...ROOT_ONLY }, async (t) => {
  const { body, pid } = await chrootedResponder(t, []);
  assert.match(body, new RegExp(`^pid=${pid}$`, 'm'));
  assert.match(body, /^cwd=\/www$/m);
  assert.match(body, /^env=SFTS_JAIL$/m);
  assert.match(body, /^uid=0 euid=0$/m);
});

test('--chroot with a drop to nobody: the groups are set in the jail, where /etc/group is out of reach', { timeout: 60_000, ...ROOT_ONLY }, async (t) => {
  const nobody = sh('id', '-u', 'nobody');
  const nogroup = sh('id', '-g', 'nobody');
  const { body } = await chrootedResponder(t, ['--gid', nogroup, '--groups', nogroup, '--uid', nobody]);
  assert.match(body, /^cwd=\/www$/m);
  assert.match(body, new RegExp(`^uid=${nobody} euid=${nobody}$`, 'm'));
  assert.match(body, new RegExp(`^gid=${nogroup} egid=${nogroup}$`, 'm'));
  assert.match(body, new RegExp(`^groups=${nogroup}$`, 'm'));
});

// ---------------------------------------------------------------- init mode (PID 1 of a container)

describe('--init: a child subreaper that forwards signals and relays the exit status', () => {
  test("exits with the program's status", { timeout: 60_000 }, async (t) => {
    const r = runHelper(t, ['--init', '--', '/bin/sh', '-c', 'exit 7']);
    assert.deepEqual(await r.exit, { code: 7, signal: null });
  });

  test('128 + N when the program dies of signal N', { timeout: 60_000 }, async (t) => {
    const r = runHelper(t, ['--init', '--', '/bin/sh', '-c', 'kill -9 $$']);
    assert.deepEqual(await r.exit, { code: 137, signal: null });
  });

  test('forwards signals to the program', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t, 'sfts-init-');
    const ready = join(dir, 'ready');
    const r = runHelper(t, ['--init', '--', '/bin/sh', '-c', `trap 'exit 5' TERM; touch ${ready}; while :; do sleep 0.05; done`]);
    await waitFor('the program to set its trap', () => fs.existsSync(ready), 30_000);
    process.kill(r.pid, 'SIGTERM');
    assert.deepEqual(await r.exit, { code: 5, signal: null });
  });

  test('reaps orphaned grandchildren (no zombie left behind)', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t, 'sfts-init-');
    const orphanPidFile = join(dir, 'orphan');
    // The subshell forks `sleep` and exits: sleep is orphaned, reparented to the helper (a subreaper), and dies.
    const r = runHelper(t, ['--init', '--', '/bin/sh', '-c', `(sleep 0.3 & echo $! > ${orphanPidFile}); exec sleep 30`]);
    await waitFor('the orphan pid', () => fs.existsSync(orphanPidFile) && fs.readFileSync(orphanPidFile, 'utf8').endsWith('\n'), 30_000);
    const orphan = Number(fs.readFileSync(orphanPidFile, 'utf8'));
    assert.equal(procStatus(orphan)?.PPid, String(r.pid), 'the orphan belongs to the helper');
    await waitFor(`orphan ${orphan} to be reaped`, () => procStatus(orphan) === undefined, 30_000);
    process.kill(r.pid, 'SIGTERM');
    assert.deepEqual(await r.exit, { code: 143, signal: null });
  });

  test('usage: --init needs -- PROGRAM', { timeout: 60_000 }, async (t) => {
    const r = runHelper(t, ['--init', '/bin/true']);
    assert.deepEqual(await r.exit, { code: 111, signal: null });
    assert.equal(r.stderr(), 'usage: spawn-fcgi-ts-helper --init -- PROGRAM [ARG...]\n');
  });
});

describe('--watch-queue: listens, then reports connections waiting in the accept queue, never accepting', () => {
  const cpuTicks = (pid: number): number => {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  };

  test("'l' once listening; 'a' when a connection arrives, 'w' while it still waits; idle it sleeps", { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t, 'sfts-watch-');
    const path = join(dir, 's.sock');
    const fd = bindUnix(t, path);
    const r = runHelper(t, ['--watch-queue', '25', '16', String(process.pid)], { fd0: fd });
    await waitFor("'l'", () => r.stdout().startsWith('l'), 30_000);
    // Idle: blocked in poll, no CPU (clock ticks are 10 ms: a busy loop would show within 300 ms).
    const before = cpuTicks(r.pid);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(cpuTicks(r.pid), before, 'no CPU while nothing is queued');
    assert.equal(r.stdout(), 'l', 'nothing reported while nothing is queued');
    const client = net.connect({ path });
    t.after(() => client.destroy());
    await new Promise<void>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    await waitFor("'a' then 'w's", () => /^law{2,}/.test(r.stdout()), 30_000);
    let answered = false;
    client.on('data', () => {
      answered = true;
    });
    client.on('end', () => {
      answered = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(answered, false, 'the connection was never accepted');
    assert.match(r.stdout(), /^law+$/);
  });

  test('a parent other than the one named: exits at once; usage errors: 111 and one line', { timeout: 60_000 }, async (t) => {
    const dir = tempDir(t, 'sfts-watch-');
    const fd = bindUnix(t, join(dir, 's.sock'));
    const orphan = runHelper(t, ['--watch-queue', '25', '16', '1'], { fd0: fd });
    assert.deepEqual(await orphan.exit, { code: 0, signal: null });
    const bad = runHelper(t, ['--watch-queue', '0', '16', String(process.pid)], { fd0: fd });
    assert.deepEqual(await bad.exit, { code: 111, signal: null });
    assert.equal(bad.stderr(), 'usage: spawn-fcgi-ts-helper --watch-queue SETTLE_MS BACKLOG PARENT_PID\n');
    const notSocket = runHelper(t, ['--watch-queue', '25', '16', String(process.pid)], { fd0: 'ignore' });
    assert.deepEqual(await notSocket.exit, { code: 111, signal: null });
    assert.match(notSocket.stderr(), /^listen failed: /);
  });
});
