/**
 * scripts/init.d/spawn-fcgi-ts, for real: start / status / reload / restart / stop / status of a pool
 * of php-cgi, driven by a defaults file under /tmp given through SPAWN_FCGI_TS_DEFAULTS, with the
 * repository's own dist/cli.cjs as DAEMON. php-cgi (not the static responder, which dies mid-request
 * on SIGTERM) because it finishes the request in hand on SIGTERM: so a rolling restart must lose none.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';

import { fcgiRequest } from '../helpers/fcgi-mini.js';
import { CLI, poolChildren, RESPONDER, ROOT, track, untrack } from '../helpers/pool.js';
import { isAlive, removePath, sleep, tmpDir, waitFor } from '../helpers/proc.js';

const INIT = join(ROOT, 'scripts/init.d/spawn-fcgi-ts');
const PHP_CGI = '/usr/bin/php-cgi';
const PATH = `${dirname(process.execPath)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

const dir = tmpDir('sfts-init');
const socket = join(dir, 'pool.sock');
const pidFile = join(dir, 'pool.pid');
const defaults = join(dir, 'spawn-fcgi-ts.default');
const PID_SCRIPT = join(dir, 'pid.php');
writeFileSync(PID_SCRIPT, '<?php echo "pid=", getmypid(), "\\n";\n');

// The supervisors are track()ed (pool.ts stops them and their children when the file ends) and untrack()ed
// once a test has seen them exit.
after(() => removePath(dir));

// ---------------------------------------------------------------- helpers

/** The exact argv of a process (the shared `cmdline` joins it with spaces). */
const argvOf = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function init(action: string, defaultsFile = defaults): Promise<Result> {
  return new Promise((resolve) => {
    execFile(INIT, [action], { env: { PATH, SPAWN_FCGI_TS_DEFAULTS: defaultsFile }, cwd: dir, timeout: 45_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr });
    });
  });
}

function readPid(file = pidFile): number {
  const pid = Number(readFileSync(file, 'utf8').trim());
  assert.ok(Number.isInteger(pid) && pid > 0, `bad PID file content: ${readFileSync(file, 'utf8')}`);
  return pid;
}

/** pid.php answers `pid=<the php-cgi pid>`. */
async function answeringPid(path = socket): Promise<number> {
  const params = {
    REQUEST_METHOD: 'GET',
    SCRIPT_FILENAME: PID_SCRIPT,
    SCRIPT_NAME: '/pid.php',
    QUERY_STRING: '',
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
  };
  const response = await fcgiRequest({ path }, params, { timeoutMs: 20_000 });
  const match = /^pid=(\d+)$/m.exec(response.stdout.toString());
  assert.ok(match, `no pid= line in ${JSON.stringify(response.stdout.toString())}`);
  return Number(match[1]);
}

/** A PID that no process has right now. */
function unusedPid(): number {
  const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  for (let pid = max - 1; pid > 1; pid--) if (!existsSync(`/proc/${pid}`)) return pid;
  throw new Error('no free PID');
}

// ---------------------------------------------------------------- tests

