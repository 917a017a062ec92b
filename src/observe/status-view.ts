import { Chalk } from 'chalk';
import { escapeControl } from '../common/display-text.js';
import { readiness } from './health.js';
import type { PoolStatus, SlotStatus } from './stats.js';

/** `spawn-fcgi-ts status`: one table, colour only on a terminal; control characters from the answer are escaped. */
export function renderStatusTable(status: PoolStatus, options: { color: boolean }): string {
  const chalk = new Chalk({ level: options.color ? 1 : 0 });
  const stateColour: Record<string, (s: string) => string> = {
    running: chalk.green,
    starting: chalk.cyan,
    'backing off': chalk.red,
    stopping: chalk.yellow,
    stopped: chalk.gray,
    parked: chalk.gray,
  };
  const header = ['SLOT', 'PID', 'STATE', 'UPTIME', 'RESTARTS', 'LAST EXIT', 'CPU %', 'RSS'];
  const rows = status.slots.map((s) => [
    String(s.slot),
    s.pid === null ? '-' : String(s.pid),
    escapeControl(s.state),
    s.startedAt === null ? '-' : formatDuration(status.now - s.startedAt),
    String(s.restarts),
    lastExitText(s, status.now),
    s.cpuPercent === null ? '-' : s.cpuPercent.toFixed(1),
    s.rssBytes === null ? '-' : formatBytes(s.rssBytes),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[], paint?: (cell: string, i: number) => string) =>
    cells
      .map((c, i) => (paint ? paint(c.padEnd(widths[i]!), i) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const children = `${status.children} ${status.children === 1 ? 'child' : 'children'}${boundsText(status)}`;
  const restarts = `${status.restarts} ${status.restarts === 1 ? 'restart' : 'restarts'}`;
  const ready = readiness(status);
  const summary =
    `supervisor ${status.supervisorPid} on ${escapeControl(status.socket)}: ${children}, up ${formatDuration(status.now - status.startedAt)}, ${restarts}` +
    (status.listenQueue === null ? '' : `, listen queue ${status.listenQueue}`) +
    (ready.ok ? '' : `; not ready: ${escapeControl(ready.reason)}`);
  return (
    [summary, chalk.bold(line(header)), ...rows.map((r) => line(r, (cell, i) => (i === 2 ? (stateColour[r[2]!] ?? ((x: string) => x))(cell) : cell)))].join(
      '\n',
    ) + '\n'
  );
}

/** ' (min 0, max 4)' for a pool that sizes itself; '' for a static one. */
export function boundsText(status: PoolStatus): string {
  return status.min !== undefined && status.max !== undefined && status.min !== status.max ? ` (min ${status.min}, max ${status.max})` : '';
}

/** The last exit, and where the pool says so, the last spawn error and when a backing-off slot tries again. */
export function lastExitText(slot: SlotStatus, now: number): string {
  const parts = [slot.lastExit === null ? '-' : `${slot.lastExit.reason}, ${formatDuration(now - slot.lastExit.at)} ago`];
  // The pool sets lastError to the exit's own reason when a child failed: say it once.
  if (slot.lastError && slot.lastError !== slot.lastExit?.reason) parts.push(slot.lastError);
  if (slot.state === 'backing off' && typeof slot.nextRestartAt === 'number')
    parts.push(`next try in ${slot.nextRestartAt - now < 1000 ? 'under 1s' : formatDuration(slot.nextRestartAt - now)}`);
  return escapeControl(parts.join('; '));
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
