// nginx in front of the pool (127.0.0.1 only, config under the run dir) and wrk to load it.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { READY_MARKER, tcpListen } from './fcgi.mjs';
import { registerProcess, unregisterProcess } from './registry.mjs';
import { freePort, isAlive, listPids, readStat, signalIfSame } from './proc.mjs';
import { sleep } from './util.mjs';

export { freePort } from './proc.mjs';

export function httpGet(port, path, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('latin1') }));
      res.on('error', () => resolve({ status: 0, body: '' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

const nginxConf = ({ dir, port, www, sock, accessLog }) => `
worker_processes 1;
daemon off;
master_process on;
${process.getuid?.() === 0 ? 'user root;' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
    log_format bench '$msec $request_time $status $request_id';
    ${accessLog ? `access_log ${dir}/access.log bench;` : 'access_log off;'}
    client_body_temp_path ${dir}/body;
    fastcgi_temp_path ${dir}/fastcgi;
    proxy_temp_path ${dir}/proxy;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:${port};
        root ${www};
        location ~ \\.php$ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param BENCH_REQUEST_ID $request_id;
            fastcgi_param BENCH_START_LOG ${dir}/php-started.log;
            fastcgi_pass ${tcpListen(sock) ? sock.slice(4) : `unix:${sock}`};
        }
    }
}
`;

/** Start nginx for this socket and wait until ready.php answers through it. */
export async function startNginx(runDir, sock, www, { accessLog = false } = {}) {
  const dir = join(runDir, 'nginx');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConf({ dir, port, www, sock, accessLog }));
  const errFd = openSync(join(dir, 'stderr'), 'w');
  const proc = spawn('nginx', ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], { stdio: ['ignore', 'ignore', errFd], detached: true });
  closeSync(errFd);
  registerProcess(proc.pid);
  let exited = false;
  proc.once('exit', () => {
    exited = true;
  });
  const nginx = { proc, port, dir, accessLogPath: join(dir, 'access.log'), startedLogPath: join(dir, 'php-started.log'), kids: [] };
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !exited) {
    const res = await httpGet(port, '/ready.php', 2000);
    if (res.status === 200 && res.body.includes(READY_MARKER)) {
      nginx.kids = childrenOf(proc.pid);
      for (const k of nginx.kids) registerProcess(k.pid);
      return nginx;
    }
    await sleep(50);
  }
  await stopNginx(nginx);
  const err = existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').slice(-600) : '';
  throw new Error(`nginx did not come up or the pool did not answer through it: ${err.trim()}`);
}

function childrenOf(pid) {
  const out = [];
  for (const p of listPids()) {
    const st = readStat(p);
    if (st && st.ppid === pid) out.push({ pid: p, starttime: st.starttime });
  }
  return out;
}

export async function stopNginx(nginx) {
  const { proc } = nginx;
  if (proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    const ok = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
    if (!ok) {
      proc.kill('SIGKILL');
      await Promise.race([exited, sleep(5000)]);
    }
  }
  for (const k of nginx.kids) {
    if (isAlive(k.pid, k.starttime)) signalIfSame(k.pid, k.starttime, 'SIGKILL');
    unregisterProcess(k.pid);
  }
  unregisterProcess(proc.pid);
}

const toMs = (text) => {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '');
  if (!m) return null;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60000 }[m[2]];
};

export function parseWrk(text) {
  const res = {};
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  res.rps = rps ? Number(rps[1]) : null;
  for (const pct of ['50', '90', '99']) {
    const m = new RegExp(`^\\s+${pct}%\\s+(\\S+)`, 'm').exec(text);
    res[`p${pct}_ms`] = m ? toMs(m[1]) : null;
  }
  const req = /(\d+) requests in ([\d.]+\w+)/.exec(text);
  res.requests = req ? Number(req[1]) : null;
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  res.non2xx = non2xx ? Number(non2xx[1]) : 0;
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  res.socket_errors = se ? se.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  res.socket_errors_detail = se ? { connect: +se[1], read: +se[2], write: +se[3], timeout: +se[4] } : null;
  res.raw_tail = text.slice(-700);
  return res;
}

