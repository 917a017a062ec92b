import { accessSync, constants, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { SetupError, errnoText } from '../common/errors.js';

export interface AppLocation {
  /** The path execv gets: absolute, as the child sees it (inside the chroot, if any). */
  path: string;
}

/**
 * Finds the application before anything is bound or forked, so that "not found" is one clear error
 * and not N crashing children. Unlike spawn-fcgi (plain execv), a bare name is looked up on PATH.
 * With a chroot the lookup happens inside it; a relative path is taken from -d (inside the chroot) or the cwd.
 */
export function locateApp(name: string, { chroot, chdir, searchPath }: { chroot?: string; chdir?: string; searchPath: string }): AppLocation {
  const root = chroot ?? '/';
  if (chroot !== undefined) checkChroot(chroot);
  const outside = (inner: string) => (chroot === undefined ? inner : join(root, inner));
  if (name.includes('/')) {
    const base = chdir !== undefined ? resolve(chroot === undefined ? process.cwd() : '/', chdir) : chroot === undefined ? process.cwd() : '/';
    const path = isAbsolute(name) ? name : resolve(base, name);
    checkExecutable(name, outside(path));
    return { path };
  }
  for (const dir of searchPath.split(':').filter((d) => isAbsolute(d))) {
    const path = join(dir, name);
    if (isExecutableFile(outside(path))) return { path };
  }
  const where = chroot === undefined ? 'PATH' : `PATH inside the chroot '${chroot}'`;
  throw new SetupError(`can't find FastCGI application '${name}' on ${where}`);
}

/** The helper would fail the same way in every child; say it once, up front, in spawn-fcgi's words. */
function checkChroot(chroot: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(chroot).isDirectory();
  } catch (error) {
    throw new SetupError(`chroot('${chroot}') failed: ${errnoText(error)}`);
  }
  if (!isDirectory) throw new SetupError(`chroot('${chroot}') failed: Not a directory`);
}

function isExecutableFile(path: string): boolean {
  try {
    return statSync(path).isFile() && (accessSync(path, constants.X_OK), true);
  } catch {
    return false;
  }
}

function checkExecutable(name: string, path: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new SetupError(`FastCGI application '${name}' not found: ${path} does not exist`);
  }
  if (!isFile) throw new SetupError(`FastCGI application '${name}' is not a regular file`);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new SetupError(`FastCGI application '${name}' is not executable`);
  }
}
