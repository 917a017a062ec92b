/**
 * scripts/spawn-php.sh, for real: under dash (`sh`) and bash, with a config file, a real php-cgi pool
 * started through spawn-fcgi-ts, requests through cgi-fcgi, and the pool stopped through its PID file.
 * What matters: the environment is cleaned down to ALLOWED_ENV (+ the two php-cgi settings), values
 * with blanks arrive intact (the original script broke them), and the flags reach the binary.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';

import { cgiFcgi, CLI, poolChildren, ROOT, runCli, startPool, track, untrack } from '../helpers/pool.js';
import { childrenOf, freePort, isAlive, isGone, removePath, tmpDir, waitFor } from '../helpers/proc.js';

const SCRIPT = join(ROOT, 'scripts/spawn-php.sh');
const PHP_CGI = '/usr/bin/php-cgi';
const SPACED = `two  words, "quotes" 'single' $HOME \`id\` * end`;
/** PATH for the script: node and the system, nothing else (no globally installed spawn-fcgi-ts from elsewhere). */
const TEST_PATH = `${dirname(process.execPath)}:/usr/bin:/bin`;

const dir = tmpDir('sfts-spawnphp');

// The supervisors are track()ed (pool.ts stops them and their children when the file ends) and untrack()ed
// once a test has seen them exit.
after(() => removePath(dir));

// ---------------------------------------------------------------- helpers

function environOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** The exact argv of a process (the shared `cmdline` joins it with spaces, which would hide how it was split). */
const argvOf = (pid: number): string[] => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);

function run(command: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env, cwd: dir, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr });
    });
  });
}

/**
 * One request through the real cgi-fcgi client (the shared `cgiFcgi`); returns the body. cgi-fcgi sends its
 * own environment as the request's params, and PHP's getenv() looks there first: so it gets no PATH (an
 * undefined value leaves the variable out of the environment), only CGI variables.
 */
async function phpRequest(connect: string, script: string, query = ''): Promise<string> {
  const noPath = { PATH: undefined } as unknown as Record<string, string>;
  const { code, stdout, stderr } = await cgiFcgi(connect, {
    ...noPath,
    SCRIPT_FILENAME: script,
    REQUEST_METHOD: 'GET',
    QUERY_STRING: query,
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
  });
  assert.equal(code, 0, `cgi-fcgi failed: ${stderr}`);
  const split = stdout.indexOf('\r\n\r\n');
  assert.ok(split >= 0, `no CGI header in ${JSON.stringify(stdout)}`);
  return stdout.slice(split + 4);
}

const ENV_SCRIPT = join(dir, 'env.php');
writeFileSync(
  ENV_SCRIPT,
  `<?php
header('Content-Type: application/json');
$out = [];
foreach (['SPACED_VALUE', 'NOT_ALLOWED', 'PHP_FCGI_MAX_REQUESTS', 'PHP_FCGI_CHILDREN', 'FCGI_WEB_SERVER_ADDRS', 'PATH'] as $n) { $out[$n] = getenv($n); }
$out['pid'] = getmypid();
echo json_encode($out);
`,
);

interface Started {
  pid: number;
  socket: string;
  pidFile: string;
  stdout: string;
}

/** Writes a config, runs `<shell> spawn-php.sh CONF` with a caller environment, returns the running pool. */
async function startWith(shell: string, name: string, extraConfig: string, callerEnv: Record<string, string> = {}): Promise<Started> {
  const socket = join(dir, `${name}.sock`);
  const pidFile = join(dir, `${name}.pid`);
  const config = join(dir, `${name}.conf`);
  writeFileSync(
    config,
    [
      '# spawn-php.sh settings for the test',
      `FCGISOCKET="${socket}"`,
      'PHP_FCGI_CHILDREN=2',
      'PHP_FCGI_MAX_REQUESTS=123',
      'ALLOWED_ENV="PATH SPACED_VALUE"',
      `FCGIPIDFILE="${pidFile}"`,
      extraConfig,
      '',
    ].join('\n'),
  );
  const env = { PATH: TEST_PATH, SPACED_VALUE: SPACED, NOT_ALLOWED: 'secret-value', PHP_FCGI_MAX_REQUESTS: '999', ...callerEnv };
  const result = await run(shell, [SCRIPT, config], env);
  assert.equal(result.code, 0, `${shell} spawn-php.sh failed (${result.code}): ${result.stderr}`);
  assert.ok(existsSync(pidFile), 'the daemon wrote no PID file');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  track(pid);
  assert.ok(isAlive(pid), `supervisor ${pid} is not running`);
  return { pid, socket, pidFile, stdout: result.stdout };
}

