import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { RESPONDER, requireBuild, startPool } from '../helpers/pool.js';
import { fdCount, freePort, removePath, tmpDir, waitFor } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-observe-probes');
});
after(() => removePath(dir));

interface Curl {
  code: number;
  stdout: string;
  stderr: string;
}

/** curl -fsS as a probe or ExecStartPost runs it; `unixSocket` for the control socket. */
function curl(url: string, unixSocket?: string): Promise<Curl> {
  const args = ['-fsS', '--max-time', '10', ...(unixSocket === undefined ? [] : ['--unix-socket', unixSocket]), url];
  return new Promise((resolve) => {
    execFile('curl', args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number((error as NodeJS.ErrnoException & { code: unknown }).code), stdout, stderr });
    });
  });
}

test('/healthz and /readyz answer curl -fsS over TCP and on the control socket; a crash-looping slot makes readyz 503', async () => {
  const broken = join(dir, 'broken');
  const flaky = join(dir, 'flaky.sh');
  writeFileSync(flaky, `#!/bin/sh\n[ -e '${broken}' ] && exit 1\nexec '${RESPONDER}'\n`, { mode: 0o755 });
  const socket = join(dir, 'probe.sock');
  const control = `${socket}.control`;
  const port = await freePort();
  const pool = await startPool(['-s', socket, '-F', '2', '--metrics', `127.0.0.1:${port}`, '--', flaky]);
  const tcp = (path: string) => curl(`http://127.0.0.1:${port}${path}`);
  const unix = (path: string) => curl(`http://localhost${path}`, control);

  for (const ask of [tcp, unix]) {
    assert.deepEqual(await ask('/healthz'), { code: 0, stdout: 'ok: supervising\n', stderr: '' });
    assert.deepEqual(await ask('/readyz'), { code: 0, stdout: 'ready: 2 of 2 children running\n', stderr: '' });
  }

  writeFileSync(broken, '');
  process.kill(pool.childPids()[1]!, 'SIGKILL');
  const notReady = await waitFor(
    async () => {
      const r = await tcp('/readyz');
      return r.code !== 0 ? r : undefined;
    },
    { timeoutMs: 15_000, what: 'readyz to fail' },
  );
  assert.equal(notReady.code, 22, 'curl -f: HTTP error');
  assert.match(notReady.stderr, /error: 503/);
  const body = await new Promise<string>((resolve) =>
    execFile('curl', ['-sS', '--unix-socket', control, 'http://localhost/readyz'], { encoding: 'utf8' }, (_e, out) => resolve(out)),
  );
  assert.match(body, /^not ready: 1 of 2 children running, slot 1 (backing off|starting)( \(exit code 1\))?\n$/);
  assert.equal((await tcp('/healthz')).code, 0, 'the supervisor is still alive and supervising');

  // Healthy again once the slot's app starts: readyz recovers by itself.
  removePath(broken);
  await waitFor(async () => (await unix('/readyz')).code === 0, { timeoutMs: 60_000, what: 'readyz to recover' });
  await pool.stop();
});

test('/healthz is 503 while the supervisor is stopping', async () => {
  const stubborn = join(dir, 'stubborn.sh');
  writeFileSync(stubborn, `#!/bin/sh\ntrap '' TERM\nexec '${RESPONDER}'\n`, { mode: 0o755 });
  const socket = join(dir, 'stopping.sock');
  const pool = await startPool(['-s', socket, '--kill-timeout', '60s', '--', stubborn]);
  assert.equal((await curl('http://localhost/healthz', `${socket}.control`)).code, 0);
  process.kill(pool.pid, 'SIGTERM');
  const answer = await waitFor(
    async () => {
      const r = await curl('http://localhost/healthz', `${socket}.control`);
      return r.code !== 0 ? r : undefined;
    },
    { what: 'healthz to fail while stopping' },
  );
  assert.match(answer.stderr, /error: 503/);
  await pool.stop('SIGTERM'); // a second SIGTERM kills the children now
});

test('details stay off the metrics listener unless --status-page; a unix metrics socket is 0600 whatever the umask', async () => {
  const port = await freePort();
  const socket = join(dir, 'page.sock');
  const metricsSocket = join(dir, 'metrics.sock');
  const open = await startPool(['-s', socket, '--metrics', `127.0.0.1:${port}`, '--status-page', '--', RESPONDER]);
  const status = await curl(`http://127.0.0.1:${port}/status`);
  assert.equal(status.code, 0);
  assert.equal((JSON.parse(status.stdout) as { supervisorPid: number }).supervisorPid, open.pid);
  assert.match((await curl(`http://127.0.0.1:${port}/`)).stdout, /^<!DOCTYPE html>/);
  await open.stop();

  const closed = await startPool(['-s', socket, '--metrics', metricsSocket, '--', RESPONDER], { umask: '000' });
  assert.equal(statSync(metricsSocket).mode & 0o777, 0o600);
  assert.equal(statSync(`${socket}.control`).mode & 0o777, 0o600);
  assert.equal((await curl('http://localhost/status', metricsSocket)).code, 22);
  assert.equal((await curl('http://localhost/metrics', metricsSocket)).code, 0);
  const control = await curl('http://localhost/status', `${socket}.control`);
  assert.equal(control.code, 0, 'the control socket always serves the details');
  await closed.stop();
});

test('many idle connections to the metrics and control listeners: capped, timed out, and the pool still restarts a child', async () => {
  const port = await freePort();
  const socket = join(dir, 'idle.sock');
  const pool = await startPool(['-s', socket, '-F', '2', '--metrics', `127.0.0.1:${port}`, '--', RESPONDER]);
  const before = fdCount(pool.pid);
  const idle: Socket[] = [];
  let closed = 0;
  const open = (options: { port: number; host: string } | { path: string }) => {
    const s = connect(options as never);
    s.on('error', () => undefined);
    s.on('close', () => {
      closed++;
    });
    idle.push(s);
  };
  for (let i = 0; i < 300; i++) open({ host: '127.0.0.1', port });
  for (let i = 0; i < 300; i++) open({ path: `${socket}.control` });
  // Beyond the cap, connections are closed at once: the supervisor never holds more than 2 x 32 of them.
  await waitFor(() => closed >= 600 - 2 * 32, { timeoutMs: 30_000, what: 'connections over the cap to be closed' });
  const during = fdCount(pool.pid);
  assert.ok(during <= before + 2 * 32 + 4, `supervisor fds: ${before} before, ${during} with 600 idle connections`);

  const victim = pool.childPids()[0]!;
  process.kill(victim, 'SIGKILL');
  await waitFor(() => pool.childPids().length === 2 && !pool.childPids().includes(victim), { timeoutMs: 15_000, what: 'the killed child to be replaced' });

  // The idle ones inside the cap are dropped after the 5 s timeout; then scrapes and probes answer again.
  await waitFor(() => closed === 600, { timeoutMs: 30_000, what: 'every idle connection to be closed by the supervisor' });
  assert.equal((await curl(`http://127.0.0.1:${port}/metrics`)).code, 0);
  assert.equal((await curl('http://localhost/readyz', `${socket}.control`)).code, 0);
  for (const s of idle) s.destroy();
  await pool.stop();
});