/**
 * Start wrk; `done` resolves with the parsed summary. `stop()` sends SIGINT, which makes wrk end
 * early and still print its summary.
 */
export function startWrk(port, path, { threads = 2, conns = 32, durationS = 10, latency = true } = {}) {
  const args = [`-t${threads}`, `-c${conns}`, `-d${durationS}s`, '--timeout', '5s'];
  if (latency) args.push('--latency');
  args.push(`http://127.0.0.1:${port}${path}`);
  const proc = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  registerProcess(proc.pid);
  let out = '';
  proc.stdout.on('data', (c) => {
    out += c;
  });
  proc.stderr.on('data', (c) => {
    out += c;
  });
  const done = new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), (durationS + 30) * 1000);
    proc.once('close', () => {
      clearTimeout(timer);
      unregisterProcess(proc.pid);
      resolve({ ...parseWrk(out), cmd: `wrk ${args.join(' ')}` });
    });
  });
  return {
    proc,
    done,
    stop: () => {
      if (proc.exitCode === null) proc.kill('SIGINT');
    },
  };
}

export const runWrk = (port, path, options) => startWrk(port, path, options).done;

/**
 * nginx's access log ($msec $request_time $status $request_id) joined with the ids that PHP logged
 * when it began to run a script (slow.php/ok.php write BENCH_REQUEST_ID to BENCH_START_LOG): a
 * request in that log was accepted by a worker.
 * tSignalEpochMs: split into before / in flight at / after the signal.
 */
const STALL_S = 1;

export function classifyAccessLog(nginx, tSignalEpochMs = null) {
  const res = {
    total: 0,
    ok: 0,
    failed: 0,
    statuses: {},
    aborted_by_client: 0,
    slower_than_1s: 0,
    max_request_s: 0,
    accepted: 0,
    accepted_failed: 0,
    accepted_failed_statuses: {},
  };
  if (tSignalEpochMs !== null)
    Object.assign(res, { inflight: 0, inflight_failed: 0, after_ok: 0, after_failed: 0, before_failed: 0, inflight_accepted: 0, inflight_accepted_failed: 0 });
  let text = '';
  try {
    text = readFileSync(nginx.accessLogPath, 'latin1');
  } catch {
    res.error = 'no access log';
    return res;
  }
  let started = new Set();
  try {
    started = new Set(readFileSync(nginx.startedLogPath, 'latin1').split('\n').filter(Boolean));
  } catch {
    // no script logged a start
  }
  const tSig = tSignalEpochMs === null ? null : tSignalEpochMs / 1000;
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (parts.length < 4) continue;
    const end = Number(parts[0]);
    const dur = Number(parts[1]);
    const status = parts[2];
    const id = parts[3];
    const accepted = started.has(id);
    // 499: wrk closed the connection before the answer. At the end of a load run that is every
    // request still in flight, answered or not in a moment: not a failure, unless it had been
    // waiting for a second or more (a pool that stopped answering).
    const stalled = dur >= STALL_S;
    const aborted = status === '499' && !stalled;
    const ok = status.startsWith('2') || aborted;
    res.total++;
    res[ok ? 'ok' : 'failed']++;
    res.statuses[status] = (res.statuses[status] ?? 0) + 1;
    if (aborted) res.aborted_by_client++;
    if (stalled) res.slower_than_1s++;
    res.max_request_s = Math.max(res.max_request_s, dur);
    if (accepted) {
      res.accepted++;
      if (!ok) {
        res.accepted_failed++;
        res.accepted_failed_statuses[status] = (res.accepted_failed_statuses[status] ?? 0) + 1;
      }
    }
    if (tSig !== null) {
      const start = end - dur;
      if (start < tSig && end >= tSig) {
        res.inflight++;
        if (!ok) res.inflight_failed++;
        if (accepted) {
          res.inflight_accepted++;
          if (!ok) res.inflight_accepted_failed++;
        }
      } else if (start >= tSig) {
        res[ok ? 'after_ok' : 'after_failed']++;
      } else if (!ok) {
        res.before_failed++;
      }
    }
  }
  return res;
}
