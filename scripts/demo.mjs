#!/usr/bin/env node
// npm run demo: starts a pool of the example FastCGI app (examples/hello-fcgi.mjs, needs only Node)
// on a unix socket, answers a few requests through it, shows the pool's status, and stops it.
// With --keep the pool stays in the foreground until Ctrl-C.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { fcgiRequest } from '../dist-tools/fcgi-client.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = `${root}dist/cli.cjs`;
const socket = `/tmp/spawn-fcgi-ts-demo-${process.pid}.sock`;
const keep = process.argv.includes('--keep');

// The app's path is relative to the checkout (the pool runs there), so the command shown is the same on every machine.
const argv = [cli, '-n', '-s', socket, '-F', '2', '--', process.execPath, 'examples/hello-fcgi.mjs'];
console.log(`$ spawn-fcgi-ts ${argv.slice(1).join(' ')}`);
const pool = spawn(process.execPath, argv, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
const exited = new Promise((resolve) => pool.once('exit', (code, signal) => resolve({ code, signal })));

async function firstAnswer() {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await fcgiRequest({ path: socket }, { params: { SCRIPT_NAME: '/hello', REQUEST_URI: '/hello' }, timeoutMs: 2000 });
    } catch (error) {
      if (Date.now() > deadline || pool.exitCode !== null) throw error;
      await sleep(20);
    }
  }
}

try {
  await firstAnswer();
  for (let i = 1; i <= 4; i++) {
    const answer = await fcgiRequest({ path: socket }, { params: { SCRIPT_NAME: `/hello/${i}`, REQUEST_URI: `/hello/${i}` } });
    console.log(`request ${i} answered through ${socket}: ${answer.status} ${answer.body.trim()}`);
  }
  const status = spawn(process.execPath, [cli, 'status', '-s', socket], { stdio: 'inherit' });
  await new Promise((resolve) => status.once('exit', resolve));
} catch (error) {
  console.error(`demo: no answer from the pool: ${error.message}`);
  pool.kill('SIGTERM');
  await exited;
  process.exit(1);
}
if (keep) {
  console.log(`pool running on ${socket}; Ctrl-C stops it`);
  process.once('SIGINT', () => pool.kill('SIGTERM'));
} else {
  pool.kill('SIGTERM');
}
const { code } = await exited;
console.log(`pool stopped (exit ${code})`);
process.exit(code ?? 1);
