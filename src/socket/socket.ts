import { chmodSync, chownSync, closeSync, linkSync, lstatSync, mkdtempSync, readlinkSync, rmdirSync, statSync, unlinkSync, type Stats } from 'node:fs';
import net from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { getSystemErrorName } from 'node:util';
import { SetupError, errnoText } from '../common/errors.js';
import { MAX_UNIX_PATH_BYTES, type SocketSpec } from '../options/options.js';
import type { SocketOwner } from '../common/identity.js';

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
  device?: number;
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

interface ServerHandle {
  fd: number;
  close(callback?: () => void): void;
  getsockname?(out: object): number;
}
type CreateServerHandle = (address: string | null, port: number, addressType: number, fd?: number, flags?: number) => ServerHandle | number;

/**
 * Node's bind-without-listen primitive, used by cluster's SharedHandle (lib/internal/cluster/shared_handle.js).
 * It is undocumented: this module is its only user, and test/unit/socket/socket-primitive.test.ts fails if Node drops it.
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
    // A path longer than sun_path (a socket deep in a chroot) is reached by its name from inside its
    // directory: libuv issues connect(2) synchronously, so the cwd is restored before anything else runs.
    const long = Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES;
    const client = long
      ? inDirectory(
          dirname(path),
          (error) => new SetupError(`removing old socket failed: ${errnoText(error)}`),
          () => net.connect({ path: basename(path) }),
        )
      : net.connect({ path });
    const done = (alive: boolean) => {
      client.destroy();
      clearTimeout(timer);
      resolve(alive);
    };
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    client.once('connect', () => done(true));
    client.once('error', (error: NodeJS.ErrnoException) => done(!['ECONNREFUSED', 'ENOENT', 'ENOTSOCK'].includes(error.code ?? '')));
  });
}

export async function bindSocket(spec: SocketSpec, options: BindOptions): Promise<BoundSocket> {
  return spec.kind === 'unix' ? bindUnix(spec.path, spec.abstract, options) : bindTcp(spec.host, spec.port);
}

/**
 * The path the socket file has in the supervisor's view: inside the chroot unless -S. Inside the chroot
 * the directories are resolved the way the jail sees them (spawn-fcgi binds after chroot()): a symlink
 * `$JAIL/tmp -> /outside` leads to `$JAIL/outside`, and `..` stops at the jail's root.
 */
export function socketFilePath(path: string, options: Pick<BindOptions, 'chroot' | 'bindBeforeChroot'>): string {
  if (options.chroot === undefined || options.bindBeforeChroot) return resolve(path);
  return resolveInJail(resolve(options.chroot), path);
}

/** Max symlinks followed while resolving a path, as the kernel's MAXSYMLINKS. */
const MAX_SYMLINKS = 40;

/** `path` (absolute or relative to the jail's root) as a host path; the final component is not followed. */
export function resolveInJail(jail: string, path: string): string {
  const components = path.split('/').filter((c) => c !== '' && c !== '.');
  const name = components.pop() ?? '';
  let pending = components;
  let resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const component = pending.shift()!;
    if (component === '.') continue;
    if (component === '..') {
      resolved.pop();
      continue;
    }
    const hostPath = join(jail, ...resolved, component);
    let target: string | undefined;
    try {
      if (lstatSync(hostPath).isSymbolicLink()) target = readlinkSync(hostPath);
    } catch {
      // Missing: the bind reports it.
    }
    if (target === undefined) {
      resolved.push(component);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw new SetupError(`bind failed: ${errnoText({ code: 'ELOOP' })}`);
    if (target.startsWith('/')) resolved = [];
    pending = [...target.split('/').filter((c) => c !== ''), ...pending];
  }
  if (name === '..') resolved.pop();
  return join(jail, ...resolved, name === '..' ? '' : name);
}

async function bindUnix(path: string, abstract: boolean, options: BindOptions): Promise<BoundSocket> {
  if (abstract) {
    // libuv (Node 20) binds an abstract name padded with NUL bytes to the full sun_path: nginx, libfcgi,
    // PHP or Python clients, which use the exact name, would be refused. systemd binds it exactly.
    throw new SetupError(
      `cannot bind the abstract socket '${path}' exactly on this Node.js: let systemd pass it (ListenStream=${path} in a .socket unit, or systemd-socket-activate -l ${path})`,
    );
  }
  // Node decodes argv as UTF-8 and turns invalid bytes into U+FFFD: binding that would create another name.
  if (path.includes('\uFFFD')) throw new SetupError(`the Unix domain socket path '${path}' is not valid UTF-8: use a UTF-8 path`);
  const filePath = socketFilePath(path, options);
  checkDirectory(dirname(filePath));
  const stale = await findStaleSocket(filePath);
  const umask = process.umask(0o177);
  process.umask(umask);
  const staged = stageSocket(filePath, stale, options.mode ?? 0o660 & ~umask, options.owner ?? {});
  return keep(staged.handle, { fd: staged.handle.fd, label: path, filePath, inode: staged.ino, device: staged.dev });
}

/** libuv reports a missing directory as EACCES when binding a pipe: say what it is. */
function checkDirectory(directory: string): void {
  try {
    if (!statSync(directory).isDirectory()) throw new SetupError(`bind failed: ${errnoText({ code: 'ENOTDIR' })}`);
  } catch (error) {
    if (error instanceof SetupError) throw error;
    throw new SetupError(`bind failed: ${errnoText(error)}`);
  }
}

interface FileId {
  dev: number;
  ino: number;
}

/**
 * spawn-fcgi's probe before it unlinks, except that a path that is not a socket is never removed.
 * Returns the stale socket to replace, or undefined when the path is free.
 */