async function stopThroughPidFile(pool: Started): Promise<void> {
  const pid = Number(readFileSync(pool.pidFile, 'utf8').trim());
  assert.equal(pid, pool.pid);
  const kids = poolChildren(pid);
  const grandKids = kids.flatMap(childrenOf);
  process.kill(pid, 'SIGTERM');
  await waitFor(() => isGone(pid), { what: `supervisor ${pid} to exit` });
  await waitFor(() => [...kids, ...grandKids].every(isGone), { what: 'the php-cgi processes to exit' });
  untrack(pid);
  assert.equal(existsSync(pool.socket), false, 'socket file left behind');
  assert.equal(existsSync(pool.pidFile), false, 'PID file left behind');
}

async function checkPool(pool: Started, expectedFcgiWebServerAddrs: string | false = false): Promise<void> {
  // The supervisor: spawn-fcgi-ts's bundle, with the flags built from the config.
  const cmdline = argvOf(pool.pid);
  assert.ok(cmdline.includes(CLI), `supervisor command line: ${cmdline.join(' ')}`);
  const at = (flag: string) => cmdline[cmdline.indexOf(flag) + 1];
  assert.equal(at('-s'), pool.socket);
  assert.equal(at('-C'), '2');
  assert.equal(at('-P'), pool.pidFile);
  assert.deepEqual(cmdline.slice(cmdline.indexOf('--') + 1), [PHP_CGI]);

  // One php-cgi master (-F 1) that forked PHP_FCGI_CHILDREN=2 workers.
  const masters = poolChildren(pool.pid);
  assert.equal(masters.length, 1, `children of the supervisor: ${masters.join(' ')}`);
  assert.equal(pool.stdout, `spawn-fcgi-ts: child spawned successfully: PID: ${masters[0]}\n`);
  await waitFor(() => childrenOf(masters[0]!).length === 2, { what: '2 php-cgi workers' });

  // The master's whole environment: the allowed names, the php-cgi settings, nothing else.
  const env = environOf(masters[0]!);
  const expectedNames = ['PATH', 'PHP_FCGI_CHILDREN', 'PHP_FCGI_MAX_REQUESTS', 'SPACED_VALUE'];
  if (expectedFcgiWebServerAddrs !== false) expectedNames.push('FCGI_WEB_SERVER_ADDRS');
  assert.deepEqual(Object.keys(env).sort(), expectedNames.sort());
  assert.equal(env.SPACED_VALUE, SPACED);

  // What PHP sees through a real request.
  const body = JSON.parse(await phpRequest(pool.socket, ENV_SCRIPT)) as Record<string, unknown>;
  assert.equal(body.SPACED_VALUE, SPACED, 'the value with blanks did not arrive intact');
  assert.equal(body.NOT_ALLOWED, false, 'a variable outside ALLOWED_ENV reached PHP');
  assert.equal(body.PHP_FCGI_MAX_REQUESTS, '123', 'the config file value must win over the caller');
  assert.equal(body.PHP_FCGI_CHILDREN, '2');
  assert.equal(body.PATH, TEST_PATH);
  assert.equal(body.FCGI_WEB_SERVER_ADDRS, expectedFcgiWebServerAddrs);
  assert.ok(childrenOf(masters[0]!).includes(body.pid as number), `answered by ${String(body.pid)}, not a worker of the pool`);
}

// ---------------------------------------------------------------- tests

