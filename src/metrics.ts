import type { PoolStatus } from './stats.js';

const PREFIX = 'spawn_fcgi_ts';
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** OpenMetrics text: per-child series labelled with slot and pid, pool totals, the listen queue where known. */
export function renderOpenMetrics(status: PoolStatus): string {
  const out: string[] = [];
  const family = (name: string, type: 'gauge' | 'counter', help: string, unit?: string) => {
    out.push(`# TYPE ${PREFIX}_${name} ${type}`);
    if (unit !== undefined) out.push(`# UNIT ${PREFIX}_${name} ${unit}`);
    out.push(`# HELP ${PREFIX}_${name} ${help}`);
  };
  const live = status.slots.filter((s) => s.pid !== null);
  const labels = (slot: number, pid: number | null) => `{slot="${slot}",pid="${pid ?? ''}"}`;

  family('children', 'gauge', 'Children currently running.');
  out.push(`${PREFIX}_children ${status.children}`);
  family('slots', 'gauge', 'Configured number of children.');
  out.push(`${PREFIX}_slots ${status.slots.length}`);
  family('restarts', 'counter', 'Children started again after the first start, all slots.');
  out.push(`${PREFIX}_restarts_total ${status.restarts}`);
  family('supervisor_start_time_seconds', 'gauge', 'When the supervisor started.', 'seconds');
  out.push(`${PREFIX}_supervisor_start_time_seconds ${status.startedAt / 1000}`);
  if (status.listenQueue !== null) {
    family('listen_queue', 'gauge', 'Connections waiting in the socket accept queue.');
    out.push(`${PREFIX}_listen_queue ${status.listenQueue}`);
  }
  family('child_restarts', 'counter', 'Restarts of this slot.');
  for (const s of status.slots) out.push(`${PREFIX}_child_restarts_total${labels(s.slot, s.pid)} ${s.restarts}`);
  family('child_up_since_seconds', 'gauge', 'Start time of the running child.', 'seconds');
  for (const s of live) if (s.startedAt !== null) out.push(`${PREFIX}_child_up_since_seconds${labels(s.slot, s.pid)} ${s.startedAt / 1000}`);
  family('child_cpu_seconds', 'counter', 'CPU time (user + system) of the running child.', 'seconds');
  for (const s of live) if (s.cpuSeconds !== null) out.push(`${PREFIX}_child_cpu_seconds_total${labels(s.slot, s.pid)} ${s.cpuSeconds}`);
  family('child_rss_bytes', 'gauge', 'Resident memory of the running child.', 'bytes');
  for (const s of live) if (s.rssBytes !== null) out.push(`${PREFIX}_child_rss_bytes${labels(s.slot, s.pid)} ${s.rssBytes}`);
  out.push('# EOF');
  return out.join('\n') + '\n';
}
