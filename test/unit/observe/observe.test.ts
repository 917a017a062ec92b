import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeControl, escapeHtml, terminalSafeJson } from '../../../src/common/display-text.js';
import { readiness, liveness } from '../../../src/observe/health.js';
import { BadAnswer, parseStatusAnswer } from '../../../src/observe/status-answer.js';
import { renderStatusPage } from '../../../src/observe/status-page.js';
import { renderStatusTable } from '../../../src/observe/status-view.js';
import type { PoolStatus } from '../../../src/observe/stats.js';

const good: PoolStatus = {
  supervisorPid: 10,
  socket: '/tmp/x.sock',
  startedAt: 1_700_000_000_000,
  now: 1_700_000_100_000,
  configured: 2,
  stopping: false,
  children: 2,
  restarts: 1,
  listenQueue: null,
  slots: [
    {
      slot: 0,
      pid: 11,
      state: 'running',
      startedAt: 1_700_000_050_000,
      restarts: 1,
      failures: 0,
      lastExit: { code: null, signal: 'SIGKILL', at: 1_700_000_040_000, reason: 'signal SIGKILL' },
      cpuPercent: 1.5,
      cpuSeconds: 0.25,
      rssBytes: 12_345_678,
    },
    { slot: 1, pid: 12, state: 'running', startedAt: 1_700_000_060_000, restarts: 0, failures: 0, lastExit: null, cpuPercent: 0, cpuSeconds: 1, rssBytes: 100 },
  ],
};

test('a well-formed answer is accepted as it is', () => {
  assert.deepEqual(parseStatusAnswer(JSON.stringify(good)), good);
});

test('bad answers are refused with a one-line reason, never a crash', () => {
  const cases: [string, RegExp][] = [
    ['<html>hello', /not JSON/],
    ['', /not JSON/],
    ['[]', /the answer is not an object/],
    ['{"slots":"x"}', /'slots' is not a list/],
    [JSON.stringify({ ...good, supervisorPid: -1 }), /supervisorPid is not a PID/],
    [JSON.stringify({ ...good, slots: [{ ...good.slots[0], state: 'pwned\x1b[2J' }] }), /slots\[0\]\.state is not a slot state/],
    [JSON.stringify({ ...good, slots: [{ ...good.slots[0], lastExit: { reason: 5 } }] }), /slots\[0\]\.lastExit\.code is not a number/],
    [JSON.stringify({ ...good, socket: 'x'.repeat(5000) }), /socket is longer than 4096/],
  ];
  for (const [body, reason] of cases) {
    assert.throws(
      () => parseStatusAnswer(body),
      (error: Error) => error instanceof BadAnswer && reason.test(error.message) && !error.message.includes('\n'),
      body.slice(0, 40),
    );
  }
});

test('control characters from an answer never reach the terminal or the page', () => {
  const hostile = {
    ...good,
    socket: '/tmp/\x1b[2J\x1b]0;owned\x07x.sock\u009b31m',
    slots: [{ ...good.slots[0]!, lastExit: { ...good.slots[0]!.lastExit!, reason: 'exit\r\nspawn-fcgi-ts: all fine <script>alert(1)</script>' } }],
  };
  const table = renderStatusTable(hostile, { color: false });
  assert.doesNotMatch(table, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
  assert.match(table, /\\x1b\[2J/);
  assert.equal(table.split('\n').length, 4, 'a \\r\\n in a reason does not forge a line');
  assert.doesNotMatch(terminalSafeJson(hostile), /[\x00-\x09\x0b-\x1f\x7f-\x9f]/u);
  const page = renderStatusPage(hostile);
  assert.doesNotMatch(page, /<script>/);
  assert.match(page, /&#60;script&#62;alert\(1\)/);
  assert.doesNotMatch(page, /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
  assert.equal(escapeControl('a\tb'), 'a\\x09b');
  assert.equal(escapeHtml('"&\''), '&#34;&#38;&#39;');
});

test('readiness: every configured child running and none backing off; liveness: not stopping', () => {
  assert.deepEqual(readiness(good), { ok: true, reason: '2 of 2 children running' });
  const backingOff = {
    ...good,
    slots: [good.slots[0]!, { ...good.slots[1]!, pid: null, state: 'backing off' as const, lastExit: { code: 1, signal: null, at: 1, reason: 'exit code 1' } }],
  };
  assert.deepEqual(readiness(backingOff), {
    ok: false,
    reason: '1 of 2 children running, slot 1 backing off (exit code 1)',
    problems: ['slot 1 backing off (exit code 1)'],
  });
  assert.deepEqual(readiness({ ...good, configured: 3 }), { ok: false, reason: '2 of 3 children running', problems: [] });
  assert.equal(readiness({ ...good, stopping: true }).ok, false);
  assert.deepEqual(liveness({ ...good, stopping: true }), { ok: false, reason: 'stopping' });
  assert.deepEqual(liveness(good), { ok: true, reason: 'supervising' });
});

test('the status page shows every slot with its numbers in data-field cells and refreshes itself', () => {
  const page = renderStatusPage(good);
  assert.match(page, /<meta http-equiv="refresh" content="5">/);
  assert.deepEqual(
    [...page.matchAll(/data-field="pid"[^>]*>(\d+)</g)].map((m) => Number(m[1])),
    [11, 12],
  );
  assert.match(page, /data-field="rss"[^>]*>11\.8 MiB</);
  assert.match(page, /data-field="ready">ready</);
});

test('fields a newer pool may add (nextRestartAt, lastError) are shown when present', () => {
  const slot = {
    ...good.slots[1]!,
    pid: null,
    state: 'backing off' as const,
    lastExit: { code: 1, signal: null, at: good.now - 2000, reason: 'exit code 1' },
    nextRestartAt: good.now + 8000,
    lastError: 'spawn EAGAIN',
  };
  const withExtras = { ...good, slots: [good.slots[0]!, slot] };
  assert.deepEqual(parseStatusAnswer(JSON.stringify(withExtras)).slots[1], slot);
  assert.match(renderStatusTable(withExtras, { color: false }), /exit code 1, 2s ago; spawn EAGAIN; next try in 8s/);
  assert.match(renderStatusPage(withExtras), /exit code 1, 2s ago; spawn EAGAIN; next try in 8s/);
  const sameReason = { ...withExtras, slots: [good.slots[0]!, { ...slot, lastError: 'exit code 1' }] };
  assert.match(renderStatusTable(sameReason, { color: false }), /exit code 1, 2s ago; next try in 8s/);
});
