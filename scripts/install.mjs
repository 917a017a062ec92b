#!/usr/bin/env node
// npm's install script (also what `npm rebuild spawn-fcgi-ts` runs). The package ships prebuilt, static
// native programs for linux-x64 and linux-arm64, so this normally checks them and does nothing. Only when
// none can run here (another architecture, a damaged file) does it compile them from src/native/ with the
// machine's C compiler. In a git checkout (no dist/ yet) it leaves the work to `prepare` (npm run build).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const checker = new URL('../dist/helper-binary.mjs', import.meta.url);
if (!existsSync(checker)) process.exit(0);

const { binaryProblem, nativeBinaryPath } = await import(checker.href);
const problems = () => ['spawn-fcgi-ts-helper', 'spawn-fcgi-ts-notify']
  .map((name) => ({ path: nativeBinaryPath(name), problem: binaryProblem(nativeBinaryPath(name)) }))
  .filter(({ problem }) => problem !== undefined);

const before = problems();
if (before.length === 0) process.exit(0);
for (const { path, problem } of before) console.error(`spawn-fcgi-ts: no prebuilt native program for linux-${process.arch}: ${path} is ${problem}; compiling it`);
const built = spawnSync('sh', [`${root}scripts/build-helper.sh`, '--force'], { cwd: root, stdio: 'inherit' });
const after = built.status === 0 ? problems() : before;
if (after.length > 0) {
  // Not fatal: the command refuses to start with the same reason, and `npm rebuild spawn-fcgi-ts` retries.
  console.error(`spawn-fcgi-ts: WARNING: no native helper for linux-${process.arch}; install a C compiler (e.g. apt-get install gcc libc6-dev) and run 'npm rebuild spawn-fcgi-ts'`);
}