describe('init script (DAEMON_ARGS)', { timeout: 55_000 }, () => {
  writeFileSync(
    defaults,
    [
      '# defaults for the test',
      `DAEMON="${CLI}"`,
      `PIDFILE="${pidFile}"`,
      'STOP_TIMEOUT=20',
      `DAEMON_ARGS="-s ${socket} -F 2 -C 0 --kill-timeout 3s -- ${PHP_CGI}"`,
      '',
    ].join('\n'),
  );
  let supervisor = 0;
  let children: number[] = [];

  test('status before start: not running (3)', async () => {
    const status = await init('status');
    assert.equal(status.code, 3, status.stdout + status.stderr);
    assert.match(status.stdout, /spawn-fcgi-ts is not running/);
  });

  test('start: the pool serves, the PID file names the supervisor', async () => {
    const start = await init('start');
    assert.equal(start.code, 0, `start failed: ${start.stdout}${start.stderr}`);
    assert.match(start.stdout, /Starting FastCGI pool.*spawn-fcgi-ts/);
    supervisor = readPid();
    track(supervisor);
    assert.ok(isAlive(supervisor));
    const cmdline = argvOf(supervisor);
    assert.equal(cmdline[1], CLI);
    assert.deepEqual(cmdline.slice(2, 4), ['-P', pidFile]);
    children = poolChildren(supervisor);
    assert.equal(children.length, 2, `children: ${children.join(' ')}`);
    for (const pid of children) assert.deepEqual(argvOf(pid), [PHP_CGI]);
    // The start command returned only once the pool serves: the first request is answered.
    const answered = new Set<number>();
    for (let i = 0; i < 8; i++) answered.add(await answeringPid());
    for (const pid of answered) assert.ok(children.includes(pid), `answered by ${pid}, not by a child (${children.join(' ')})`);
  });

  test('status: running (0), with the PID', async () => {
    const status = await init('status');
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, new RegExp(`spawn-fcgi-ts is running \\(pid ${supervisor}\\)`));
  });

  test('start again: already running, nothing new', async () => {
    const again = await init('start');
    assert.equal(again.code, 0);
    assert.match(again.stdout, /already running/);
    assert.equal(readPid(), supervisor);
    assert.deepEqual(poolChildren(supervisor), children);
  });

  test('reload: a rolling restart, new children, no request lost', async () => {
    let failures = 0;
    let answered = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        try {
          await answeringPid();
          answered++;
        } catch (error) {
          failures++;
          if (failures < 5) console.error(`request during reload failed: ${(error as Error).message}`);
        }
      }
    })();
    const reload = await init('reload');
    assert.equal(reload.code, 0, reload.stdout + reload.stderr);
    assert.match(reload.stdout, /Reloading FastCGI pool/);
    const old = children;
    await waitFor(
      () => {
        const now = poolChildren(supervisor);
        return now.length === 2 && now.every((pid) => !old.includes(pid));
      },
      { timeoutMs: 30_000, what: `new children of ${supervisor} (old ${old.join(' ')})` },
    );
    await sleep(300);
    stop = true;
    await load;
    assert.equal(readPid(), supervisor, 'reload must keep the supervisor');
    children = poolChildren(supervisor);
    for (const pid of old) assert.equal(isAlive(pid), false, `old child ${pid} still running`);
    assert.equal(failures, 0, `${failures} of ${failures + answered} requests failed during the rolling restart`);
    assert.ok(answered > 0);
    assert.ok(children.includes(await answeringPid()));
  });

  test('restart, and force-reload (a restart: it must read the defaults file again): a new supervisor serving', async () => {
    for (const action of ['restart', 'force-reload']) {
      const restart = await init(action);
      assert.equal(restart.code, 0, restart.stdout + restart.stderr);
      assert.equal(isAlive(supervisor), false, `${action}: the old supervisor is still running`);
      for (const pid of children) assert.equal(isAlive(pid), false, `${action}: old child ${pid} still running`);
      untrack(supervisor);
      const next = readPid();
      track(next);
      assert.notEqual(next, supervisor);
      supervisor = next;
      children = poolChildren(supervisor);
      assert.equal(children.length, 2);
      assert.ok(children.includes(await answeringPid()));
    }
  });

  test('stop: the pool, the socket and the PID file are gone', async () => {
    const stop = await init('stop');
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    assert.match(stop.stdout, /Stopping FastCGI pool/);
    assert.equal(isAlive(supervisor), false, 'supervisor still running');
    for (const pid of children) assert.equal(isAlive(pid), false, `child ${pid} still running`);
    untrack(supervisor);
    assert.equal(existsSync(socket), false, 'socket file left behind');
    assert.equal(existsSync(pidFile), false, 'PID file left behind');
    await assert.rejects(answeringPid(), /ENOENT|ECONNREFUSED/);
  });

  test('status after stop: not running (3); stop again is fine', async () => {
    const status = await init('status');
    assert.equal(status.code, 3);
    const stop = await init('stop');
    assert.equal(stop.code, 0);
  });

  test('a stale PID file: status says dead (1), start replaces it, stop', async () => {
    const dead = unusedPid();
    writeFileSync(pidFile, `${dead}\n`);
    const status = await init('status');
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.match(status.stdout, /spawn-fcgi-ts is dead but pid file exists/);
    const reload = await init('reload');
    assert.equal(reload.code, 7);
    // A live process that is not the daemon (this test runner) does not count either.
    writeFileSync(pidFile, `${process.pid}\n`);
    assert.equal((await init('status')).code, 1);
    const start = await init('start');
    assert.equal(start.code, 0, start.stdout + start.stderr);
    const pid = readPid();
    track(pid);
    assert.notEqual(pid, process.pid);
    assert.equal(argvOf(pid)[1], CLI);
    await answeringPid();
    assert.equal((await init('stop')).code, 0);
    assert.equal(isAlive(pid), false);
    untrack(pid);
    assert.equal(isAlive(process.pid), true);
    assert.equal(existsSync(pidFile), false);
  });
});

