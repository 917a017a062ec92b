/**
 * The launcher never throws and never leaves a child without an end: a spawn that fails comes back as
 * pid -1 with 'spawn failed: CODE (why)', whether Node reported it with an 'error' event and no 'exit'
 * (ENOENT) or threw at once (E2BIG).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { nativeBinaryPath } from '../../../src/child/helper-binary.js';
import { launch, type LaunchSpec } from '../../../src/child/launcher.js';

function spec(env: Record<string, string>, fd: number, helper = nativeBinaryPath('spawn-fcgi-ts-helper')): LaunchSpec {
  return { appPath: '/bin/true', appArgs: [], socketFd: fd, backlog: 16, env, credentials: {}, rlimits: [], helper };
}

test('helper missing (an error event without exit): pid -1, exec says ENOENT, exited settles', async () => {
  const fd = openSync('/dev/null', 'r');
  try {
    const child = launch(spec({}, fd, '/nonexistent/spawn-fcgi-ts-helper'), () => undefined);
    assert.equal(child.pid, -1);
    assert.deepEqual(await child.exec, { ok: false, reason: 'spawn failed: ENOENT (the native helper is missing)' });
    assert.deepEqual(await child.exited, { code: null, signal: null });
    child.signal('SIGTERM'); // a no-op, not a throw
  } finally {
    closeSync(fd);
  }
});

test('an environment too large for exec (a synchronous throw): pid -1, exec says E2BIG', async () => {
  const fd = openSync('/dev/null', 'r');
  try {
    const child = launch(spec({ X: 'a'.repeat(200_000) }, fd), () => undefined);
    assert.equal(child.pid, -1);
    const outcome = await child.exec;
    assert.equal(outcome.ok, false);
    assert.match(!outcome.ok ? outcome.reason : '', /^spawn failed: E2BIG/);
    assert.deepEqual(await child.exited, { code: null, signal: null });
  } finally {
    closeSync(fd);
  }
});
