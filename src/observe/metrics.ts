import type { PoolStatus } from './stats.js';
import type { SlotState } from '../pool/pool-snapshot.js';

const PREFIX = 'spawn_fcgi_ts';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const KNOWN_STATES: readonly SlotState[] = ['starting', 'running', 'backing off', 'stopping', 'stopped', 'parked'];

/**
 * OpenMetrics text. Per-child series carry the label `slot` only, so a restart continues the same series;
 * the child's PID is a value (child_pid) and its state a StateSet.
 */
export function renderOpenMetrics(status: PoolStatus): string {
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter' | 'stateset', help: string, unit?: string) => {
    out.push(`# TYPE ${PREFIX}_${name} ${type}`);
    if (unit !== undefined) out.push(`# UNIT ${PREFIX}_${name} ${unit}`);
    out.push(`# HELP ${PREFIX}_${name} ${help}`);
  };
  const live = status.slots.filter((s) => s.pid !== null);
  const slot = (n: number) => `{slot="${n}"}`;

  family('children', 'gauge', 'Children currently running.');
  out.push(`${PREFIX}_children ${status.children}`);
  family('children_configured', 'gauge', 'Children the pool is meant to have (-F, changed by TTIN/TTOU).');
  out.push(`${PREFIX}_children_configured ${status.configured}`);
  if (status.min !== undefined && status.max !== undefined) {
    family('children_min', 'gauge', 'The fewest children (--min-procs; -F in a static pool).');
    out.push(`${PREFIX}_children_min ${status.min}`);
    family('children_max', 'gauge', 'The most children (-F, changed by TTIN/TTOU).');
    out.push(`${PREFIX}_children_max ${status.max}`);
  }
  family('slots', 'gauge', 'Slots in the pool, stopping ones included.');
  out.push(`${PREFIX}_slots ${status.slots.length}`);
  family('stopping', 'gauge', '1 while the supervisor is stopping.');
  out.push(`${PREFIX}_stopping ${status.stopping ? 1 : 0}`);
  family('restarts', 'counter', 'Children started again after the first start, all slots.');
  out.push(`${PREFIX}_restarts_total ${status.restarts}`);
  family('supervisor_start_time_seconds', 'gauge', 'When the supervisor started.', 'seconds');
  out.push(`${PREFIX}_supervisor_start_time_seconds ${status.startedAt / 1000}`);
  if (status.listenQueue !== null) {
    family('listen_queue', 'gauge', 'Connections waiting in the socket accept queue.');
    out.push(`${PREFIX}_listen_queue ${status.listenQueue}`);
  }
  family('child_state', 'stateset', 'State of the slot.');
  // The known states always (a StateSet lists every state), and any state a newer Pool reports.
  const states = [...new Set<string>([...KNOWN_STATES, ...status.slots.map((s) => s.state)])];
  for (const s of status.slots) {
    for (const state of states) out.push(`${PREFIX}_child_state{slot="${s.slot}",${PREFIX}_child_state="${state}"} ${s.state === state ? 1 : 0}`);
  }
  family('child_pid', 'gauge', "PID of the slot's running child.");
  for (const s of live) out.push(`${PREFIX}_child_pid${slot(s.slot)} ${s.pid}`);
  family('child_restarts', 'counter', 'Restarts of this slot.');
  for (const s of status.slots) out.push(`${PREFIX}_child_restarts_total${slot(s.slot)} ${s.restarts}`);
  family('child_failures', 'gauge', 'Consecutive fast failures of this slot (0 once a child stays up).');
  for (const s of status.slots) out.push(`${PREFIX}_child_failures${slot(s.slot)} ${s.failures}`);
  family('child_up_since_seconds', 'gauge', 'Start time of the running child.', 'seconds');
  for (const s of live) if (s.startedAt !== null) out.push(`${PREFIX}_child_up_since_seconds${slot(s.slot)} ${s.startedAt / 1000}`);
  family('child_cpu_seconds', 'counter', 'CPU time (user + system) of the running child; starts again at 0 when the slot restarts.', 'seconds');
  for (const s of live) if (s.cpuSeconds !== null) out.push(`${PREFIX}_child_cpu_seconds_total${slot(s.slot)} ${s.cpuSeconds}`);
  family('child_rss_bytes', 'gauge', 'Resident memory of the running child.', 'bytes');
  for (const s of live) if (s.rssBytes !== null) out.push(`${PREFIX}_child_rss_bytes${slot(s.slot)} ${s.rssBytes}`);
  out.push('# EOF');
  return out.join('\n') + '\n';
}
