import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, RESPONDER, requireBuild, startPool } from '../helpers/pool.js';
import { removePath, tmpDir, waitFor } from '../helpers/proc.js';

const CHATTY = join(ROOT, 'test', 'fixtures', 'ops', 'chatty.sh');
let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-logs');
});
after(() => removePath(dir));

interface JsonLine {
  time: string;
  level: string;
  event: string;
  slot?: number;
  pid?: number;
  msg?: string;
  stream?: string;
  line?: string;
}

test('--log-format json: every stderr line is one JSON object; children output carries slot and pid', async () => {
  const pool = await startPool(['-s', join(dir, 'json.sock'), '-F', '2', '--log-format', 'json', '--', CHATTY, RESPONDER]);
  const pids = pool.childPids();
  await waitFor(() => (pool.stderr().match(/hello from stderr/g) ?? []).length === 2, { timeoutMs: 30_000, what: 'both children to speak' });
  process.kill(pids[0]!, 'SIGKILL');
  await waitFor(() => pool.stderr().includes('"event":"spawn"'), { timeoutMs: 30_000, what: 'the restart to be logged' });
  await pool.stop();
  const lines = pool
    .stderr()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as JsonLine);
  for (const line of lines) {
    assert.ok(!Number.isNaN(Date.parse(line.time)), `time in ${JSON.stringify(line)}`);
    assert.match(line.level, /^(info|warn|error)$/);
    assert.equal(typeof line.event, 'string');
  }
  const events = lines.map((l) => l.event);
  for (const event of ['spawned', 'ready', 'exit', 'spawn', 'stop', 'stopped']) assert.ok(events.includes(event), `event ${event} in ${events.join(',')}`);
  const slotOf = new Map(lines.filter((l) => l.event === 'spawned').map((l) => [l.pid, l.slot]));
  assert.deepEqual([...slotOf.values()].sort(), [0, 1]);
  const output = lines.filter((l) => l.event === 'output');
  for (const pid of pids) {
    const stdoutLine = output.find((l) => l.stream === 'stdout' && l.pid === pid);
    assert.equal(stdoutLine?.line, `hello from stdout ${pid}`);
    assert.equal(stdoutLine?.slot, slotOf.get(pid));
    const stderrLine = output.find((l) => l.stream === 'stderr' && l.pid === pid);
    assert.equal(stderrLine?.line, `hello from stderr ${pid}`);
    assert.equal(stderrLine?.slot, slotOf.get(pid));
  }
  const exit = lines.find((l) => l.event === 'exit')!;
  assert.equal(exit.pid, pids[0]);
  assert.equal(exit.slot, slotOf.get(pids[0]));
  assert.match(exit.msg!, /signal SIGKILL/);
});

test('text logs prefix children lines with [slot:pid]; spawn-fcgi lines keep their wording', async () => {
  const pool = await startPool(['-s', join(dir, 'text.sock'), '--', CHATTY, RESPONDER]);
  const [pid] = pool.childPids();
  await waitFor(() => pool.stderr().includes('hello from stderr'), { timeoutMs: 30_000 });
  await pool.stop();
  assert.match(pool.stderr(), new RegExp(`^spawn-fcgi-ts: \\[0:${pid}\\] hello from stdout ${pid}$`, 'm'));
  assert.match(pool.stderr(), new RegExp(`^spawn-fcgi-ts: \\[0:${pid}\\] child spawned successfully: PID: ${pid}$`, 'm'));
});

test('--log-file writes there; SIGUSR1 reopens it after logrotate moved it, losing and splitting no line', async () => {
  const log = join(dir, 'pool.log');
  const pool = await startPool(['-s', join(dir, 'file.sock'), '-F', '2', '--log-file', log, '--', CHATTY, RESPONDER]);
  assert.equal(pool.stderr(), '', 'nothing on stderr with --log-file');
  await waitFor(() => readFileSync(log, 'utf8').includes('children serving on'), { timeoutMs: 30_000 });
  renameSync(log, `${log}.1`);
  // Lines written after the move but before SIGUSR1 still go to the old file (as with any daemon).
  process.kill(pool.pid, 'SIGUSR1');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const before = pool.childPids();
  for (const pid of before) process.kill(pid, 'SIGKILL');
  await waitFor(
    () => {
      try {
        return (readFileSync(log, 'utf8').match(/child spawned: PID/g) ?? []).length === 2;
      } catch {
        return false;
      }
    },
    { timeoutMs: 30_000, what: 'restarts logged in the new file' },
  );
  await pool.stop();
  const rotated = readFileSync(`${log}.1`, 'utf8');
  const current = readFileSync(log, 'utf8');
  for (const text of [rotated, current]) {
    for (const line of text.trim().split('\n')) assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z spawn-fcgi-ts: /, `whole line: ${line}`);
  }
  assert.match(rotated, /children serving on/);
  assert.doesNotMatch(rotated, /all children gone/);
  assert.match(current, /all children gone/);
  for (const pid of before) assert.match(current, new RegExp(`\\[\\d:${pid}\\] child died|\\[\\d:${pid}\\] child failed`));
});
