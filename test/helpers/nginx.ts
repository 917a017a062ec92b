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
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { freePort, tmpDir } from './proc.js';
import { startWebServer, type RunningWebServer } from './web-server.js';

export const NGINX = '/usr/sbin/nginx';

export interface NginxOptions {
  /** nginx's `fastcgi_pass` value: `unix:/path/to.sock`, `127.0.0.1:9000` or `[::1]:9000`. */
  fastcgiPass: string;
  /** The document root nginx hands to the app as $document_root. */
  docroot: string;
  /** Give up waiting for the port after this long (default 10 s). */
  readyTimeoutMs?: number;
}

export type RunningNginx = RunningWebServer;

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

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
  return startWebServer('nginx', NGINX, ['-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-p', `${dir}/`], {
    dir,
    port,
    readyTimeoutMs: options.readyTimeoutMs,
  });
}

/** One HTTP request (no keep-alive) with an optional body; resolves with status, headers and body text. */
export function httpRequest(
  url: string,
  options: { method?: string; body?: string | Buffer; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
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