describe('spawn-php.sh', { timeout: 50_000 }, () => {
  test('under dash (sh): a php-cgi pool with a clean environment', async () => {
    const pool = await startWith('sh', 'dash', '');
    try {
      await checkPool(pool);
    } finally {
      await stopThroughPidFile(pool);
    }
  });

  test('under bash, with SPAWNFCGI and FCGI_WEB_SERVER_ADDRS set in the config', async () => {
    const pool = await startWith('bash', 'bash', `SPAWNFCGI="${CLI}"\nFCGI_WEB_SERVER_ADDRS=127.0.0.1\nexport PHP_FCGI_MAX_REQUESTS FCGI_WEB_SERVER_ADDRS`);
    try {
      await checkPool(pool, '127.0.0.1');
    } finally {
      await stopThroughPidFile(pool);
    }
  });

  test('-n: foreground over TCP, FCGIPROGRAM with arguments, settings from the environment only', async () => {
    const port = await freePort();
    const pidFile = join(dir, 'fg.pid');
    const env = {
      PATH: TEST_PATH,
      FCGIPORT: String(port),
      FCGIADDR: '127.0.0.1',
      FCGIPROGRAM: 'php-cgi -d error_reporting=0', // found on PATH, split on blanks
      FCGIPIDFILE: pidFile,
      FCGIPROCS: '2',
      PHP_FCGI_CHILDREN: '',
      ALLOWED_ENV: '',
      KILL_TIMEOUT: '2s',
      NOT_ALLOWED: 'x',
    };
    const child: ChildProcess = spawn('sh', [SCRIPT, '-n'], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(() => existsSync(pidFile), { what: `the PID file (stderr: ${stderr})` });
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      track(pid);
      assert.equal(pid, child.pid, 'with -n the script execs the supervisor in place');
      const cmdline = argvOf(pid);
      assert.deepEqual(cmdline.slice(cmdline.indexOf('--') + 1), [PHP_CGI, '-d', 'error_reporting=0']);
      for (const [flag, value] of [
        ['-p', String(port)],
        ['-a', '127.0.0.1'],
        ['-F', '2'],
        ['-C', '5'],
        ['--kill-timeout', '2s'],
      ]) {
        assert.equal(cmdline[cmdline.indexOf(flag!) + 1], value, `${flag} in ${cmdline.join(' ')}`);
      }
      assert.ok(cmdline.includes('-n'));
      const masters = poolChildren(pid);
      assert.equal(masters.length, 2);
      // PHP_FCGI_CHILDREN empty: the original's fallback of 5; ALLOWED_ENV empty: only the php-cgi settings.
      assert.deepEqual(Object.keys(environOf(masters[0]!)).sort(), ['PHP_FCGI_CHILDREN']);
      assert.equal(environOf(masters[0]!).PHP_FCGI_CHILDREN, '5');
      const body = JSON.parse(await phpRequest(`127.0.0.1:${port}`, ENV_SCRIPT)) as Record<string, unknown>;
      assert.equal(body.NOT_ALLOWED, false);
      assert.equal(body.PATH, false);
      process.kill(pid, 'SIGTERM');
      assert.equal(await exited, 0);
      untrack(pid);
      await waitFor(() => masters.every(isGone), { what: 'the php-cgi processes to exit' });
      assert.equal(existsSync(pidFile), false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  test('refuses a config with both a socket and a port, and an unknown option', async () => {
    const config = join(dir, 'both.conf');
    writeFileSync(config, `FCGISOCKET=${join(dir, 'both.sock')}\nFCGIPORT=9\n`);
    const both = await run('sh', [SCRIPT, config], { PATH: TEST_PATH });
    assert.equal(both.code, 1);
    assert.match(both.stderr, /spawn-php\.sh: FCGISOCKET and FCGIPORT are both set/);
    assert.equal(existsSync(join(dir, 'both.sock')), false);
    const missing = await run('sh', [SCRIPT, join(dir, 'missing.conf')], { PATH: TEST_PATH });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read config file/);
    const unknown = await run('bash', [SCRIPT, '-x'], { PATH: TEST_PATH });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^usage: spawn-php\.sh \[-n\] \[CONFIG\]/);
  });

  test("a start that fails is reported with the binary's status", async () => {
    const config = join(dir, 'bad.conf');
    writeFileSync(config, `FCGISOCKET=${join(dir, 'bad.sock')}\nFCGIPROGRAM=/nonexistent/php-cgi\n`);
    const result = await run('sh', [SCRIPT, config], { PATH: TEST_PATH });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /spawn-fcgi-ts: .*\/nonexistent\/php-cgi/);
  });

  test('a config file as people have it (export PHPRC, TMPDIR, a helper $BASE): php-cgi sees PHPRC, through spawn-php.sh and through --config', async () => {
    const base = join(dir, 'phprc');
    mkdirSync(join(base, 'etc'), { recursive: true });
    writeFileSync(join(base, 'etc', 'php.ini'), 'precision = 7\n');
    const script = join(dir, 'phprc.php');
    writeFileSync(
      script,
      "<?php\nheader('Content-Type: text/plain');\necho 'PHPRC=', getenv('PHPRC', true), ' TMPDIR=', var_export(getenv('TMPDIR', true), true), ' precision=', ini_get('precision');\n",
    );
    const settings = (socket: string) =>
      [
        `FCGISOCKET="${socket}"`,
        `BASE="${base}"`,
        'export PHPRC="$BASE/etc"',
        'TMPDIR=/var/tmp/php',
        'PHP_FCGI_CHILDREN=0',
        'ALLOWED_ENV="PATH PHPRC"',
        '',
      ].join('\n');

    // spawn-php.sh sources the file: the exported PHPRC is in ALLOWED_ENV, TMPDIR is not.
    const viaScript = join(dir, 'phprc-script.sock');
    const pidFile = join(dir, 'phprc-script.pid');
    const scriptConfig = join(dir, 'phprc-script.conf');
    writeFileSync(scriptConfig, `${settings(viaScript)}FCGIPIDFILE="${pidFile}"\n`);
    const started = await run('sh', [SCRIPT, scriptConfig], { PATH: TEST_PATH });
    assert.equal(started.code, 0, started.stderr);
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    track(pid);
    try {
      assert.equal(await phpRequest(viaScript, script), `PHPRC=${base}/etc TMPDIR=false precision=7`);
    } finally {
      process.kill(pid, 'SIGTERM');
      await waitFor(() => isGone(pid), { what: 'the spawn-php.sh pool to stop' });
      untrack(pid);
    }

    // The same file through --config: the same meaning, and a warning about TMPDIR, which nothing uses.
    const viaConfig = join(dir, 'phprc-config.sock');
    const config = join(dir, 'phprc-config.conf');
    writeFileSync(config, `${settings(viaConfig)}FCGIPROGRAM=${PHP_CGI}\n`);
    const pool = await startPool(['--config', config], { target: { path: viaConfig }, env: { PATH: TEST_PATH } });
    try {
      assert.equal(await phpRequest(viaConfig, script), `PHPRC=${base}/etc TMPDIR=false precision=7`);
      assert.match(
        pool.stderr(),
        /^spawn-fcgi-ts: WARNING: .*phprc-config\.conf:4: TMPDIR is set but not used: ALLOWED_ENV does not name it and no later line uses \$TMPDIR$/m,
      );
    } finally {
      await pool.stop();
    }
  });

  test('--config refuses what would exhaust memory or block: $V$V doubling, a 50 MB value, a FIFO', async () => {
    const doubling = join(dir, 'doubling.conf');
    writeFileSync(doubling, `FCGISOCKET=${join(dir, 'd.sock')}\nFCGIPROGRAM=${PHP_CGI}\nV=xxxxxxxxxxxxxxxx\n${'V=$V$V\n'.repeat(40)}`);
    const big = join(dir, 'big.conf');
    writeFileSync(big, `FCGISOCKET=${join(dir, 'b.sock')}\nFCGIPROGRAM=${PHP_CGI}\nFCGI_WEB_SERVER_ADDRS=${'127.0.0.1,'.repeat(5_000_000)}\n`);
    const fifo = join(dir, 'fifo.conf');
    execFileSync('mkfifo', [fifo]);
    for (const [file, message] of [
      [
        doubling,
        `spawn-fcgi-ts: ${doubling}:16: the value of this variable is longer than 130816 bytes (the kernel refuses longer arguments and environment strings)\n`,
      ],
      [big, `spawn-fcgi-ts: config file '${big}' is larger than 1048576 bytes: refused\n`],
      [fifo, `spawn-fcgi-ts: reading config file '${fifo}' failed: not a regular file\n`],
    ]) {
      const result = await runCli(['-n', '--config', file!]);
      assert.equal(result.code, 255, result.stderr);
      assert.equal(result.stderr, message);
    }
  });
});
