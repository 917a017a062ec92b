import { lstatSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { SetupError, errnoText } from './errors.js';

/**
 * Checks that the PID file can be written, without touching it: unlike spawn-fcgi, a start that fails
 * later (socket in use...) leaves a running instance's PID file intact.
 */
export function checkPidFile(path: string): void {
  try {
    if (!lstatSync(path).isFile()) throw new SetupError(`PID-file exists and isn't regular file: '${path}'`);
    return;
  } catch (error) {
    if (error instanceof SetupError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new SetupError(`stating PID-file '${path}' failed: ${errnoText(error)}`);
  }
  try {
    if (!lstatSync(dirname(path)).isDirectory()) throw new SetupError(`opening PID-file '${path}' failed: Not a directory`);
  } catch (error) {
    if (error instanceof SetupError) throw error;
    throw new SetupError(`opening PID-file '${path}' failed: ${errnoText(error)}`);
  }
}

/** Written once the pool serves: a temporary file renamed over the path, so readers never see it half-written. */
export function writePidFile(path: string, pid: number): void {
  const temporary = `${path}.${pid}.tmp`;
  try {
    writeFileSync(temporary, `${pid}\n`, { mode: 0o644 });
    renameSync(temporary, path);
  } catch (error) {
    try { unlinkSync(temporary); } catch { /* never created */ }
    throw new SetupError(`writing pid file failed: ${errnoText(error)}`);
  }
}

/** Remove the PID file at exit if it still names this process. */
export function removePidFile(path: string, pid: number): void {
  try {
    if (readFileSync(path, 'utf8').trim() === String(pid)) unlinkSync(path);
  } catch {
    // Gone already, or replaced by someone else's.
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
