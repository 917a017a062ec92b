import { chmodSync, chownSync, closeSync, lstatSync, unlinkSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { join } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { SetupError, errnoText } from './errors.js';
import type { SocketSpec } from './options.js';
import type { SocketOwner } from './identity.js';

/**
 * A socket bound for the children. The supervisor never calls listen(2) on it and never watches it:
 * each child's helper listens on its fd 0, and only the children accept. It is never closed either:
 * libuv's close of a unix handle unlinks the path, which by then may be another instance's socket
 * (or one --keep-socket wants kept); the descriptor goes away with the process.
 */
export interface BoundSocket {
  fd: number;
  /** Human form: the path, `@name`, or `host:port`. */
  label: string;
  /** The socket file on disk (unix, not abstract), for removal at stop. */
  filePath?: string;
  inode?: number;
  /** What it is bound to, when known: for a socket passed by systemd, read back from /proc. */
  spec?: SocketSpec;
}

export interface BindOptions {
  /** `-M`; undefined: 0660 & ~umask. */
  mode?: number;
  owner?: SocketOwner;
  chroot?: string;
  bindBeforeChroot: boolean;
}

interface ServerHandle { fd: number; close(callback?: () => void): void; getsockname?(out: object): number }
type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number, flags?: number) => ServerHandle | number;

/**
 * Node's bind-without-listen primitive, used by cluster's SharedHandle (lib/internal/cluster/shared_handle.js).
 * It is undocumented: this module is its only user, and test/unit/socket-primitive.test.ts fails if Node drops it.
 */
export function createServerHandle(address: string | null, port: number, addressType: number): ServerHandle | number {
  const create = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;
  if (typeof create !== 'function') throw new Error('this Node.js has no net._createServerHandle: spawn-fcgi-ts cannot bind without listening');
  return create(address, port, addressType);
}

const PROBE_TIMEOUT_MS = 1000;

/** Is something answering on this unix socket? Refused or missing means stale; anything else counts as alive. */
export function probeUnixSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const client = net.connect({ path });
    const done = (alive: boolean) => { client.destroy(); clearTimeout(timer); resolve(alive); };
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    client.once('connect', () => done(true));
    client.once('error', (error: NodeJS.ErrnoException) => done(!['ECONNREFUSED', 'ENOENT', 'ENOTSOCK'].includes(error.code ?? '')));
  });
}

export async function bindSocket(spec: SocketSpec, options: BindOptions): Promise<BoundSocket> {
  return spec.kind === 'unix' ? bindUnix(spec.path, spec.abstract, options) : bindTcp(spec.host, spec.port);
}

/** The path the socket file has in the supervisor's view: inside the chroot unless -S. */
export function socketFilePath(path: string, options: Pick<BindOptions, 'chroot' | 'bindBeforeChroot'>): string {
  return options.chroot !== undefined && !options.bindBeforeChroot ? join(options.chroot, path) : path;
}

async function bindUnix(path: string, abstract: boolean, options: BindOptions): Promise<BoundSocket> {
  if (abstract) {
    // libuv (Node 20) binds an abstract name padded with NUL bytes to the full sun_path: nginx, libfcgi,
    // PHP or Python clients, which use the exact name, would be refused. systemd binds it exactly.
    throw new SetupError(`cannot bind the abstract socket '${path}' exactly on this Node.js: let systemd pass it (ListenStream=${path} in a .socket unit, or systemd-socket-activate -l ${path})`);
  }
  const filePath = socketFilePath(path, options);
  await removeStaleSocket(filePath);
  // Bind under a tight umask so the file is never, even briefly, wider than asked; chmod sets the real mode.
  const umask = process.umask(0o177);
  let handle: ServerHandle;
  try {
    handle = bindHandle(filePath, -1, -1);
  } finally {
    process.umask(umask);
  }
  try {
    chmodSync(filePath, options.mode ?? (0o660 & ~umask));
  } catch (error) {
    discard(handle, filePath);
    throw new SetupError(`couldn't chmod socket: ${errnoText(error)}`);
  }
  const { uid, gid } = options.owner ?? {};
  if (uid !== undefined || gid !== undefined) {
    try {
      chownSync(filePath, uid ?? -1, gid ?? -1);
    } catch (error) {
      discard(handle, filePath);
      throw new SetupError(`couldn't chown socket: ${errnoText(error)}`);
    }
  }
  return keep(handle, { fd: handle.fd, label: path, filePath, inode: lstatSync(filePath).ino });
}

