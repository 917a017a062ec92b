import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderOpenMetrics } from '../../../src/observe/metrics.js';
import type { PoolStatus } from '../../../src/observe/stats.js';
import { parseOpenMetrics } from '../../helpers/openmetrics.js';

const status: PoolStatus = {
  supervisorPid: 10,
  socket: '/tmp/x.sock',
  startedAt: 1_700_000_000_000,
  now: 1_700_000_100_000,
  configured: 3,
  stopping: false,
  children: 2,
  restarts: 3,
  listenQueue: 4,
  slots: [
    {
      slot: 0,
      pid: 11,
      state: 'running',
      startedAt: 1_700_000_050_000,
      restarts: 1,
      failures: 0,
      lastExit: null,
      cpuPercent: 1.5,
      cpuSeconds: 0.25,
      rssBytes: 12_345_678,
    },
    {
      slot: 1,
      pid: 12,
      state: 'running',
      startedAt: 1_700_000_060_000,
      restarts: 2,
      failures: 0,
      lastExit: { code: 0, signal: null, at: 1, reason: 'exit code 0' },
      cpuPercent: 0,
      cpuSeconds: 1,
      rssBytes: 100,
    },
    {
      slot: 2,
      pid: null,
      state: 'backing off',
      startedAt: null,
      restarts: 0,
      failures: 2,
      lastExit: { code: 1, signal: null, at: 2, reason: 'exit code 1' },
      cpuPercent: null,
      cpuSeconds: null,
      rssBytes: null,
    },
  ],
};

test('the strict OpenMetrics parser accepts the output: per-slot series (label slot only), pool totals', () => {
  const families = new Map(parseOpenMetrics(renderOpenMetrics(status)).map((f) => [f.name, f]));
  assert.equal(families.get('spawn_fcgi_ts_children')?.samples[0]?.value, 2);
  assert.equal(families.get('spawn_fcgi_ts_children_configured')?.samples[0]?.value, 3);
  assert.equal(families.get('spawn_fcgi_ts_stopping')?.samples[0]?.value, 0);
  assert.equal(families.get('spawn_fcgi_ts_restarts')?.type, 'counter');
  assert.equal(families.get('spawn_fcgi_ts_restarts')?.samples[0]?.value, 3);
  assert.equal(families.get('spawn_fcgi_ts_listen_queue')?.samples[0]?.value, 4);
  const rss = families.get('spawn_fcgi_ts_child_rss_bytes')!;
  assert.equal(rss.unit, 'bytes');
  assert.deepEqual(
    rss.samples.map((s) => [s.labels, s.value]),
    [
      [{ slot: '0' }, 12_345_678],
      [{ slot: '1' }, 100],
    ],
  );
  assert.deepEqual(
    families.get('spawn_fcgi_ts_child_pid')!.samples.map((s) => [s.labels.slot, s.value]),
    [
      ['0', 11],
      ['1', 12],
    ],
  );
  assert.deepEqual(
    families.get('spawn_fcgi_ts_child_restarts')!.samples.map((s) => s.value),
    [1, 2, 0],
  );
  assert.deepEqual(
    families.get('spawn_fcgi_ts_child_failures')!.samples.map((s) => s.value),
    [0, 0, 2],
  );
  assert.deepEqual(
    families.get('spawn_fcgi_ts_child_cpu_seconds')!.samples.map((s) => [s.name, s.value]),
    [
      ['spawn_fcgi_ts_child_cpu_seconds_total', 0.25],
      ['spawn_fcgi_ts_child_cpu_seconds_total', 1],
    ],
  );
  for (const family of families.values()) {
    for (const sample of family.samples) assert.equal(sample.labels.pid, undefined, `${sample.name} has no pid label (a restart must not start a new series)`);
  }
});

test('the slot state is a StateSet: exactly one state set per slot', () => {
  const states = parseOpenMetrics(renderOpenMetrics(status)).find((f) => f.name === 'spawn_fcgi_ts_child_state')!;
  assert.equal(states.type, 'stateset');
  const set = states.samples.filter((s) => s.value === 1).map((s) => [s.labels.slot, s.labels.spawn_fcgi_ts_child_state]);
  assert.deepEqual(set, [
    ['0', 'running'],
    ['1', 'running'],
    ['2', 'backing off'],
  ]);
  assert.equal(states.samples.length, 3 * 6, 'six known states: starting, running, backing off, stopping, stopped, parked');
});

test('a pool that sizes itself: the bounds as gauges, parked slots in the StateSet', () => {
  const dynamic: PoolStatus = {
    ...status,
    configured: 1,
    min: 0,
    max: 3,
    children: 1,
    slots: [status.slots[0]!, { ...status.slots[2]!, state: 'parked', failures: 0 }],
  };
  const families = new Map(parseOpenMetrics(renderOpenMetrics(dynamic)).map((f) => [f.name, f]));
  assert.equal(families.get('spawn_fcgi_ts_children_min')?.samples[0]?.value, 0);
  assert.equal(families.get('spawn_fcgi_ts_children_max')?.samples[0]?.value, 3);
  assert.equal(families.get('spawn_fcgi_ts_children_configured')?.samples[0]?.value, 1);
  const set = families
    .get('spawn_fcgi_ts_child_state')!
    .samples.filter((s) => s.value === 1)
    .map((s) => s.labels.spawn_fcgi_ts_child_state);
  assert.deepEqual(set, ['running', 'parked']);
});

test('no listen-queue family when the depth is unknown (unix sockets)', () => {
  const names = parseOpenMetrics(renderOpenMetrics({ ...status, listenQueue: null })).map((f) => f.name);
  assert.ok(!names.includes('spawn_fcgi_ts_listen_queue'));
  assert.ok(names.includes('spawn_fcgi_ts_children'));
});

test('a state a newer Pool reports is added to the StateSet; the output stays valid', () => {
  const newer = { ...status, slots: [...status.slots, { ...status.slots[2]!, slot: 3, state: 'gave up' as never }] };
  const states = parseOpenMetrics(renderOpenMetrics(newer)).find((f) => f.name === 'spawn_fcgi_ts_child_state')!;
  assert.deepEqual(
    states.samples.filter((s) => s.value === 1).map((s) => s.labels.spawn_fcgi_ts_child_state),
    ['running', 'running', 'backing off', 'gave up'],
  );
});
