/**
 * The drop-in spawner behind a real web server: nginx `fastcgi_pass` to a php-cgi pool on a unix
 * socket, on 127.0.0.1 and on [::1]. GET and POST bodies go through nginx and come back from a pool child.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startNginx, httpRequest } from '../helpers/nginx.js';
import { PHP_FIXTURES, requireBuild, startPool, type RunningPool } from '../helpers/pool.js';
import { freePort, removePath, tmpDir } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-web');
});
after(() => removePath(dir));

async function checkThroughNginx(pool: RunningPool, fastcgiPass: string): Promise<string> {
  const nginx = await startNginx({ fastcgiPass, docroot: PHP_FIXTURES });
  try {
    const children = pool.childPids();
    const seen = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const answer = await httpRequest(`${nginx.baseUrl}/pid.php`);
      assert.equal(answer.status, 200, `GET /pid.php: ${answer.status} ${answer.body}\n${nginx.errorLog()}`);
      assert.match(String(answer.headers['content-type']), /^text\/plain/);
      const pid = Number(/^pid=(\d+)\n$/.exec(answer.body)?.[1]);
      assert.ok(children.includes(pid), `answered by ${pid}; the pool's children are ${children.join(',')}`);
      assert.notEqual(pid, pool.pid);
      seen.add(pid);
    }

    const get = await httpRequest(`${nginx.baseUrl}/echo.php?x=1&y=%C3%A9`);
    assert.equal(get.status, 200);
    assert.equal(get.headers['x-fixture'], 'echo');
    assert.equal(get.body, 'method=GET\nquery=x=1&y=%C3%A9\nbody=\n');

    const payload = `name=spawn-fcgi-ts&data=${'z'.repeat(100_000)}`;
    const post = await httpRequest(`${nginx.baseUrl}/echo.php?p=1`, {
      method: 'POST',
      body: payload,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(post.status, 200, `POST: ${post.status} ${nginx.errorLog()}`);
    assert.equal(post.body, `method=POST\nquery=p=1\nbody=${payload}\n`);

    const missing = await httpRequest(`${nginx.baseUrl}/no-such-script.php`);
    assert.equal(missing.status, 404, 'php-cgi answers 404 for a missing script, through the pool');
    return `children ${children.join(',')}, answered by ${[...seen].join(',')}`;
  } finally {
    await nginx.stop();
  }
}

describe('nginx fastcgi_pass to a php-cgi pool', () => {
  test('unix socket', async (t) => {
    const sock = join(dir, 'php.sock');
    const pool = await startPool(['-s', sock, '-F', '2', '-M', '0600', '--', 'php-cgi']);
    t.diagnostic(await checkThroughNginx(pool, `unix:${sock}`));
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test('TCP 127.0.0.1', async (t) => {
    const port = await freePort('127.0.0.1');
    const pool = await startPool(['-a', '127.0.0.1', '-p', String(port), '-F', '2', '--', 'php-cgi']);
    t.diagnostic(await checkThroughNginx(pool, `127.0.0.1:${port}`));
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });

  test('TCP [::1]', async (t) => {
    const port = await freePort('::1');
    const pool = await startPool(['-a', '::1', '-p', String(port), '-F', '2', '--', 'php-cgi']);
    t.diagnostic(await checkThroughNginx(pool, `[::1]:${port}`));
    assert.deepEqual(await pool.stop(), { code: 0, signal: null });
  });
});
