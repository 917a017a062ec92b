#!/usr/bin/env node
// The spawn-fcgi-ts command: runs the bundle (main.cjs, next to this file) through V8's code cache.
// Compiling the ~300 KB bundle is a third of start-up; with the cache (main.cjs.cache, written by the build,
// rewritten whenever V8 rejects it, e.g. after a Node.js upgrade) it is read instead of compiled.
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { Script } from 'node:vm';

if (process.pid === 1) runUnderInit();
else runBundle();

/**
 * PID 1 of a container gets every orphan of the namespace (php-cgi workers whose master died...), and Node
 * reaps only its own children: they would pile up as zombies. So PID 1 runs the command again under the
 * native helper's init mode (a child subreaper that reaps everything and forwards signals) and only relays
 * signals to it and its exit status back. `docker run --init` (tini) avoids this extra process.
 */
function runUnderInit() {
  const helper = process.env.SPAWN_FCGI_TS_HELPER || new URL(`../build/${process.arch}/spawn-fcgi-ts-helper`, import.meta.url).pathname;
  try {
    accessSync(helper, constants.X_OK);
  } catch {
    runBundle(); // It reports the missing helper itself (or has no use for it: -v, status...).
    return;
  }
  const script = new URL(import.meta.url).pathname;
  const init = spawn(helper, ['--init', '--', process.execPath, ...process.execArgv, script, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGTTIN', 'SIGTTOU', 'SIGWINCH']) {
    process.on(signal, () => init.kill(signal));
  }
  init.once('error', (error) => {
    process.stderr.write(`spawn-fcgi-ts: could not start ${helper} --init: ${error.message}\n`);
    process.exit(255);
  });
  init.once('exit', (code, signal) => process.exit(code ?? 128 + (osConstants.signals[signal] ?? 0)));
}

function runBundle() {
  const bundle = new URL('main.cjs', import.meta.url).pathname;
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
  script.runInThisContext().call(module.exports, module.exports, createRequire(bundle), module, bundle, new URL('.', import.meta.url).pathname);
}
