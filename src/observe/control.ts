import { accessSync, constants, lstatSync, statSync, unlinkSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Options } from '../options/options.js';
import { probeUnixSocket } from '../socket/socket.js';
import { OPENMETRICS_CONTENT_TYPE, renderOpenMetrics } from './metrics.js';
import { liveness, readiness, shapeOfSnapshot, type Verdict } from './health.js';
import type { PoolSnapshot } from '../pool/pool-snapshot.js';
import type { PoolStatus } from './stats.js';
import { BadAnswer, parseStatusAnswer } from './status-answer.js';
import { renderStatusPage } from './status-page.js';

/** What the control and metrics listeners read: the pool's plain snapshot (cheap) and its full status (samples CPU/RSS). */
export interface Observed {
  snapshot(): PoolSnapshot;
  status(): Promise<PoolStatus>;
}

/**
 * Limits of the control and metrics listeners: a few probes and scrapes at a time, never enough idle connections
 * to use up the supervisor's file descriptors (a child restart needs some).
 */
export const LISTENER_MAX_CONNECTIONS = 32;
export const LISTENER_TIMEOUT_MS = 5000;
/** setInterval's longest period (2^31-1 ms): Node's own connection checker, never needed here, all but never runs. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Where `status -P PIDFILE` finds the control socket: the supervisor serves one there whenever it writes a PID file. */
export const controlPathOfPidFile = (pidFile: string): string => `${pidFile}.control`;

/**
 * Where the control socket of a pool lives unless --control says: next to the unix socket, else next to
 * the PID file, else in /run (root) or the temp dir, named after the TCP port.
 */
export function defaultControlPath(options: Pick<Options, 'control' | 'pidFile' | 'socket'>, env: NodeJS.ProcessEnv): string | undefined {
  if (options.control !== undefined) return options.control;
  const socket = options.socket;
  if (socket?.kind === 'unix' && !socket.abstract) return `${socket.path}.control`;
  if (options.pidFile !== undefined) return controlPathOfPidFile(options.pidFile);
  if (socket?.kind === 'tcp') {
    // Two pools may share a port on different addresses; a wildcard address is left out of the name.
    const address = socket.host === '0.0.0.0' || socket.host === '::' ? '' : `${socket.host.replace(/[^0-9A-Za-z.]/g, '_')}-`;
    return join(writable('/run') ? '/run' : (env.TMPDIR ?? '/tmp'), `spawn-fcgi-ts-${address}${socket.port}.control`);
  }
  return undefined;
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * HTTP on the control socket (mode 0600): /status (JSON), / and /status.html (the status page), /metrics
 * (OpenMetrics), /healthz and /readyz.
 */
export async function startControlServer(path: string, observed: Observed): Promise<{ close(): void; path: string }> {
  const server = createObserverServer(observed, { details: true });
  const inode = await listenUnix(server, path, 'control socket');
  server.unref();
  return { path, close: () => closeUnix(server, path, inode) };
}

/**
 * --metrics ADDR: `host:port`, `:port` (127.0.0.1) or a unix path (created 0600). /metrics, /healthz and /readyz;
 * the detailed status (PIDs, socket paths, exit reasons: /status and the page) only with --status-page.
 */
export async function startMetricsServer(address: string, observed: Observed, options: { statusPage: boolean }): Promise<{ close(): void }> {
  const server = createObserverServer(observed, { details: options.statusPage });
  const tcp = /^(?:\[?([^\]]*)\]?)?:(\d+)$/.exec(address);
  if (tcp !== null) {
    await listening(server, () => server.listen({ host: tcp[1] || '127.0.0.1', port: Number(tcp[2]) }));
    server.unref();
    return {
      close: () => {
        server.close();
        server.closeAllConnections();
      },
    };
  }
  const inode = await listenUnix(server, address, 'metrics socket');
  server.unref();
  return { close: () => closeUnix(server, address, inode) };
}

/**
 * Binds a unix socket that only our uid can connect to. bind(2) creates the file with the mode the umask leaves,
 * so the umask is 0177 for exactly that synchronous call (Node binds a path inside listen()): the socket is
 * never connectable by others, with no chmod that a swapped-in symlink could redirect. bind(2) itself refuses
 * an existing path, symlinks included.
 */
