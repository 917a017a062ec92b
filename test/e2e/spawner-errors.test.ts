/**
 * The bad-input catalogue of the drop-in spawner. Each case runs the real command twice, as spawn-fcgi
 * users run it (daemon mode) and in the foreground (-n), and checks:
 *   - the exact message line on stderr (`spawn-fcgi-ts: <text from src/...>`),
 *   - the exit status (255 before any child runs, the child's status for an app that exits at once),
 *   - nothing on stdout (no child "spawned successfully"),
 *   - nothing left running: no process whose command line mentions the case's unique directory
 *     (socket path, app copy and PID file all live there) other than those there before,
 *   - nothing removed or created: the case's directory (socket path, files, their content and inodes)
 *     is exactly as before.
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseResponder, requireBuild, RESPONDER, runCli, startPool, track, type CliResult, type RunningPool } from '../helpers/pool.js';
import { freePort, processesMentioning, removePath, signalIfAlive, tmpDir, waitFor } from '../helpers/proc.js';
import { MAX_UNIX_PATH_BYTES } from '../../src/options/options.js';

let root: string;
before(() => {
  requireBuild();
  root = tmpDir('sfts-errors');
  chmodSync(root, 0o755);
});
after(() => removePath(root));

interface Ctx {
  /** A fresh directory for this case and mode. */
  dir: string;
  /** A socket path that does not exist yet, inside `dir`. */
  sock: string;
  /** A copy of static-responder inside `dir` (a working app whose command line names `dir`). */
  app: string;
  /** State a setup leaves for its teardown and checks. */
  state: Record<string, unknown>;
}

interface Case {
  name: string;
  args: (ctx: Ctx) => string[];
  /** The whole stderr line after `spawn-fcgi-ts: `, or a pattern for it. */
  message: (ctx: Ctx) => string | RegExp;
  /** Exit status (default 255). */
  code?: number;
  setup?: (ctx: Ctx) => void | Promise<void>;
  check?: (ctx: Ctx, result: CliResult) => void | Promise<void>;
  teardown?: (ctx: Ctx) => void | Promise<void>;
  /**
   * A command-line error, found before the command forks a daemon: the same code path with or without
   * -n, so it runs in daemon mode only.
   */
  parseOnly?: boolean;
}

/** name → type, size, inode, content: what "untouched" means for the case's directory. */
function snapshot(dir: string): Record<string, string> {
  const result: Record<string, string> = {};
  const walk = (path: string, name: string) => {
    const stats = lstatSync(path);
    const type = stats.isSocket() ? 'socket' : stats.isDirectory() ? 'dir' : stats.isFile() ? 'file' : 'other';
    const content = stats.isFile() && stats.size < 4096 ? readFileSync(path, 'utf8') : `${stats.size} bytes`;
    result[name] = `${type} ino=${stats.ino} mode=${(stats.mode & 0o7777).toString(8)} ${type === 'file' ? JSON.stringify(content) : ''}`;
    if (stats.isDirectory()) for (const entry of readdirSync(path)) walk(join(path, entry), `${name}/${entry}`);
  };
  walk(dir, '.');
  return result;
}

const PREFIX = 'spawn-fcgi-ts: ';

