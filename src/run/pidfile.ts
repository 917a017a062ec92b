import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SetupError, errnoText } from '../common/errors.js';

/**
 * Checks that the PID file can be written, without touching it: unlike spawn-fcgi, a start that fails
 * later (socket in use...) leaves a running instance's PID file intact. The final component must not be
 * a symlink; the directories above it may be (/var/run -> /run), as with spawn-fcgi.
 */
export function checkPidFile(path: string): void {
  if (path.includes('\uFFFD')) throw new SetupError(`the PID-file path '${path}' is not valid UTF-8: use a UTF-8 path`);
  try {
    if (!lstatSync(path).isFile()) throw new SetupError(`PID-file exists and isn't regular file: '${path}'`);
    return;
  } catch (error) {
    if (error instanceof SetupError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new SetupError(`stating PID-file '${path}' failed: ${errnoText(error)}`);
  }
  try {
    if (!statSync(dirname(path)).isDirectory()) throw new SetupError(`opening PID-file '${path}' failed: Not a directory`);
  } catch (error) {
    if (error instanceof SetupError) throw error;
    throw new SetupError(`opening PID-file '${path}' failed: ${errnoText(error)}`);
  }
}

/**
 * Written once the pool serves: a new file under an unguessable name (O_EXCL|O_NOFOLLOW: never an
 * existing file, never through a planted link), synced, then renamed over the path, so readers never
 * see it half-written and nobody else can have opened it.
 */
export function writePidFile(path: string, pid: number): void {
  const temporary = join(dirname(path), `.${basename(path)}.${randomHex(12)}.tmp`);
  let created = false;
  try {
    const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    created = true;
    try {
      fchmodSync(fd, 0o644); // whatever the umask: readable by the tools that read PID files
      writeSync(fd, `${pid}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    if (created)
      try {
        unlinkSync(temporary);
      } catch {
        /* renamed or removed */
      }
    throw new SetupError(`writing pid file failed: ${errnoText(error)}`);
  }
}

/** Remove the PID file at exit if it is still a regular file that names this process (read without following a link). */
export function removePidFile(path: string, pid: number): void {
  try {
    if (readOwnPidFile(path)?.trim() === String(pid)) unlinkSync(path);
  } catch {
    // Gone already, or replaced by someone else's.
  }
}

/** The text of a regular file at `path`, opened with O_NOFOLLOW|O_NONBLOCK (a FIFO cannot block us). */
function readOwnPidFile(path: string): string | undefined {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buffer = Buffer.alloc(64);
    const length = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export function readPidFile(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim().split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `bytes` random bytes from the kernel, in hex: what crypto.randomBytes gives, without loading node:crypto
 * (a dozen internal modules, ~3 ms of every start) for one file name.
 */
function randomHex(bytes: number): string {
  const buffer = Buffer.alloc(bytes);
  const fd = openSync('/dev/urandom', constants.O_RDONLY);
  try {
    if (readSync(fd, buffer, 0, bytes, null) !== bytes) throw new Error('short read from /dev/urandom');
  } finally {
    closeSync(fd);
  }
  return buffer.toString('hex');
}
