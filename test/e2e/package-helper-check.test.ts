/**
 * When no native helper can run on this machine, the command says so in one line before it binds
 * anything, and exits 255 (never 0), in the foreground and in daemon mode (which relays the reason):
 * a helper built for another architecture, a shell script, a truncated ELF file, a missing file, a file
 * that is not executable, a dynamically linked build whose ELF interpreter is absent (glibc's on musl).
 * Also: the shipped helpers are static ELF executables for their architecture, and the arm64 one runs
 * under qemu-user when it is installed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binaryProblem, nativeBinaryPath } from '../../src/child/helper-binary.js';
import { RESPONDER, requireBuild, runCli } from '../helpers/pool.js';
import { removePath, tmpDir } from '../helpers/proc.js';

const OTHER_ARCH = process.arch === 'x64' ? 'arm64' : 'x64';
const HOST_HELPER = nativeBinaryPath('spawn-fcgi-ts-helper');
const OTHER_HELPER = nativeBinaryPath('spawn-fcgi-ts-helper', OTHER_ARCH);
const CROSS_CC = OTHER_ARCH === 'arm64' ? 'aarch64-linux-gnu-gcc' : 'x86_64-linux-gnu-gcc';
const hasCommand = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;

let dir = '';
before(() => {
  requireBuild();
  dir = tmpDir('sfts-helper-check');
});
after(() => removePath(dir));

/** Every way a helper file can fail to run here, as [name, path maker, expected "is ..." text]. */
function brokenHelpers(): Array<[string, () => string, string]> {
  return [
    [
      'a build for the other architecture',
      () => {
        if (!existsSync(OTHER_HELPER)) {
          // No cross compiler here: fake one by patching e_machine of the host build.
          const fake = join(dir, 'other-arch');
          const bytes = readFileSync(HOST_HELPER);
          bytes.writeUInt16LE(OTHER_ARCH === 'arm64' ? 183 : 62, 18);
          writeFileSync(fake, bytes, { mode: 0o755 });
          return fake;
        }
        return OTHER_HELPER;
      },
      `an ELF executable for ${OTHER_ARCH}, not ${process.arch}`,
    ],
    [
      'a shell script with garbage',
      () => {
        const path = join(dir, 'script');
        writeFileSync(path, '#!/bin/sh\n"unterminated\n', { mode: 0o755 });
        return path;
      },
      'a script, not a native program',
    ],
    [
      'a truncated ELF file',
      () => {
        const path = join(dir, 'truncated');
        writeFileSync(path, readFileSync(HOST_HELPER).subarray(0, 10), { mode: 0o755 });
        return path;
      },
      'a truncated ELF file',
    ],
    [
      'random bytes',
      () => {
        const path = join(dir, 'garbage');
        writeFileSync(path, Buffer.from('this is not a program at all\n'), { mode: 0o755 });
        return path;
      },
      'not an ELF executable',
    ],
    ['a missing file', () => join(dir, 'nothing-here'), 'missing'],
    [
      'a file without execute permission',
      () => {
        const path = join(dir, 'not-executable');
        copyFileSync(HOST_HELPER, path);
        chmodSync(path, 0o644);
        return path;
      },
      'not executable',
    ],
    [
      'a dynamic build whose ELF interpreter is absent (a glibc build on musl)',
      () => {
        const path = join(dir, 'dynamic');
        const source = join(dir, 'dynamic.c');
        writeFileSync(source, 'int main(void) { return 0; }\n');
        execFileSync('cc', ['-o', path, source]);
        // Point PT_INTERP at a loader that does not exist, as on a musl system running a glibc build.
        const bytes = readFileSync(path);
        const at = Math.max(bytes.indexOf('/lib64/ld-linux-x86-64.so.2'), bytes.indexOf('/lib/ld-linux-aarch64.so.1'));
        assert.ok(at > 0, 'no glibc ELF interpreter path found in a dynamic build');
        bytes.write('/nonexistent-ld.so', at, 'latin1');
        bytes[at + '/nonexistent-ld.so'.length] = 0;
        writeFileSync(path, bytes, { mode: 0o755 });
        return path;
      },
      'dynamically linked against /nonexistent-ld.so, which this system lacks',
    ],
  ];
}