const cases: Case[] = [
  {
    name: 'no app',
    args: (c) => ['-s', c.sock],
    message: () => 'no FastCGI application given',
    parseOnly: true,
  },
  {
    name: 'no socket',
    args: (c) => ['--', c.app],
    message: () => 'no socket given (use either -p or -s)',
    parseOnly: true,
  },
  {
    name: 'both -s and -p',
    args: (c) => ['-s', c.sock, '-p', '9000', '--', c.app],
    message: () => 'either a Unix domain socket or a TCP-port, but not both',
    parseOnly: true,
  },
  {
    name: 'socket path of 108 bytes',
    args: (c) => {
      const path = join(c.dir, 'x'.repeat(MAX_UNIX_PATH_BYTES + 1 - Buffer.byteLength(c.dir) - 1));
      assert.equal(Buffer.byteLength(path), 108);
      return ['-s', path, '--', c.app];
    },
    message: () => 'path of the Unix domain socket is too long (108 bytes, at most 107)',
    parseOnly: true,
  },
  ...['0', '70000', 'abc'].map(
    (port): Case => ({
      name: `port ${port}`,
      args: (c) => ['-p', port, '--', c.app],
      message: () => `invalid port: ${port} (-p: expected an integer from 1 to 65535)`,
      parseOnly: true,
    }),
  ),
  {
    name: 'invalid address -a 1.2.3.4.5',
    args: (c) => ['-a', '1.2.3.4.5', '-p', '9000', '--', c.app],
    message: () => "'1.2.3.4.5' is not a valid IP address",
  },
  // Bounds: refused before anything is bound or spawned, in one shape (the flag, the value, what is allowed).
  ...(
    [
      [['-b', '99999999999'], "invalid value for -b: '99999999999' (expected an integer from 1 to 65535)"],
      [['-F', '100000'], "invalid value for -F: '100000' (expected an integer from 1 to 4096)"],
      [['-F', '0'], "invalid value for -F: '0' (expected an integer from 1 to 4096)"],
      [['-M', '888'], "invalid value for -M: '888' (expected an octal mode from 0 to 7777, such as 0660)"],
      [
        ['--kill-signal', 'STOP'],
        "invalid value for --kill-signal: 'STOP' (expected a signal that ends a process, such as TERM, INT, QUIT, USR1 or KILL; SIGSTOP does not)",
      ],
      [
        ['--kill-signal', 'WINCH'],
        "invalid value for --kill-signal: 'WINCH' (expected a signal that ends a process, such as TERM, INT, QUIT, USR1 or KILL; SIGWINCH does not)",
      ],
      [
        ['--kill-timeout', '3651d'],
        "invalid value for --kill-timeout: '3651d' (expected a duration from 0 to 10 years: seconds, or a number with ms, s, m, h or d)",
      ],
      [['--max-age', '-1h'], "invalid value for --max-age: '-1h' (expected a duration from 0 to 10 years: seconds, or a number with ms, s, m, h or d)"],
    ] as const
  ).map(
    ([flags, message]): Case => ({
      name: `${flags.join(' ')} refused`,
      args: (c) => ['-s', c.sock, ...flags, '--', c.app],
      message: () => message,
      parseOnly: true,
    }),
  ),
  {
    name: '--log-file in a missing directory',
    args: (c) => ['-s', c.sock, '--log-file', join(c.dir, 'no-such-dir', 'y.log'), '--', c.app],
    message: (c) => `can't open log file '${join(c.dir, 'no-such-dir', 'y.log')}': No such file or directory`,
  },
  {
    name: 'live socket at -s: the first pool keeps serving',
    setup: async (c) => {
      const pool = await startPool(['-s', c.sock, '--', c.app]);
      c.state.pool = pool;
      c.state.pid = parseResponder((await pool.request()).body).pid;
    },
    args: (c) => ['-s', c.sock, '--', c.app],
    message: () => "socket is already in use, can't spawn",
    check: async (c) => {
      const pool = c.state.pool as RunningPool;
      assert.equal(pool.exitStatus(), undefined, 'the first pool is still running');
      const info = parseResponder((await pool.request()).body);
      assert.equal(info.pid, c.state.pid, 'the same child of the first pool answers');
    },
    teardown: async (c) => {
      await (c.state.pool as RunningPool).stop();
    },
  },
  {
    name: 'regular file at -s',
    setup: (c) => writeFileSync(c.sock, 'precious data\n'),
    args: (c) => ['-s', c.sock, '--', c.app],
    message: (c) => `refusing to remove '${c.sock}': it is a regular file, not a socket`,
    check: (c) => assert.equal(readFileSync(c.sock, 'utf8'), 'precious data\n'),
  },
  {
    name: 'directory at -s',
    setup: (c) => {
      mkdirSync(c.sock);
      writeFileSync(join(c.sock, 'inside'), 'kept');
    },
    args: (c) => ['-s', c.sock, '--', c.app],
    message: (c) => `refusing to remove '${c.sock}': it is a directory, not a socket`,
    check: (c) => assert.ok(lstatSync(c.sock).isDirectory()),
  },
  {
    name: 'busy TCP port',
    setup: async (c) => {
      const port = await freePort();
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
      c.state.port = port;
      c.state.server = server;
    },
    args: (c) => ['-a', '127.0.0.1', '-p', String(c.state.port), '--', c.app],
    message: () => 'bind failed: Address already in use',
    teardown: (c) => new Promise<void>((resolve) => (c.state.server as net.Server).close(() => resolve())),
  },
  {
    name: 'unknown user',
    args: (c) => ['-s', c.sock, '-u', 'sfts-no-such-user', '--', c.app],
    message: () => "can't find user name sfts-no-such-user",
  },
  {
    name: 'unknown group',
    args: (c) => ['-s', c.sock, '-u', 'nobody', '-g', 'sfts-no-such-group', '--', c.app],
    message: () => "can't find group name sfts-no-such-group",
  },
  {
    name: '-u root',
    args: (c) => ['-s', c.sock, '-u', 'root', '--', c.app],
    message: () => 'I will not set uid to 0',
  },
  {
    name: '-g root',
    args: (c) => ['-s', c.sock, '-u', 'nobody', '-g', 'root', '--', c.app],
    message: () => 'I will not set gid to 0',
  },
  {
    name: 'missing chroot directory',
    args: (c) => ['-c', join(c.dir, 'no-such-root'), '-s', '/sock', '--', '/bin/app'],
    // spawn-fcgi: chroot('%s') failed: %s. The message must name the chroot, not blame the app.
    message: (c) => new RegExp(`chroot.*'${escapeRegExp(join(c.dir, 'no-such-root'))}'`),
  },
  {
    name: 'missing -d directory',
    args: (c) => ['-s', c.sock, '-d', join(c.dir, 'no-such-dir'), '--', c.app],
    message: (c) => `could not start: chdir('${join(c.dir, 'no-such-dir')}') failed: No such file or directory`,
  },
  {
    name: 'PID file path is a directory',
    setup: (c) => mkdirSync(join(c.dir, 'pid.d')),
    args: (c) => ['-s', c.sock, '-P', join(c.dir, 'pid.d'), '--', c.app],
    message: (c) => `PID-file exists and isn't regular file: '${join(c.dir, 'pid.d')}'`,
  },
  {
    name: 'the PID file of a running instance survives a failed second start',
    setup: async (c) => {
      c.state.pool = await startPool(['-s', c.sock, '-P', join(c.dir, 'pool.pid'), '--', c.app]);
      const pid = (c.state.pool as RunningPool).pid;
      await waitFor(
        () => {
          try {
            return readFileSync(join(c.dir, 'pool.pid'), 'utf8').trim() === String(pid);
          } catch {
            return false;
          }
        },
        { what: "the first pool's PID file" },
      );
    },
    args: (c) => ['-s', c.sock, '-P', join(c.dir, 'pool.pid'), '--', c.app],
    message: () => "socket is already in use, can't spawn",
    check: (c) => {
      assert.equal(readFileSync(join(c.dir, 'pool.pid'), 'utf8').trim(), String((c.state.pool as RunningPool).pid));
      assert.equal((c.state.pool as RunningPool).exitStatus(), undefined);
    },
    teardown: async (c) => {
      await (c.state.pool as RunningPool).stop();
    },
  },
  {
    name: 'app not found on PATH',
    args: (c) => ['-s', c.sock, '--', 'sfts-no-such-app'],
    message: () => "can't find FastCGI application 'sfts-no-such-app' on PATH",
  },
  {
    name: 'app path does not exist',
    args: (c) => ['-s', c.sock, '--', join(c.dir, 'missing-app')],
    message: (c) => `FastCGI application '${join(c.dir, 'missing-app')}' not found: ${join(c.dir, 'missing-app')} does not exist`,
  },
  {
    name: 'app not executable',
    setup: (c) => writeFileSync(join(c.dir, 'plain.txt'), '#!/bin/sh\nexit 0\n', { mode: 0o644 }),
    args: (c) => ['-s', c.sock, '--', join(c.dir, 'plain.txt')],
    message: (c) => `FastCGI application '${join(c.dir, 'plain.txt')}' is not executable`,
  },
  {
    name: 'app that exits at once',
    args: (c) => ['-s', c.sock, '--', '/bin/sh', '-c', `exit 3 # ${c.dir}`],
    message: () => 'child exited with: 3',
    code: 3,
  },
];

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function stderrLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((l) => l !== '');
}

