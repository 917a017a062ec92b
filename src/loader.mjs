#!/usr/bin/env node
// The spawn-fcgi-ts command: runs the bundle (main.cjs, next to this file) through V8's code cache.
// Compiling the ~300 KB bundle is a third of start-up; with the cache (main.cjs.cache, written by the build,
// rewritten whenever V8 rejects it, e.g. after a Node.js upgrade) it is read instead of compiled.
import { readFileSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { Script } from 'node:vm';

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