async function listenUnix(server: Server, path: string, what: string): Promise<number> {
  await clearStaleSocket(path, what);
  await listening(server, () => {
    const umask = process.umask(0o177);
    try {
      server.listen({ path });
    } finally {
      process.umask(umask);
    }
  });
  return lstatSync(path).ino;
}

/** Stops serving and removes the socket file, unless it is no longer ours (a successor bound the path meanwhile). */
function closeUnix(server: Server, path: string, inode: number): void {
  server.close();
  server.closeAllConnections();
  try {
    const stats = lstatSync(path);
    if (stats.isSocket() && stats.ino === inode) unlinkSync(path);
  } catch {
    /* gone */
  }
}

/** An existing socket at `path`: refused if someone serves it (said clearly when it is not ours), removed if stale. */
async function clearStaleSocket(path: string, what: string): Promise<void> {
  let stats;
  try {
    stats = lstatSync(path);
  } catch {
    return;
  }
  if (!stats.isSocket()) throw new Error(`${path} exists and is not a socket`);
  if (await probeUnixSocket(path)) {
    const me = process.getuid?.();
    if (stats.uid !== me) {
      throw new Error(
        `${what} ${path} is held by another user (uid ${stats.uid}), not by this supervisor: ` +
          `not serving it, and 'spawn-fcgi-ts status' will not trust it; remove it or choose another path with --control`,
      );
    }
    throw new Error(`${what} ${path} is in use by another process`);
  }
  unlinkSync(path);
}

function listening(server: Server, listen: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
    listen();
  });
}

function createObserverServer(observed: Observed, options: { details: boolean }): Server {
  // Node enforces headersTimeout/requestTimeout with a timer that wakes the process every
  // connectionsCheckingInterval, connections or not (0.2 ms of CPU a second here: the whole idle cost of
  // the supervisor). Per-connection deadlines below do the same job and exist only while a connection does.
  const deadlines = new WeakMap<Socket, NodeJS.Timeout>();
  const armDeadline = (socket: Socket) => {
    clearTimeout(deadlines.get(socket));
    deadlines.set(
      socket,
      setTimeout(() => socket.destroy(), LISTENER_TIMEOUT_MS),
    );
  };
  const server = createServer(
    { requestTimeout: 0, headersTimeout: 0, connectionsCheckingInterval: MAX_TIMER_MS },
    (request: IncomingMessage, response: ServerResponse) => {
      // The request is in: no deadline while it is answered; the next one has its own from the answer on.
      clearTimeout(deadlines.get(request.socket));
      response.once('finish', () => {
        if (!request.socket.destroyed) armDeadline(request.socket);
      });
      const url = request.url?.split('?')[0] ?? '';
      const text = (code: number, body: string, headers: Record<string, string> = {}) =>
        response
          .writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers })
          .end(request.method === 'HEAD' ? undefined : body);
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        text(405, 'GET or HEAD only\n', { allow: 'GET, HEAD' });
        return;
      }
      const probe = (verdict: Verdict, okWord: string) => text(verdict.ok ? 200 : 503, `${verdict.ok ? okWord : `not ${okWord}`}: ${verdict.reason}\n`);
      if (url === '/healthz') return probe(liveness(shapeOfSnapshot(observed.snapshot())), 'ok');
      if (url === '/readyz') return probe(readiness(shapeOfSnapshot(observed.snapshot())), 'ready');
      const render = routes(options.details)[url];
      if (render === undefined) {
        text(404, `${Object.keys(routes(options.details)).concat('/healthz', '/readyz').join(' ')}\n`);
        return;
      }
      observed.status().then(
        (status) => {
          const [type, body] = render(status);
          response
            .writeHead(200, {
              'content-type': type,
              'cache-control': 'no-store',
              'x-content-type-options': 'nosniff',
              ...(type.startsWith('text/html') ? { 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" } : {}),
            })
            .end(request.method === 'HEAD' ? undefined : body);
        },
        (error: Error) => text(500, `${error.message}\n`),
      );
    },
  );
  // A request (headers and body) must arrive within the timeout of the connection or of the last answer,
  // however slowly its bytes trickle in (the idle timeout below is reset by each byte).
  server.on('connection', (socket: Socket) => {
    armDeadline(socket);
    socket.once('close', () => clearTimeout(deadlines.get(socket)));
  });
  server.maxConnections = LISTENER_MAX_CONNECTIONS;
  server.keepAliveTimeout = LISTENER_TIMEOUT_MS;
  // Idle sockets (connected, nothing sent, or kept alive) are closed after the timeout.
  server.setTimeout(LISTENER_TIMEOUT_MS, (socket) => socket.destroy());
  return server;
}

