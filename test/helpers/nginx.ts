/**
 * A real nginx in front of a FastCGI pool, for end-to-end tests.
 *
 * `startNginx({ fastcgiPass, docroot })` writes a minimal configuration into a fresh temp directory
 * (`daemon off; master_process off;` so the process we start is the one that serves), runs
 * `/usr/sbin/nginx -c <tmp>/nginx.conf -p <tmp>` on a free 127.0.0.1 port, and waits until the port
 * accepts connections. Every `*.php` (and everything else) is passed to the pool with the Debian
 * `fastcgi_params` plus `SCRIPT_FILENAME $document_root$fastcgi_script_name`.
 * `stop()` sends SIGTERM to nginx's PID and removes the temp directory; anything left is killed by an
 * `after` hook.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after } from 'node:test';
import { freePort, isGone, removePath, signalIfAlive, tmpDir, waitFor } from './proc.js';

export const NGINX = '/usr/sbin/nginx';

export interface NginxOptions {
  /** nginx's `fastcgi_pass` value: `unix:/path/to.sock`, `127.0.0.1:9000` or `[::1]:9000`. */
  fastcgiPass: string;
  /** The document root nginx hands to the app as $document_root. */
  docroot: string;
  /** Give up waiting for the port after this long (default 10 s). */
  readyTimeoutMs?: number;
}

export interface RunningNginx {
  pid: number;
  port: number;
  /** `http://127.0.0.1:<port>` */
  baseUrl: string;
  /** The temp directory holding nginx.conf, logs and temp paths. */
  dir: string;
  /** nginx's error log so far. */
  errorLog(): string;
  /** SIGTERM by PID, wait for the exit, remove the temp directory. */
  stop(): Promise<void>;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const running = new Set<RunningNginx>();
after(async () => {
  for (const nginx of [...running]) await nginx.stop();
});
process.once('exit', () => {
  for (const nginx of running) signalIfAlive(nginx.pid, 'SIGKILL');
});

export async function startNginx(options: NginxOptions): Promise<RunningNginx> {
  const dir = tmpDir('sfts-nginx');
  const port = await freePort();
  const conf = `
daemon off;
master_process off;
worker_processes 1;
user root;
error_log ${dir}/error.log info;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  fastcgi_temp_path ${dir}/fastcgi;
  proxy_temp_path ${dir}/proxy;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    root ${options.docroot};
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_pass ${options.fastcgiPass};
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  // -e: the error log before the configuration is read (else nginx tries /var/log/nginx/error.log).
  const child = spawn(NGINX, ['-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-p', `${dir}/`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  if (child.pid === undefined) throw new Error('could not start nginx');
  const pid = child.pid;
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const nginx: RunningNginx = {
    pid,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    dir,
    errorLog,
    stop: async () => {
      if (!running.delete(nginx)) return;
      if (!exited) signalIfAlive(pid, 'SIGTERM');
      await Promise.race([exit, waitFor(() => isGone(pid), { timeoutMs: 5000 }).catch(() => undefined)]);
      signalIfAlive(pid, 'SIGKILL');
      removePath(dir);
    },
  };
  running.add(nginx);
  try {
    await waitFor(
      () => {
        if (exited) throw new Error(`nginx exited: ${stderr}${errorLog()}`);
        return canConnect(port);
      },
      { timeoutMs: options.readyTimeoutMs ?? 10_000, what: `nginx on 127.0.0.1:${port}` },
    );
  } catch (error) {
    await nginx.stop();
    throw error;
  }
  return nginx;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** One HTTP request (no keep-alive) with an optional body; resolves with status, headers and body text. */
export function httpRequest(url: string, options: { method?: string; body?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: options.method ?? 'GET', headers: { connection: 'close', ...options.headers }, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (s: string) => (body += s));
      response.once('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      response.once('error', reject);
    });
    request.setTimeout(options.timeoutMs ?? 10_000, () => request.destroy(new Error(`HTTP ${url} timed out`)));
    request.once('error', reject);
    request.end(options.body);
  });
}
