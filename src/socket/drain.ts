import { fstatSync, lstatSync, readFileSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { getValuesRecord } from './fcgi-probe.js';
import type { Logger } from '../observe/log.js';
import type { SocketSpec } from '../options/options.js';
import type { BoundSocket } from './socket.js';
import { tcpListenQueue } from '../observe/stats.js';

/**
 * Drain on stop: before the children get the kill signal, let them take every connection already waiting
 * in the socket's accept queue, so that none of them is reset when the last child exits.
 *
 * The accept queue is FIFO: a sentinel connection made now lands behind everything queued, so once a child
 * has accepted the sentinel, every earlier connection has been accepted too (and the kill signal lets a
 * child finish the request it has). The sentinel sends FCGI_GET_VALUES; any answer, EOF or reset means
 * a child took it. An application that ignores management records (and waits for a whole request) is
 * seen in /proc/net instead: a connection still in an accept queue has no inode there, an accepted one has.
 *
 * A unix socket's path is taken away first (renamed to a private name in the same directory: the inode,
 * the listening socket, stays), so that new connections fail at once with ENOENT and the web server fails
 * over instead of queueing behind a pool that is going away. TCP has no such switch: connections that
 * arrive after the sentinel are still reset when the last child exits.
 *
 * Not done: with a socket passed by systemd (the queue belongs to the next instance, untouched), for an
 * abstract socket, or when no child is alive to accept.
 */

export interface DrainContext {
  socket: BoundSocket;
  /** -s / -p as given (undefined when systemd passed the socket). */
  spec: SocketSpec | undefined;
  /** systemd (or an fd holder) passed the socket: it outlives us, and so does its queue. */
  activated: boolean;
  keepSocket: boolean;
  /** --kill-timeout: the longest the sentinel may wait for a child. */
  timeoutMs: number;
  liveChildren: () => number;
  logger: Logger;
}

export interface Drain {
  /** Once the children are gone: with --keep-socket, put the path back (a socket nobody listens on any more). */
  finish(): void;
}

const NOTHING: Drain = { finish: () => undefined };

/**
 * How the sentinel ended: a child answered it, a child (or the end of the listener) closed it, /proc/net
 * shows it accepted (or the queue empty), no child in time, nobody listening, a second stop signal.
 */
export type SentinelOutcome = 'answered' | 'closed' | 'taken' | 'timeout' | 'refused' | 'aborted';

export async function drainAcceptQueue(context: DrainContext, abort: AbortSignal): Promise<Drain> {
  const { socket, spec, logger } = context;
  if (context.activated) {
    logger.debug('drain', 'socket passed by systemd: its queue stays for the next instance');
    return NOTHING;
  }
  if (context.liveChildren() === 0) return NOTHING;
  if (socket.filePath !== undefined) return drainUnix(context, socket.filePath, abort);
  if (spec?.kind === 'tcp') return drainTcp(context, spec, abort);
  return NOTHING;
}

async function drainUnix(context: DrainContext, filePath: string, abort: AbortSignal): Promise<Drain> {
  const { logger, socket } = context;
  const privatePath = join(dirname(filePath), `.${basename(filePath)}.drain-${process.pid}`);
  try {
    // Only our own socket: a path that now names another instance's socket is left alone.
    if (lstatSync(filePath).ino !== socket.inode) {
      logger.warn('drain', `${filePath} is no longer the socket this pool bound: not draining it`);
      return NOTHING;
    }
    renameSync(filePath, privatePath);
  } catch (error) {
    logger.warn('drain', `cannot take ${filePath} away before stopping (${(error as Error).message}): queued connections may be reset`);
    return NOTHING;
  }
  const connect = shortPathTo(privatePath);
  const listener = inodeOf(socket.fd);
  let outcome: SentinelOutcome;
  try {
    // With the path gone nothing new arrives: an empty queue (the sentinel included) means everything was taken.
    const queueEmpty = listener === undefined ? undefined : () => unixQueueEmpty(listener);
    // Nothing queued now that the path is gone: nothing can be lost, and no sentinel has to wait for a child
    // (children that never accept, a crash-looping app, would make every stop wait the whole timeout).
    outcome = queueEmpty?.() === true ? 'taken' : await sendSentinel({ path: connect.path }, context.timeoutMs, abort, queueEmpty);
  } finally {
    connect.release();
  }
  report(logger, outcome, context.timeoutMs, `the accept queue of ${filePath}`);
  if (!context.keepSocket) {
    removeQuietly(privatePath);
    return NOTHING;
  }
  return {
    finish: () => {
      // A kept socket whose listener is gone refuses connects, as it does today; but never over a newer socket.
      if (exists(filePath)) removeQuietly(privatePath);
      else {
        try {
          renameSync(privatePath, filePath);
        } catch {
          removeQuietly(privatePath);
        }
      }
    },
  };
}

async function drainTcp(context: DrainContext, spec: Extract<SocketSpec, { kind: 'tcp' }>, abort: AbortSignal): Promise<Drain> {
  const host = spec.host === '0.0.0.0' ? '127.0.0.1' : spec.host === '::' ? '::1' : spec.host;
  const inode = inodeOf(context.socket.fd);
  const queued = inode === undefined ? null : tcpListenQueue(inode);
  // An empty queue when the stop begins: every connection made before it was already accepted.
  const outcome =
    queued === 0 ? 'taken' : await sendSentinel({ host, port: spec.port }, context.timeoutMs, abort, (localPort) => tcpAccepted(spec.port, localPort));
  report(context.logger, outcome, context.timeoutMs, `the accept queue of ${context.socket.label}${queued === null ? '' : ` (${queued} queued)`}`);
  return NOTHING;
}

function report(logger: Logger, outcome: SentinelOutcome, timeoutMs: number, what: string): void {
  if (outcome === 'answered' || outcome === 'closed' || outcome === 'taken') logger.info('drain', `children took ${what} before stopping`);
  else if (outcome === 'timeout') logger.warn('drain', `no child took ${what} within ${timeoutMs} ms: stopping anyway`);
  else if (outcome === 'refused') logger.debug('drain', `nobody listens on ${what.replace('the accept queue of ', '')} any more`);
}

type Target = { path: string } | { host: string; port: number };

/** A unix socket connect is refused with EAGAIN while the accept queue is full: retry this often. */
const FULL_QUEUE_RETRY_MS = 10;
/** How often /proc/net is read while the sentinel waits. */
const PROC_POLL_MS = 20;

/**
 * Connect behind everything queued, send FCGI_GET_VALUES, and close as soon as anything comes back:
 * php-cgi reads until its client closes before it accepts again.
 */
export function sendSentinel(
  target: Target,
  timeoutMs: number,
  abort: AbortSignal,
  accepted?: (localPort: number | undefined) => boolean,
): Promise<SentinelOutcome> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    let client: net.Socket | undefined;
    let retry: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    const done = (outcome: SentinelOutcome) => {
      clearTimeout(timer);
      clearTimeout(retry);
      clearInterval(poll);
      abort.removeEventListener('abort', onAbort);
      client?.destroy();
      client = undefined;
      resolve(outcome);
    };
    const onAbort = () => done('aborted');
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    if (abort.aborted) return done('aborted');
    abort.addEventListener('abort', onAbort);
    const attempt = () => {
      let connected = false;
      const c = 'path' in target ? net.connect({ path: target.path }) : net.connect({ host: target.host, port: target.port });
      client = c;
      c.once('connect', () => {
        connected = true;
        c.write(getValuesRecord());
        if (accepted !== undefined)
          poll = setInterval(() => {
            if (accepted(c.localPort)) done('taken');
          }, PROC_POLL_MS);
      });
      c.once('data', () => done('answered'));
      c.once('end', () => done('closed'));
      c.once('error', (error: NodeJS.ErrnoException) => {
        if (connected) return done('closed');
        if (error.code === 'EAGAIN' && Date.now() < deadline) {
          c.destroy();
          retry = setTimeout(attempt, FULL_QUEUE_RETRY_MS);
          return;
        }
        done('refused');
      });
    };
    attempt();
  });
}