let caseNumber = 0;
for (const mode of ['daemon', 'foreground'] as const) {
  // Cases are independent (own directory, own port): three at a time keeps the file well under a minute.
  describe(`bad input (${mode === 'daemon' ? 'daemon mode, as spawn-fcgi' : '-n'})`, { concurrency: 3 }, () => {
    for (const item of cases.filter((c) => mode === 'daemon' || !c.parseOnly)) {
      test(item.name, async (t) => {
        const dir = join(root, `case${++caseNumber}`);
        mkdirSync(dir, { mode: 0o755 });
        const ctx: Ctx = { dir, sock: join(dir, 'sock'), app: join(dir, 'app'), state: {} };
        copyFileSync(RESPONDER, ctx.app);
        chmodSync(ctx.app, 0o755);
        let running: number[] = [];
        try {
          await item.setup?.(ctx);
          const args = item.args(ctx);
          const before = snapshot(dir);
          running = processesMentioning(dir);

          // A bad input that is not refused would serve until killed: do not wait for that long.
          const result = await runCli(mode === 'daemon' ? args : ['-n', ...args], { timeoutMs: 60_000 });
          t.diagnostic(`exit ${result.code}; stderr: ${stderrLines(result).join(' | ')}`);

          const expected = item.message(ctx);
          const lines = stderrLines(result);
          if (typeof expected === 'string') {
            assert.ok(lines.includes(PREFIX + expected), `stderr has no line '${PREFIX}${expected}':\n${result.stderr}`);
          } else {
            assert.ok(
              lines.some((l) => l.startsWith(PREFIX) && expected.test(l.slice(PREFIX.length))),
              `stderr has no line matching ${expected}:\n${result.stderr}`,
            );
          }
          assert.equal(result.code, item.code ?? 255, `exit status\n${result.stderr}`);
          assert.equal(result.signal, null);
          assert.equal(result.stdout, '', 'nothing on stdout: no child was announced');

          // A daemon may still be on its way out when the command returns: give it a moment.
          const leftover = () => processesMentioning(dir).filter((p) => !running.includes(p));
          await waitFor(() => leftover().length === 0, { timeoutMs: 30_000 }).catch(() => undefined);
          assert.deepEqual(leftover(), [], 'processes left running');
          assert.deepEqual(snapshot(dir), before, 'the socket path and the files next to it are untouched');
          await item.check?.(ctx, result);
        } finally {
          await item.teardown?.(ctx);
          // A start that wrongly succeeded in daemon mode leaves a supervisor we never got the pid of:
          // find it by the case's unique directory and hand it to the clean-up.
          for (const pid of processesMentioning(dir)) {
            if (running.includes(pid)) continue;
            track(pid);
            signalIfAlive(pid, 'SIGTERM');
          }
        }
      });
    }
  });
}

