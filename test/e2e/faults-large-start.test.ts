/**
 * Faults, a large -F: the start launches children in batches and yields to the event loop between them,
 * so a SIGTERM during the start is handled at once: the start stops, every child started so far is
 * stopped, and the supervisor exits 0 leaving nothing behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CLI, poolChildren, RESPONDER, requireBuild, track, untrack } from '../helpers/pool.js';
import { isGone, removePath, signalIfAlive, tmpDir, waitFor } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-faults-large');
});
after(() => removePath(dir));

test('-F 1500 and SIGTERM during the start: the start stops early, every child is stopped, exit 0, socket removed', async (t) => {
  const sock = join(dir, 'large.sock');
  const supervisor = spawn(process.execPath, [CLI, '-n', '-s', sock, '-F', '1500', '--', RESPONDER], { stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = supervisor.pid!;
  track(pid);
  let log = '';
  supervisor.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    log += chunk;
  });
  const exited = new Promise<number | null>((resolve) => supervisor.once('exit', (code) => resolve(code)));
  t.after(() => {
    signalIfAlive(pid, 'SIGKILL');
    untrack(pid);
  });

  const seen = new Set<number>();
  await waitFor(
    () => {
      for (const child of poolChildren(pid)) seen.add(child);
      return seen.size >= 20;
    },
    { timeoutMs: 20_000, intervalMs: 5, what: 'the first children' },
  );
  supervisor.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    exited,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(resolve, 60_000, 'timeout');
    }),
  ]);
  clearTimeout(timer);
  for (const child of poolChildren(pid)) seen.add(child);
  t.diagnostic(`exit ${code}; ${seen.size} children seen; ${log.trim().split('\n').slice(-2).join(' | ')}`);
  assert.notEqual(code, 'timeout', `the supervisor did not stop within 60 s of SIGTERM:\n${log.slice(-2000)}`);
  assert.equal(code, 0);
  assert.match(log, /stopped during start-up/);
  assert.doesNotMatch(log, /children serving on/, 'the start did not complete');
  assert.equal(existsSync(sock), false);
  await waitFor(() => [...seen].every(isGone), { timeoutMs: 10_000, what: 'every child gone' });
});