/**
 * /proc/net/unix lists a connection waiting in an accept queue with inode 0 and the listener's bound path
 * (the address it was bound with, whatever the file is called now); accept gives it an inode.
 */
export function unixQueueEmpty(listenerInode: number): boolean {
  const rows = readRows('/proc/net/unix')
    .map((line) => /^\S+: \S+ \S+ \S+ \S+ \S+ +(\d+)(?: (.*))?$/.exec(line))
    .filter((m) => m !== null);
  const path = rows.find((m) => m[1] === String(listenerInode))?.[2];
  if (path === undefined) return false;
  return !rows.some((m) => m[1] === '0' && m[2] === path);
}

/** The listener's side of the sentinel's TCP connection has an inode once a child has accepted it. */
export function tcpAccepted(listenPort: number, sentinelPort: number | undefined): boolean {
  if (sentinelPort === undefined) return false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readRows(file)) {
      const fields = line.trim().split(/\s+/);
      if (portOf(fields[1]) === listenPort && portOf(fields[2]) === sentinelPort) return fields[9] !== '0';
    }
  }
  return false;
}

const portOf = (address: string | undefined): number => parseInt(address?.split(':')[1] ?? '', 16);

function readRows(file: string): string[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(1)
      .filter((line) => line !== '');
  } catch {
    return [];
  }
}

/** sun_path holds 107 bytes and a NUL: a longer private name is reached through a short symlink. */
function shortPathTo(path: string): { path: string; release(): void } {
  if (Buffer.byteLength(path) <= 107) return { path, release: () => undefined };
  const dir = mkdtempSync(join(tmpdir(), 'sfts-drain-'));
  const link = join(dir, 's');
  symlinkSync(path, link);
  return { path: link, release: () => rmSync(dir, { recursive: true, force: true }) };
}

/** fstat of a socket descriptor gives the socket inode that /proc/net/tcp shows. */
function inodeOf(fd: number): number | undefined {
  try {
    return fstatSync(fd).ino;
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}