describe('an unrunnable helper: one clear line, exit 255, nothing bound', () => {
  for (const [name, make, what] of brokenHelpers()) {
    for (const foreground of [true, false]) {
      test(`${name} (${foreground ? '-n' : 'daemon mode'})`, { timeout: 30_000 }, async () => {
        const helper = make();
        const socket = join(dir, `s-${foreground ? 'n' : 'd'}`);
        const result = await runCli([...(foreground ? ['-n'] : []), '-s', socket, '--', RESPONDER], {
          env: { ...process.env, SPAWN_FCGI_TS_HELPER: helper },
        });
        assert.equal(result.code, 255, `exit status; stderr: ${result.stderr}`);
        const expected = `spawn-fcgi-ts: no native helper for linux-${process.arch}: ${helper} is ${what}; point SPAWN_FCGI_TS_HELPER to a helper built for this machine, or unset it`;
        const lines = result.stderr.split('\n').filter((line) => line !== '' && !line.includes('runs as root'));
        assert.deepEqual(lines, [expected]);
        assert.equal(result.stdout, '');
        assert.equal(existsSync(socket), false, 'the socket must not be bound');
      });
    }
  }
});

describe('the shipped helpers', () => {
  for (const name of ['spawn-fcgi-ts-helper', 'spawn-fcgi-ts-notify']) {
    test(`${name} for ${process.arch} is a static ELF executable for this machine`, () => {
      const path = nativeBinaryPath(name);
      assert.equal(binaryProblem(path), undefined);
      const header = execFileSync('readelf', ['-lh', path], { encoding: 'utf8' });
      assert.doesNotMatch(header, /INTERP|Requesting program interpreter/, `${path} must be linked statically`);
    });

    test(`${name} for ${OTHER_ARCH} is a static ELF executable for ${OTHER_ARCH}`, {
      skip: !hasCommand(CROSS_CC) && !existsSync(nativeBinaryPath(name, OTHER_ARCH)) ? `no ${CROSS_CC}` : false,
    }, () => {
      const path = nativeBinaryPath(name, OTHER_ARCH);
      assert.equal(binaryProblem(path, OTHER_ARCH), undefined);
      const header = execFileSync('readelf', ['-lh', path], { encoding: 'utf8' });
      assert.match(header, OTHER_ARCH === 'arm64' ? /Machine:\s+AArch64/ : /Machine:\s+Advanced Micro Devices X86-64/);
      assert.doesNotMatch(header, /INTERP/);
    });
  }

  test('the helper runs with no libc, loader or NSS file around it (an empty chroot)', { skip: process.getuid?.() === 0 ? false : 'needs root' }, () => {
    const jail = join(dir, 'jail');
    execFileSync('mkdir', ['-p', jail]);
    copyFileSync(HOST_HELPER, join(jail, 'helper'));
    chmodSync(join(jail, 'helper'), 0o755);
    // In the jail it drops to nobody with two supplementary groups, then fails to exec a missing program.
    const run = spawnSync('chroot', [jail, '/helper', '--gid', '65534', '--groups', '65534,100', '--uid', '65534', '--', '/nothing'], { encoding: 'utf8' });
    assert.equal(run.stderr, "exec('/nothing') failed: No such file or directory\n");
    assert.equal(run.status, 111);
  });

  test('the arm64 helper runs under qemu-user', {
    skip: process.arch !== 'x64' || !hasCommand('qemu-aarch64') ? 'needs x64 and qemu-aarch64 (apt-get install qemu-user)' : false,
  }, () => {
    // Its usage error: parsed its argv, wrote one line, exited 111: a working static aarch64 program.
    const run = spawnSync('qemu-aarch64', [nativeBinaryPath('spawn-fcgi-ts-helper', 'arm64'), '--groups', '1,2', '--gid', '2'], { encoding: 'utf8' });
    assert.equal(run.status, 111, run.stderr);
    assert.match(run.stderr, /^usage: spawn-fcgi-ts-helper \[/);
    const parsed = spawnSync('qemu-aarch64', [nativeBinaryPath('spawn-fcgi-ts-helper', 'arm64'), '--groups', 'x', '--gid', '2', '--', '/bin/true'], {
      encoding: 'utf8',
    });
    assert.equal(parsed.stderr, "usage: invalid --groups 'x'\n");
  });
});
