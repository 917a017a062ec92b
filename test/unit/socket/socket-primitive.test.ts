import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import { createServerHandle } from '../../../src/socket/socket.js';

// net._createServerHandle is undocumented: if a Node release changes it, this fails loudly.
test('net._createServerHandle binds without listening and exposes the fd', async () => {
  const path = `/tmp/sfts-primitive-${process.pid}.sock`;
  rmSync(path, { force: true });
  const handle = createServerHandle(path, -1, -1);
  assert.equal(typeof handle, 'object');
  const { fd } = handle as { fd: number };
  assert.ok(Number.isInteger(fd) && fd > 2, `fd ${fd}`);
  // Bound but not listening: a connect is refused, so the supervisor cannot have accepted anything.
  const error = await new Promise<NodeJS.ErrnoException>((resolve) => net.connect({ path }).once('error', resolve));
  assert.equal(error.code, 'ECONNREFUSED');
  (handle as { close(): void }).close();
  rmSync(path, { force: true });
  assert.equal(typeof createServerHandle('127.0.0.1', 0, 4), 'object');
});

test('a bind error comes back as a negative errno', () => {
  const result = createServerHandle('/nonexistent-dir/x.sock', -1, -1);
  assert.equal(typeof result, 'number');
  assert.ok((result as number) < 0);
});
