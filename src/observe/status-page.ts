import { escapeHtml } from '../common/display-text.js';
import { readiness } from './health.js';
import type { PoolStatus, SlotStatus } from './stats.js';
import { boundsText, formatBytes, formatDuration, lastExitText } from './status-view.js';

export const STATUS_PAGE_REFRESH_SECONDS = 5;

/**
 * The status page for people (GET / and /status.html): the pool as one HTML table, refreshing itself with a
 * meta refresh (no script). Every text is escaped: exit reasons and errors may carry child-controlled bytes.
 * Cells carry data-field attributes so that tools (and the tests) can read the numbers back.
 */
export function renderStatusPage(status: PoolStatus): string {
  const ready = readiness(status);
  const head = ['Slot', 'PID', 'State', 'Uptime', 'Restarts', 'Last exit', 'CPU %', 'RSS'];
  const rows = status.slots.map((s) => `<tr class="${s.state.replace(' ', '-')}">${cells(s, status.now)}</tr>`).join('\n');
  const children = `${status.children} of ${status.configured} ${status.configured === 1 ? 'child' : 'children'} running${boundsText(status)}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${STATUS_PAGE_REFRESH_SECONDS}">
<title>spawn-fcgi-ts ${escapeHtml(status.socket)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .2em}
p{margin:.2em 0 1em;color:#555}
table+p{margin-top:.8em}
table{border-collapse:collapse;min-width:60em}
th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left;white-space:nowrap}
th{background:#f3f3f3}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.1em .6em;border-radius:.8em;color:#fff;font-weight:600}
.ok{background:#2a7d2a}.bad{background:#b3261e}
tr.running td[data-field=state]{color:#2a7d2a}tr.backing-off td[data-field=state]{color:#b3261e}
tr.starting td[data-field=state],tr.stopping td[data-field=state]{color:#a86b00}
</style></head>
<body>
<h1>spawn-fcgi-ts on <span data-field="socket">${escapeHtml(status.socket)}</span></h1>
<p><span class="badge ${ready.ok ? 'ok' : 'bad'}" data-field="ready">${ready.ok ? 'ready' : 'not ready'}</span>
supervisor <span data-field="supervisor-pid">${status.supervisorPid}</span>,
<span data-field="children">${escapeHtml(children)}</span>,
up ${formatDuration(status.now - status.startedAt)},
<span data-field="restarts">${status.restarts}</span> ${status.restarts === 1 ? 'restart' : 'restarts'}${status.listenQueue === null ? '' : `, listen queue <span data-field="listen-queue">${status.listenQueue}</span>`}
${ready.ok || !ready.problems?.length ? '' : `— ${escapeHtml(ready.problems.join(', '))}`}</p>
<table>
<thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>
<tbody>
${rows}
</tbody></table>
<p>Refreshes every ${STATUS_PAGE_REFRESH_SECONDS} s. Also: <a href="status">JSON</a>, <a href="metrics">OpenMetrics</a>, <a href="readyz">readyz</a>.</p>
</body></html>
`;
}

function cells(s: SlotStatus, now: number): string {
  const cell = (field: string, text: string, numeric = false) => `<td data-field="${field}"${numeric ? ' class="n"' : ''}>${escapeHtml(text)}</td>`;
  return [
    cell('slot', String(s.slot), true),
    cell('pid', s.pid === null ? '-' : String(s.pid), true),
    cell('state', s.state),
    cell('uptime', s.startedAt === null ? '-' : formatDuration(now - s.startedAt), true),
    cell('restarts', String(s.restarts), true),
    cell('last-exit', lastExitText(s, now)),
    cell('cpu', s.cpuPercent === null ? '-' : s.cpuPercent.toFixed(1), true),
    cell('rss', s.rssBytes === null ? '-' : formatBytes(s.rssBytes), true),
  ].join('');
}