async function findStaleSocket(filePath: string): Promise<FileId | undefined> {
  let stats;
  try {
    stats = lstatSync(filePath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SetupError(`removing old socket failed: ${errnoText(error)}`);
  }
  if (!stats.isSocket()) throw new SetupError(`refusing to remove '${filePath}': it is ${fileKind(stats)}, not a socket`);
  if (await probeUnixSocket(filePath)) throw new SetupError("socket is already in use, can't spawn");
  return { dev: stats.dev, ino: stats.ino };
}

function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFile()) return 'a regular file';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  return 'of an unknown type';
}

/**
 * Bind, chmod and chown the socket inside a private directory (0700, root's) next to the final path,
 * where nobody else can swap it for a symlink, then link(2) it to the final name, which never replaces
 * an existing entry, so at no point is a path in a directory that others control chmod'ed, chown'ed or
 * followed. Binding a relative name from inside that directory also lifts sun_path's 107-byte limit
 * (a socket deep in a chroot). The cwd changes only inside synchronous sections.
 */
function stageSocket(filePath: string, stale: FileId | undefined, mode: number, owner: SocketOwner): { handle: ServerHandle } & FileId {
  const name = basename(filePath);
  const bindName = Buffer.byteLength(name) <= MAX_UNIX_PATH_BYTES ? name : 'socket';
  let privateDir: string;
  try {
    privateDir = mkdtempSync(join(dirname(filePath), `.${name.slice(0, 40)}.`));
  } catch (error) {
    throw new SetupError(`bind failed: ${errnoText(error)}`);
  }
  let ours: FileId;
  try {
    const stats = lstatSync(privateDir);
    if (!stats.isDirectory() || stats.uid !== process.getuid?.() || (stats.mode & 0o077) !== 0) throw new Error('replaced');
    ours = { dev: stats.dev, ino: stats.ino };
  } catch {
    throw new SetupError(`bind failed: the temporary directory '${privateDir}' was replaced while binding`);
  }
  const replaced = () => new SetupError(`bind failed: the temporary directory '${privateDir}' was replaced while binding`);
  try {
    return inDirectory(privateDir, replaced, () => {
      const here = statSync('.');
      if (here.dev !== ours.dev || here.ino !== ours.ino) throw replaced();
      // From here on the cwd is our private directory: nobody else can create, rename or replace in it.
      let handle: ServerHandle | undefined;
      try {
        // Bind under a tight umask so the file is never, even briefly, wider than asked; chmod sets the real mode.
        const umask = process.umask(0o177);
        try {
          handle = bindHandle(bindName, -1, -1);
        } finally {
          process.umask(umask);
        }
        try {
          chmodSync(bindName, mode);
        } catch (error) {
          throw new SetupError(`couldn't chmod socket: ${errnoText(error)}`);
        }
        if (owner.uid !== undefined || owner.gid !== undefined) {
          try {
            chownSync(bindName, owner.uid ?? -1, owner.gid ?? -1);
          } catch (error) {
            throw new SetupError(`couldn't chown socket: ${errnoText(error)}`);
          }
        }
        const bound = lstatSync(bindName);
        if (stale !== undefined) removeIfSame(filePath, stale);
        try {
          linkSync(bindName, filePath);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new SetupError(`refusing to replace '${filePath}': it appeared while binding`);
          throw new SetupError(`bind failed: ${errnoText(error)}`);
        }
        unlinkSync(bindName);
        return { handle, dev: bound.dev, ino: bound.ino };
      } catch (error) {
        if (handle !== undefined) {
          // Not handle.close(): libuv would unlink the bind name relative to whatever the cwd is then.
          try {
            closeSync(handle.fd);
          } catch {
            /* closed */
          }
          liveHandles.push(handle);
          try {
            unlinkSync(bindName);
          } catch {
            /* never bound */
          }
        }
        throw error;
      }
    });
  } finally {
    try {
      rmdirSync(privateDir);
    } catch {
      /* replaced by someone else's: theirs to remove */
    }
  }
}

/** Unlink the stale socket found by the probe, unless it has been replaced since (unlink never follows a link). */
function removeIfSame(filePath: string, stale: FileId): void {
  try {
    const now = lstatSync(filePath);
    if (now.dev !== stale.dev || now.ino !== stale.ino) return;
    unlinkSync(filePath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new SetupError(`removing old socket failed: ${errnoText(error)}`);
  }
}

/** Run `action` with the cwd set to `directory`, and restore the cwd before returning (synchronously). */
function inDirectory<T>(directory: string, failure: (error: unknown) => Error, action: () => T): T {
  let previous: string;
  try {
    previous = process.cwd();
  } catch {
    previous = '/'; // the cwd was removed; a daemon runs in / anyway
  }
  try {
    process.chdir(directory);
  } catch (error) {
    throw failure(error);
  }
  try {
    return action();
  } finally {
    process.chdir(previous);
  }
}

async function bindTcp(host: string, port: number): Promise<BoundSocket> {
  let address = host;
  let family = net.isIP(host);
  if (family === 0) {
    try {
      // Loaded here: a unix socket or a numeric address (the usual cases) needs no resolver at start-up.
      const { lookup } = process.getBuiltinModule('node:dns/promises') as typeof import('node:dns/promises');
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
  const deferred = port === -1 ? 0 : (handle.getsockname?.({}) ?? 0);
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

/** Remove the socket file at stop, but only if it is still the one we bound (same device and inode). */
export function removeSocketFile(socket: BoundSocket): boolean {
  if (socket.filePath === undefined) return false;
  try {
    const stats = lstatSync(socket.filePath);
    if (stats.ino !== socket.inode || (socket.device !== undefined && stats.dev !== socket.device)) return false;
    unlinkSync(socket.filePath);
    return true;
  } catch {
    return false;
  }
}