/** spawn-fcgi's probe-then-unlink, except that a path that is not a socket is never removed. */
async function removeStaleSocket(filePath: string): Promise<void> {
  let stats;
  try {
    stats = lstatSync(filePath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new SetupError(`removing old socket failed: ${errnoText(error)}`);
  }
  if (!stats.isSocket()) {
    const what = stats.isDirectory() ? 'a directory' : stats.isFile() ? 'a regular file' : 'not a socket';
    throw new SetupError(`refusing to remove '${filePath}': it is ${what}, not a socket`);
  }
  if (await probeUnixSocket(filePath)) throw new SetupError("socket is already in use, can't spawn");
  try {
    unlinkSync(filePath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new SetupError(`removing old socket failed: ${errnoText(error)}`);
  }
}

async function bindTcp(host: string, port: number): Promise<BoundSocket> {
  let address = host;
  let family = net.isIP(host);
  if (family === 0) {
    try {
      ({ address, family } = await lookup(host));
    } catch {
      throw new SetupError(`'${host}' is not a valid IP address`);
    }
  }
  // libuv sets SO_REUSEADDR on every TCP bind, as spawn-fcgi does.
  const handle = bindHandle(address, port, family);
  const label = family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
  return keep(handle, { fd: handle.fd, label });
}

function bindHandle(address: string, port: number, family: number): ServerHandle {
  const handle = createServerHandle(address, port, family);
  if (typeof handle === 'number') {
    const code = getSystemErrorName(handle);
    if (code === 'EADDRINUSE' && port === -1) throw new SetupError("socket is already in use, can't spawn");
    throw new SetupError(`bind failed: ${errnoText({ code })}`);
  }
  // libuv holds back a TCP bind's EADDRINUSE until listen(2), which only the children call: left
  // unnoticed, the socket stays unbound and a child's listen() binds it to a random port on 0.0.0.0.
  const deferred = port === -1 ? 0 : handle.getsockname?.({}) ?? 0;
  if (deferred !== 0) {
    handle.close();
    throw new SetupError(`bind failed: ${errnoText({ code: getSystemErrorName(deferred) })}`);
  }
  return handle;
}

/**
 * Close our copy of the socket once the children have been told to stop: the listening socket then
 * closes with the last child, so later connects are refused (a web server retries them elsewhere)
 * instead of queueing until the supervisor exits and being reset. Not through libuv, whose close would
 * unlink a unix path.
 */
export function releaseSocket(socket: BoundSocket): void {
  try {
    closeSync(socket.fd);
  } catch {
    // Already closed.
  }
}

/** Bound handles stay referenced for the life of the process, so that no garbage collection closes them. */
const liveHandles: ServerHandle[] = [];
function keep(handle: ServerHandle, socket: BoundSocket): BoundSocket {
  liveHandles.push(handle);
  return socket;
}

function discard(handle: ServerHandle, filePath: string): void {
  handle.close();
  try { unlinkSync(filePath); } catch { /* already gone */ }
}

/** Remove the socket file at stop, but only if it is still the one we bound (same inode). */
export function removeSocketFile(socket: BoundSocket): boolean {
  if (socket.filePath === undefined) return false;
  try {
    if (lstatSync(socket.filePath).ino !== socket.inode) return false;
    unlinkSync(socket.filePath);
    return true;
  } catch {
    return false;
  }
}