type Render = (status: PoolStatus) => [type: string, body: string];

function routes(details: boolean): Record<string, Render> {
  const metrics: Render = (status) => [OPENMETRICS_CONTENT_TYPE, renderOpenMetrics(status)];
  if (!details) return { '/metrics': metrics };
  const page: Render = (status) => ['text/html; charset=utf-8', renderStatusPage(status)];
  return {
    '/metrics': metrics,
    '/status': (status) => ['application/json', `${JSON.stringify(status)}\n`],
    '/': page,
    '/status.html': page,
  };
}

/** A failed `status` query, with the LSB status code it means. */
export class StatusQueryError extends Error {
  /** `refused`: a socket file that nobody listens on any more (its supervisor died without removing it). */
  constructor(
    message: string,
    readonly exitCode: 3 | 4,
    readonly refused = false,
  ) {
    super(message);
  }
}

const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

/**
 * Trust a control socket only if it is a socket (not a symlink) owned by root or by us, in a directory that
 * others cannot rename things in (not group/other-writable, or sticky like /tmp). A socket someone else
 * squats on is refused before anything is sent to it.
 */
export function checkControlSocket(path: string): void {
  let stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new StatusQueryError(`no pool answers on ${path}: no such socket`, 3);
    throw new StatusQueryError(`cannot check control socket ${path}: ${(error as Error).message}`, 4);
  }
  if (stats.isSymbolicLink()) throw new StatusQueryError(`control socket ${path} is a symbolic link: not trusted`, 4);
  if (!stats.isSocket()) throw new StatusQueryError(`control socket ${path} is not a socket: not trusted`, 4);
  const me = process.getuid?.() ?? 0;
  if (stats.uid !== 0 && stats.uid !== me) {
    throw new StatusQueryError(`control socket ${path} belongs to uid ${stats.uid}, not to root or to you: not trusted`, 4);
  }
  const dir = dirname(path);
  let dirStats;
  try {
    dirStats = statSync(dir);
  } catch (error) {
    throw new StatusQueryError(`cannot check the directory of control socket ${path}: ${(error as Error).message}`, 4);
  }
  if ((dirStats.mode & 0o022) !== 0 && (dirStats.mode & 0o1000) === 0) {
    throw new StatusQueryError(`control socket ${path} is in ${dir}, which others can write to (not sticky): not trusted`, 4);
  }
}

/** The client side of `spawn-fcgi-ts status`: a checked socket, a bounded answer of the right shape. */
export async function fetchStatus(path: string, timeoutMs = 5000): Promise<PoolStatus> {
  checkControlSocket(path);
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ socketPath: path, path: '/status', method: 'GET', timeout: timeoutMs }, (response) => {
      let text = '';
      let size = 0;
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        size += Buffer.byteLength(chunk);
        if (size > MAX_ANSWER_BYTES) req.destroy(new StatusQueryError(`control socket ${path} answered more than ${MAX_ANSWER_BYTES} bytes`, 4));
        else text += chunk;
      });
      response.on('end', () => {
        if (response.statusCode !== 200) reject(new StatusQueryError(`control socket ${path} answered HTTP ${response.statusCode}`, 4));
        else resolve(text);
      });
      response.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new StatusQueryError(`no answer from ${path} within ${timeoutMs} ms`, 4)));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error instanceof StatusQueryError) reject(error);
      else if (error.code === 'ECONNREFUSED') reject(new StatusQueryError(`no pool answers on ${path}: connection refused`, 3, true));
      else if (error.code === 'ENOENT') reject(new StatusQueryError(`no pool answers on ${path}: no such socket`, 3));
      else reject(new StatusQueryError(`control socket ${path}: ${error.code ?? error.message}`, 4));
    });
    req.end();
  });
  try {
    return parseStatusAnswer(body);
  } catch (error) {
    if (error instanceof BadAnswer) throw new StatusQueryError(`control socket ${path} gave a bad answer: ${error.message}`, 4);
    throw error;
  }
}