describe('command line, help and version', () => {
  test('an unknown option -x: one line, the --help hint, non-zero, nothing started', async (t) => {
    const dir = join(root, 'bad-option');
    mkdirSync(dir);
    const result = await runCli(['-x', '-s', join(dir, 'sock'), '--', RESPONDER]);
    t.diagnostic(`exit ${result.code}; stderr: ${JSON.stringify(result.stderr)}`);
    assert.notEqual(result.code, 0);
    const lines = stderrLines(result);
    assert.equal(lines.length, 2, result.stderr);
    assert.match(lines[0]!, /^spawn-fcgi-ts: .*\bx\b/);
    assert.equal(lines[1], "Try 'spawn-fcgi-ts --help' for more information.");
    assert.equal(result.stdout, '');
    assert.deepEqual(readdirSync(dir), []);
  });

  test('-v: the version on stdout, exit 0', async () => {
    const result = await runCli(['-v']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^spawn-fcgi-ts v\d+\.\d+\.\d+\S* \(ipv6\) - spawns FastCGI processes\n$/);
    assert.equal(result.stderr, '');
  });

  test('-h: the help on stdout, exit 0', async () => {
    const result = await runCli(['-h']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^Usage: spawn-fcgi-ts /);
    for (const flag of ['-f', '-d', '-a', '-p', '-s', '-M', '-C', '-F', '-b', '-P', '-n', '-v', '-c', '-S', '-u', '-g', '-U', '-G']) {
      assert.match(result.stdout, new RegExp(`^ ${flag} `, 'm'), `help does not describe ${flag}`);
    }
    assert.equal(result.stderr, '');
  });
});