describe('init script (spawn-php variables, errors)', { timeout: 30_000 }, () => {
  test('the variables form: a socket path with a blank, php-cgi settings in the environment', async () => {
    const spaced = join(dir, 'php pool.sock');
    const varsPid = join(dir, 'vars.pid');
    const file = join(dir, 'vars.default');
    writeFileSync(
      file,
      [
        `DAEMON=${CLI}`,
        `PIDFILE=${varsPid}`,
        'FCGIPROGRAM=/usr/bin/php-cgi',
        `FCGISOCKET="${spaced}"`,
        'PHP_FCGI_CHILDREN=0',
        'FCGIPROCS=2',
        'PHP_FCGI_MAX_REQUESTS=77',
        'ALLOWED_ENV="PATH"',
        'KILL_TIMEOUT=2',
        '',
      ].join('\n'),
    );
    const start = await init('start', file);
    assert.equal(start.code, 0, start.stdout + start.stderr);
    const pid = readPid(varsPid);
    track(pid);
    try {
      assert.ok(existsSync(spaced));
      const kids = poolChildren(pid);
      assert.equal(kids.length, 2);
      const env = Object.fromEntries(
        readFileSync(`/proc/${kids[0]}/environ`, 'utf8')
          .split('\0')
          .filter((e) => e !== '')
          .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
      );
      assert.deepEqual(Object.keys(env).sort(), ['PATH', 'PHP_FCGI_CHILDREN', 'PHP_FCGI_MAX_REQUESTS']);
      assert.equal(env.PHP_FCGI_MAX_REQUESTS, '77');
      assert.equal(env.PHP_FCGI_CHILDREN, '0');
      assert.equal((await init('status', file)).code, 0);
    } finally {
      const stop = await init('stop', file);
      assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    }
    assert.equal(isAlive(pid), false);
    untrack(pid);
    assert.equal(existsSync(spaced), false);
    assert.equal(existsSync(varsPid), false);
  });

  test('the CONFIG form: the daemon reads the spawn-php.sh file itself (--config)', async () => {
    const config = join(dir, 'php.conf');
    const configSocket = join(dir, 'config pool.sock');
    const configPid = join(dir, 'config.pid');
    const file = join(dir, 'config.default');
    writeFileSync(file, `DAEMON=${CLI}\nPIDFILE=${configPid}\nCONFIG="${config}"\n`);
    writeFileSync(config, `# pool for the test\nFCGIPROGRAM=${PHP_CGI}\nFCGISOCKET="${configSocket}"\nPHP_FCGI_CHILDREN=0\nFCGI_CHILDREN=2\nKILL_TIMEOUT=2s\n`);
    const start = await init('start', file);
    assert.equal(start.code, 0, start.stdout + start.stderr);
    const pid = readPid(configPid);
    track(pid);
    try {
      assert.deepEqual(argvOf(pid).slice(2), ['-P', configPid, '--config', config]);
      const kids = poolChildren(pid);
      assert.equal(kids.length, 2);
      assert.ok(kids.includes(await answeringPid(configSocket)));
    } finally {
      const stop = await init('stop', file);
      assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    }
    assert.equal(isAlive(pid), false);
    untrack(pid);
    assert.equal(existsSync(configSocket), false);

    // A config the daemon refuses: start fails with the file and line, nothing runs.
    writeFileSync(config, `FCGIPROGRAM=${PHP_CGI}\nFCGISOCKET="${configSocket}"\nFCGIDIR="$(pwd)"\n`);
    const refused = await init('start', file);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: command substitution is not allowed`));
    assert.equal(existsSync(configPid), false);
    assert.equal(existsSync(configSocket), false);
  });

  test('-n in DAEMON_ARGS is refused; a failing start is reported; bad action and missing defaults', async () => {
    const file = join(dir, 'bad.default');
    const badPid = join(dir, 'bad.pid');
    writeFileSync(file, `DAEMON=${CLI}\nPIDFILE=${badPid}\nDAEMON_ARGS="-n -s ${join(dir, 'n.sock')} -- ${RESPONDER}"\n`);
    const withN = await init('start', file);
    assert.equal(withN.code, 1);
    assert.match(withN.stderr, /remove -n/);
    assert.equal(existsSync(join(dir, 'n.sock')), false);

    writeFileSync(file, `DAEMON=${CLI}\nPIDFILE=${badPid}\nDAEMON_ARGS="-s ${join(dir, 'x.sock')} -- /nonexistent/app"\n`);
    const failing = await init('start', file);
    assert.notEqual(failing.code, 0);
    assert.match(failing.stderr, /\/nonexistent\/app/);
    assert.equal(existsSync(badPid), false);
    assert.equal((await init('status', file)).code, 3);

    const usage = await init('frobnicate');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /Usage: .*\{start\|stop\|restart\|reload\|force-reload\|status\}/);
    const missing = await init('status', join(dir, 'no-such.default'));
    assert.equal(missing.code, 6);
  });
});
