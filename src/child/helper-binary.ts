import { closeSync, constants, openSync, readSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The native programs (the exec helper, the sd_notify sender) ship prebuilt and static, one per
 * architecture: build/<process.arch>/<name>, in the package's root (next to dist/ and src/).
 */
export function nativeBinaryPath(name: string, arch: string = process.arch): string {
  return fileURLToPath(new URL(`build/${arch}/${name}`, packageRoot()));
}

/**
 * The package's root (build/, scripts/): the parent of the nearest dist/ or src/ above this module. The
 * bundle runs from dist/, the sources from src/ or one of its concern folders, so the depth is not fixed.
 */
function packageRoot(): URL {
  const here = new URL('.', import.meta.url);
  const parts = here.pathname.split('/');
  const top = Math.max(parts.lastIndexOf('dist'), parts.lastIndexOf('src'));
  return top > 0 ? new URL(`${parts.slice(0, top).join('/')}/`, here) : new URL('../', import.meta.url);
}

/** The exec helper: $SPAWN_FCGI_TS_HELPER of `env`, else the build for this machine. */
export function helperPath(env: NodeJS.ProcessEnv): string {
  const fromEnv = env.SPAWN_FCGI_TS_HELPER;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return nativeBinaryPath('spawn-fcgi-ts-helper');
}

/** ELF e_machine values, by Node's process.arch names. */
const ELF_MACHINES: Record<string, number> = { x64: 62, arm64: 183, ia32: 3, arm: 40, ppc64: 21, s390x: 22, riscv64: 243, loong64: 258 };
const machineName = (machine: number): string => Object.keys(ELF_MACHINES).find((arch) => ELF_MACHINES[arch] === machine) ?? `machine ${machine}`;

/**
 * Why the program at `path` cannot run on this machine, or undefined when it can: it must exist, be an
 * executable regular file, and be an ELF executable for this architecture (read from its header: cheap,
 * nothing is spawned). A dynamically linked build also needs its ELF interpreter (e.g. glibc's on musl).
 */
export function binaryProblem(path: string, arch: string = process.arch): string | undefined {
  let fd: number;
  try {
    if (!statSync(path).isFile()) return 'not a regular file';
    fd = openSync(path, constants.O_RDONLY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'missing' : `unreadable (${code ?? (error as Error).message})`;
  }
  const header = Buffer.alloc(64);
  let length: number;
  try {
    length = readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (length < 4 || header.toString('latin1', 0, 4) !== '\x7fELF') {
    return header.toString('latin1', 0, 2) === '#!' ? 'a script, not a native program' : 'not an ELF executable';
  }
  if (length < 20) return 'a truncated ELF file';
  const littleEndian = header[5] === 1;
  const machine = littleEndian ? header.readUInt16LE(18) : header.readUInt16BE(18);
  const expected = ELF_MACHINES[arch];
  if (expected !== undefined && machine !== expected) return `an ELF executable for ${machineName(machine)}, not ${arch}`;
  if (header[4] !== 2 && (arch === 'x64' || arch === 'arm64')) return 'a 32-bit ELF executable';
  const interpreter = elfInterpreter(path, header, littleEndian);
  if (interpreter !== undefined) {
    try {
      statSync(interpreter);
    } catch {
      return `dynamically linked against ${interpreter}, which this system lacks`;
    }
  }
  try {
    if ((statSync(path).mode & 0o111) === 0) return 'not executable';
  } catch {
    return 'missing';
  }
  return undefined;
}

/** The PT_INTERP path of a 64-bit ELF file, if any (a dynamically linked program's loader). */
function elfInterpreter(path: string, header: Buffer, littleEndian: boolean): string | undefined {
  if (header[4] !== 2) return undefined;
  const u16 = (buffer: Buffer, offset: number) => (littleEndian ? buffer.readUInt16LE(offset) : buffer.readUInt16BE(offset));
  const u64 = (buffer: Buffer, offset: number) => Number(littleEndian ? buffer.readBigUInt64LE(offset) : buffer.readBigUInt64BE(offset));
  const phoff = u64(header, 32);
  const phentsize = u16(header, 54);
  const phnum = u16(header, 56);
  if (phentsize < 56 || phnum === 0 || phnum > 256) return undefined;
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const table = Buffer.alloc(phentsize * phnum);
    if (readSync(fd, table, 0, table.length, phoff) < table.length) return undefined;
    for (let i = 0; i < phnum; i++) {
      const entry = i * phentsize;
      const PT_INTERP = 3;
      if ((littleEndian ? table.readUInt32LE(entry) : table.readUInt32BE(entry)) !== PT_INTERP) continue;
      const offset = u64(table, entry + 8);
      const size = Math.min(u64(table, entry + 32), 4096);
      const text = Buffer.alloc(size);
      readSync(fd, text, 0, size, offset);
      return text.toString('latin1').replace(/\0.*$/s, '');
    }
  } finally {
    closeSync(fd);
  }
  return undefined;
}

/**
 * The one-line reason no helper can run here, naming the fix; undefined when it can run. The package has
 * no install script (npm asks users to approve those), so the fix is the build script it ships.
 */
export function checkHelper(path: string, env: NodeJS.ProcessEnv): string | undefined {
  const problem = binaryProblem(path);
  if (problem === undefined) return undefined;
  const fromEnv = env.SPAWN_FCGI_TS_HELPER;
  const fix =
    fromEnv !== undefined && fromEnv !== ''
      ? 'point SPAWN_FCGI_TS_HELPER to a helper built for this machine, or unset it'
      : `rebuild it with 'sh ${fileURLToPath(new URL('scripts/build-helper.sh', packageRoot()))} --force' (needs a C compiler)`;
  return `no native helper for linux-${process.arch}: ${path} is ${problem}; ${fix}`;
}
