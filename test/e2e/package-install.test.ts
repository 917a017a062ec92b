/**
 * The npm package as users get it: `npm pack` (the build is already there: the suite builds first, so the
 * pack skips its scripts), then `npm i -g --prefix $P` of the tarball into a fresh prefix, offline and
 * without lifecycle scripts (npm runs none for a registry tarball that has no install script). Then the
 * installed command: `-v`, its man page, a pool that answers a FastCGI request, a read-only install run
 * by another user, and the same command with its helper made unrunnable.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fcgiGet, RESPONDER, requireBuild, ROOT, track, untrack, type Exit } from '../helpers/pool.js';
import { removePath, tmpDir, waitFor } from '../helpers/proc.js';

const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const OTHER_ARCH = process.arch === 'x64' ? 'arm64' : 'x64';
const hasCommand = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
const CROSS_BUILT = existsSync(join(ROOT, 'build', OTHER_ARCH, 'spawn-fcgi-ts-helper'));

let work = '';
let tarball = '';
let prefix = '';
let installed = '';
let command = '';

function npm(args: string[], cwd = work): string {
  return execFileSync('npm', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
  });
}

interface Run extends Exit {
  stdout: string;
  stderr: string;
}

/** Run the installed command to completion (a bounded wait: it is killed after `timeoutMs`). */
async function run(args: string[], env: NodeJS.ProcessEnv = process.env, argv0 = command, timeoutMs = 20_000): Promise<Run> {
  const child = spawn(argv0, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child.pid!);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exit = await new Promise<Exit>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  clearTimeout(timer);
  untrack(child.pid!);
  return { ...exit, stdout, stderr };
}

before(() => {
  requireBuild();
  work = tmpDir('sfts-package');
  chmodSync(work, 0o755); // the read-only test runs the install as nobody
  // The build (npm test builds first) is what prepack would make: pack it as it is.
  const packed = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT)) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  tarball = join(work, packed[0]!.filename);
  prefix = join(work, 'prefix');
  npm(['install', '--global', '--offline', '--ignore-scripts', '--no-audit', '--prefix', prefix, tarball]);
  installed = join(prefix, 'lib', 'node_modules', 'spawn-fcgi-ts');
  command = join(prefix, 'bin', 'spawn-fcgi-ts');
});
after(() => removePath(work));

