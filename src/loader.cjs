#!/usr/bin/env node
// The spawn-fcgi-ts command: runs the bundle (main.cjs, next to this file) through V8's code cache.
// Compiling the ~300 KB bundle is a third of start-up; with the cache (main.cjs.cache, written by the build,
// rewritten whenever V8 rejects it, e.g. after a Node.js upgrade) it is read instead of compiled.
// As PID 1 (a container) it first puts an init process between itself and the supervisor (runUnderInit).
// CommonJS, not an ES module: an ES module entry starts Node's ESM loader first, ~5 ms of every start (issue 10).
const { spawn } = require('node:child_process');
const { accessSync, closeSync, constants, openSync, readFileSync, readSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { constants: osConstants } = require('node:os');
const { setFlagsFromString } = require('node:v8');
const { join } = require('node:path');
const { Script } = require('node:vm');

// V8 flags for a long-running supervisor with a small heap (issue 10), set before the bundle runs so that every
// way of starting it gets them (the daemon and the PID-1 mode start this file again). Only flags that V8 reads
// while running take effect here; those that size the heap at start-up would need node's command line.
// - no memory-reducer GC for a small heap: it ran ~8 s after start, ~30 ms of the idle supervisor's first minute.
// - the young generation keeps its initial size (1 MB semi-spaces) instead of growing towards 16 MB while
//   children die and restart: ~18 MB less RSS under churn, for a few more (short) scavenges.
// - the old generation may grow by half its live size before a full GC, not V8's up to 4x for a small heap:
//   the dead children's objects wait there for that GC (~7 MB less peak RSS under churn, no more CPU measured).
//   It limits no size: a 4096-child pool only collects more often.
// - no optimizing compiler (TurboFan): the supervisor's hot path is a few small functions per child event,
//   and optimizing them cost more than it saved. Under churn, TurboFan's compile jobs grew the malloc arenas
//   of V8's worker threads (+3.3 MB after 20,000 deaths) and paged in its own code from the node binary
//   (+4 MB), for ~0.04 ms less CPU a death (measured with npm run soak).
// - optimize for size: V8 then lets the old generation grow by 2 MB past its live size before a full GC
//   instead of 8 MB (MinimumAllocationLimitGrowingStep), so the free pages left between dead children's
//   records stay few: RSS after 20,000 deaths 50.6 MB instead of 54-57 MB with the flags above alone.
const V8_FLAGS = ['--no-memory-reducer-for-small-heaps', '--semi-space-growth-factor=1', '--heap-growing-percent=50', '--no-opt', '--optimize-for-size'];
for (const flag of V8_FLAGS) setFlagsFromString(flag);

if (process.pid === 1) runUnderInit();
else runBundle();

/**
 * PID 1 of a container gets every orphan of the namespace (php-cgi workers whose master died...), and Node
 * reaps only its own children: they would pile up as zombies. So PID 1 runs the command again under the
 * native helper's init mode (a child subreaper that reaps everything and forwards signals) and only relays
 * signals to it and its exit status back. `docker run --init` (tini) avoids this extra process.
 */
function runUnderInit() {
  const helper = process.env.SPAWN_FCGI_TS_HELPER || join(__dirname, '..', 'build', process.arch, 'spawn-fcgi-ts-helper');
  if (!isNativeProgram(helper)) {
    runBundle(); // It says why the helper cannot run, in one line (or has no use for it: -v, status...).
    return;
  }
  const script = __filename;
  const init = spawn(helper, ['--init', '--', process.execPath, ...process.execArgv, script, ...process.argv.slice(2)], { stdio: 'inherit' });
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGTTIN', 'SIGTTOU', 'SIGWINCH'];
  const forward = (signal) => init.kill(signal);
  for (const signal of signals) process.on(signal, forward);
  init.once('error', () => {
    // The helper cannot run here (another architecture...): the command says so itself, in one line.
    for (const signal of signals) process.off(signal, forward);
    runBundle();
  });
  init.once('exit', (code, signal) => process.exit(code ?? 128 + (osConstants.signals[signal] ?? 0)));
}

/**
 * An executable ELF file for this machine (e_machine)? Spawning anything else would not fail cleanly:
 * execvp() hands a file it cannot exec (ENOEXEC: an arm64 build on x64) to /bin/sh.
 */
function isNativeProgram(path) {
  const machines = { x64: 62, arm64: 183 };
  try {
    accessSync(path, constants.X_OK);
    const header = Buffer.alloc(20);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, header, 0, 20, 0);
    } finally {
      closeSync(fd);
    }
    return header.toString('latin1', 0, 4) === '\x7fELF' && header.readUInt16LE(18) === machines[process.arch];
  } catch {
    return false;
  }
}

function runBundle() {
  const bundle = join(__dirname, 'main.cjs');
  const cacheFile = `${bundle}.cache`;
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    // No cache yet: compile, and write one below.
  }
  const script = new Script(Module.wrap(readFileSync(bundle, 'utf8')), { filename: bundle, cachedData });
  if (cachedData === undefined || script.cachedDataRejected) {
    // At exit, so that it holds the functions compiled while running, not only the top level.
    process.once('exit', () => {
      try {
        writeFileSync(cacheFile, script.createCachedData());
      } catch {
        // Read-only install: run without a cache.
      }
    });
  }
  const module = { exports: {} };
  script.runInThisContext().call(module.exports, module.exports, Module.createRequire(bundle), module, bundle, __dirname);
}
