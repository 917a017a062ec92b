import { lstatSync, unlinkSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { accessSync, constants } from 'node:fs';
import type { Options } from './options.js';
import { probeUnixSocket } from './socket.js';
import { OPENMETRICS_CONTENT_TYPE, renderOpenMetrics } from './metrics.js';
import type { PoolStatus } from './stats.js';

export type StatusSource = () => Promise<PoolStatus>;

/**
 * Where the control socket of a pool lives unless --control says: next to the unix socket, else next to
 * the PID file, else in /run (root) or the temp dir, named after the TCP port.
 */
export function defaultControlPath(options: Pick<Options, 'control' | 'pidFile' | 'socket'>): string | undefined {
  if (options.control !== undefined) return options.control;
  const socket = options.socket;
  if (socket?.kind === 'unix' && !socket.abstract) return `${socket.path}.control`;
  if (options.pidFile !== undefined) return `${options.pidFile}.control`;
  if (socket?.kind === 'tcp') {
    // Two pools may share a port on different addresses; a wildcard address is left out of the name.
    const address = socket.host === '0.0.0.0' || socket.host === '::' ? '' : `${socket.host.replace(/[^0-9A-Za-z.]/g, '_')}-`;
    return join(writable('/run') ? '/run' : process.env.TMPDIR ?? '/tmp', `spawn-fcgi-ts-${address}${socket.port}.control`);
  }
  return undefined;
}

function writable(dir: string): boolean {
  try { accessSync(dir, constants.W_OK); return true; } catch { return false; }
}

/** HTTP on the control socket (mode 0600): GET /status (JSON) and GET /metrics (OpenMetrics). */
export async function startControlServer(path: string, source: StatusSource): Promise<{ close(): void; path: string }> {
  if (await isLiveSocket(path)) throw new Error(`control socket ${path} is in use by another process`);
  const server = createStatusServer(source);
  const umask = process.umask(0o177);
  try {
    await listen(server, { path });
  } finally {
    process.umask(umask);
  }
  server.unref();
  return {
    path,
    close: () => {
      server.close();
      try { unlinkSync(path); } catch { /* gone */ }
    },
  };
}

/** --metrics ADDR: `host:port`, `:port` (127.0.0.1) or a unix path. */
export async function startMetricsServer(address: string, source: StatusSource): Promise<{ close(): void }> {
  const server = createStatusServer(source);
  const tcp = /^(?:\[?([^\]]*)\]?)?:(\d+)$/.exec(address);
  if (tcp !== null) {
    await listen(server, { host: tcp[1] || '127.0.0.1', port: Number(tcp[2]) });
  } else {
    if (await isLiveSocket(address)) throw new Error(`metrics socket ${address} is in use by another process`);
    await listen(server, { path: address });
  }
  server.unref();
  return { close: () => { server.close(); if (tcp === null) { try { unlinkSync(address); } catch { /* gone */ } } } };
}

async function isLiveSocket(path: string): Promise<boolean> {
  let isSocket = false;
  try { isSocket = lstatSync(path).isSocket(); } catch { return false; }
  if (!isSocket) throw new Error(`${path} exists and is not a socket`);
  if (await probeUnixSocket(path)) return true;
  unlinkSync(path);
  return false;
}

function createStatusServer(source: StatusSource): Server {
  return createServer((request: IncomingMessage, response: ServerResponse) => {
    const url = request.url?.split('?')[0];
    if (request.method !== 'GET' || (url !== '/status' && url !== '/metrics')) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('GET /status or /metrics\n');
      return;
    }
    source().then(
      (status) => {
        if (url === '/status') response.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(status)}\n`);
        else response.writeHead(200, { 'content-type': OPENMETRICS_CONTENT_TYPE }).end(renderOpenMetrics(status));
      },
      (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
    );
  });
}

function listen(server: Server, where: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The client side of `spawn-fcgi-ts status`. */
export async function fetchStatus(path: string, timeoutMs = 5000): Promise<PoolStatus> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, path: '/status', method: 'GET', timeout: timeoutMs }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => { body += chunk; });
      response.on('end', () => {
        if (response.statusCode !== 200) reject(new Error(`control socket ${path} answered ${response.statusCode}: ${body.trim()}`));
        else resolve(JSON.parse(body) as PoolStatus);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