describe('the tarball', () => {
  test('holds the run-time files only', () => {
    const files = (JSON.parse(npm(['pack', '--dry-run', '--ignore-scripts', '--json'], ROOT)) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map(
      (f) => f.path,
    );
    for (const needed of [
      'dist/cli.cjs',
      'dist/main.cjs',
      'dist/THIRD-PARTY-NOTICES',
      'LICENSE',
      'README.md',
      'man/spawn-fcgi-ts.1',
      `build/${process.arch}/spawn-fcgi-ts-helper`,
      `build/${process.arch}/spawn-fcgi-ts-notify`,
      'scripts/spawn-php.sh',
      'scripts/init.d/spawn-fcgi-ts',
      'scripts/systemd/spawn-fcgi-ts@.service',
      'examples/hello-fcgi.mjs',
      'src/native/helper.c',
      'scripts/build-helper.sh',
    ]) {
      assert.ok(files.includes(needed), `${needed} missing from the tarball`);
    }
    if (CROSS_BUILT || hasCommand('aarch64-linux-gnu-gcc'))
      assert.ok(files.includes(`build/${OTHER_ARCH}/spawn-fcgi-ts-helper`), `build/${OTHER_ARCH} missing`);
    const unwanted = files.filter((path) =>
      /^test\/|^bench|^scripts\/(bench|test\.sh|build\.mjs|demo\.mjs)|^src\/(?!native\/)|static-responder|\.ts$|^build\/spawn-fcgi-ts-/.test(path),
    );
    assert.deepEqual(unwanted, []);
  });

  test('declares no run-time dependencies, and the platforms the helpers are built for', () => {
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(manifest.dependencies ?? {}, {});
    assert.deepEqual(manifest.os, ['linux']);
    assert.deepEqual(manifest.cpu, ['x64', 'arm64']);
    assert.equal(existsSync(join(installed, 'node_modules')), false, 'nothing installed besides the package');
  });

  test('carries the licences of the bundled code', () => {
    const notices = readFileSync(join(installed, 'dist', 'THIRD-PARTY-NOTICES'), 'utf8');
    for (const name of ['yargs', 'execa', 'chalk', 'pidusage']) assert.match(notices, new RegExp(`^${name} \\d+\\.\\d+\\.\\d+ \\(`, 'm'));
    assert.match(readFileSync(join(installed, 'LICENSE'), 'utf8'), /^MIT License/);
  });
});

describe('the installed command', () => {
  test('-v', async () => {
    const result = await run(['-v']);
    assert.deepEqual([result.code, result.stdout, result.stderr], [0, `spawn-fcgi-ts v${version} (ipv6) - spawns FastCGI processes\n`, '']);
  });

  test('man finds its page in the prefix', { skip: hasCommand('man') ? false : 'no man (apt-get install man-db)' }, () => {
    const where = execFileSync('man', ['-w', 'spawn-fcgi-ts'], { encoding: 'utf8', env: { ...process.env, MANPATH: join(prefix, 'share', 'man') } }).trim();
    // npm links the page into the prefix; man -w shows the link's target.
    assert.equal(realpathSync(where), realpathSync(join(prefix, 'share', 'man', 'man1', 'spawn-fcgi-ts.1')));
    assert.ok(where.startsWith(`${prefix}/`), where);
    const page = execFileSync('man', ['-M', join(prefix, 'share', 'man'), '-P', 'cat', 'spawn-fcgi-ts'], {
      encoding: 'utf8',
      env: { ...process.env, MANWIDTH: '80' },
    });
    assert.match(page, /spawn-fcgi-ts/);
  });

  test('a pool answers a FastCGI request, reports its status, and stops on SIGTERM with status 0', { timeout: 60_000 }, async () => {
    const socket = join(work, 'pool.sock');
    const child = spawn(command, ['-n', '-s', socket, '-F', '2', '--', RESPONDER], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child.pid!);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdout.resume();
    const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    await waitFor(() => /2 children serving on /.test(stderr), { timeoutMs: 20_000, what: `the installed pool to serve (stderr: ${stderr})` });
    const answer = await fcgiGet({ path: socket }, { QUERY_STRING: '' });
    assert.match(answer.body, /^pid=\d+$/m);
    // status samples CPU and RSS with pidusage, imported lazily: it must be in the bundle, not a dependency.
    const status = await run(['status', '-s', socket, '--json']);
    assert.equal(status.code, 0, status.stderr);
    const slots = (JSON.parse(status.stdout) as { slots: Array<{ rssBytes: number | null }> }).slots;
    assert.equal(slots.length, 2);
    assert.ok(
      slots.every((slot) => typeof slot.rssBytes === 'number' && slot.rssBytes > 0),
      status.stdout,
    );
    process.kill(child.pid!, 'SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null });
    untrack(child.pid!);
  });

  test('a read-only install run by another user starts without errors (code cache not writable)', {
    timeout: 30_000,
    skip: process.getuid?.() === 0 ? false : 'needs root',
  }, async () => {
    // Make V8 reject the shipped cache (as after a Node.js upgrade): the loader may not rewrite it and must stay quiet.
    const cache = join(installed, 'dist', 'main.cjs.cache');
    const original = readFileSync(cache);
    writeFileSync(cache, Buffer.from('not a V8 code cache'));
    try {
      for (const path of [work, prefix, join(prefix, 'lib'), join(prefix, 'lib', 'node_modules')]) chmodSync(path, 0o755);
      const result = await run(['nobody', '-s', '/bin/sh', '-c', `"$0" -v`, command], process.env, 'runuser', 20_000);
      assert.deepEqual([result.code, result.stdout, result.stderr], [0, `spawn-fcgi-ts v${version} (ipv6) - spawns FastCGI processes\n`, '']);
      assert.equal(readFileSync(cache, 'utf8'), 'not a V8 code cache', 'nobody must not have rewritten the cache');
    } finally {
      writeFileSync(cache, original);
    }
  });

  test('with its helper made unrunnable: one line naming the platform and the fix, exit 255', { timeout: 60_000 }, async () => {
    const helper = join(installed, 'build', process.arch, 'spawn-fcgi-ts-helper');
    const original = readFileSync(helper);
    const other = join(installed, 'build', OTHER_ARCH, 'spawn-fcgi-ts-helper');
    const cases: Array<[string, () => void, string]> = [
      [
        `the ${OTHER_ARCH} build`,
        () => {
          if (existsSync(other)) copyFileSync(other, helper);
          else
            writeFileSync(helper, Buffer.concat([original.subarray(0, 18), Buffer.from(OTHER_ARCH === 'arm64' ? [183, 0] : [62, 0]), original.subarray(20)]));
        },
        `an ELF executable for ${OTHER_ARCH}, not ${process.arch}`,
      ],
      ['garbage', () => writeFileSync(helper, '#!/bin/sh\n"unterminated\n'), 'a script, not a native program'],
    ];
    try {
      for (const [name, breakIt, what] of cases) {
        breakIt();
        assert.ok(statSync(helper).mode & 0o111, 'still executable');
        for (const mode of [['-n'], []]) {
          const socket = join(work, 'broken.sock');
          const result = await run([...mode, '-s', socket, '--', RESPONDER]);
          const lines = result.stderr.split('\n').filter((line) => line !== '' && !line.includes('runs as root'));
          const expected = `spawn-fcgi-ts: no native helper for linux-${process.arch}: ${helper} is ${what}; rebuild it with 'sh ${join(installed, 'scripts', 'build-helper.sh')} --force' (needs a C compiler)`;
          assert.deepEqual({ code: result.code, lines }, { code: 255, lines: [expected] }, `${name} ${mode.join(' ') || '(daemon mode)'}`);
          assert.equal(existsSync(socket), false);
        }
      }
    } finally {
      writeFileSync(helper, original);
    }
  });
});

test('the install has the files the README tells users to run', () => {
  const scripts = readdirSync(join(installed, 'scripts'));
  for (const name of ['spawn-php.sh', 'spawn-php.conf.example', 'init.d', 'systemd']) assert.ok(scripts.includes(name), name);
});
