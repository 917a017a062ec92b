// Everything the benchmark starts is registered here and stopped by pid (with a starttime check),
// never by name: on normal exit, on an exception, and on SIGINT/SIGTERM/SIGHUP.
import { rmSync } from 'node:fs';
import { isAlive, readStat, signalIfSame } from './proc.mjs';
import { log, sleep } from './util.mjs';

/** Plain processes (nginx, wrk): pid -> starttime. */
const processes = new Map();
/** Runs of a recipe: each has a tracker whose members are its processes. */
const runs = new Set();
/** Directories to remove at the end. */
const dirs = new Set();

export function registerProcess(pid) {
  const st = readStat(pid);
  if (st) processes.set(pid, st.starttime);
}

export function unregisterProcess(pid) {
  processes.delete(pid);
}

export const registerRun = (run) => runs.add(run);
export const unregisterRun = (run) => runs.delete(run);
export const registerDir = (dir) => dirs.add(dir);

function targets() {
  const out = [];
  for (const [pid, starttime] of processes) out.push({ pid, starttime });
  for (const run of runs) {
    for (const [pid, starttime] of run.tracker.everMembers) out.push({ pid, starttime });
  }
  return out.filter((t) => isAlive(t.pid, t.starttime));
}

/** SIGTERM everything that is ours, SIGKILL what is left after `graceMs`. */
export async function killEverything(graceMs = 2000) {
  let live = targets();
  for (const t of live) signalIfSame(t.pid, t.starttime, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (live.length > 0 && Date.now() < deadline) {
    await sleep(20);
    live = live.filter((t) => isAlive(t.pid, t.starttime));
  }
  for (const t of live) signalIfSame(t.pid, t.starttime, 'SIGKILL');
  return live.map((t) => t.pid);
}

export function removeDirs() {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
}

let cleaning = false;

export async function cleanupAll(reason) {
  if (cleaning) return;
  cleaning = true;
  const forced = await killEverything(reason === 'normal' ? 3000 : 1500);
  if (forced.length > 0) log(`cleanup (${reason}): SIGKILLed ${forced.length} processes that ignored SIGTERM: ${forced.join(' ')}`);
  removeDirs();
}

/** A signal or a crash ends the benchmark: stop everything we started, remove our temp dirs. */
export function installCleanupHandlers() {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      log(`${signal}: stopping everything the benchmark started`);
      cleanupAll(signal).finally(() => process.exit(128 + { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[signal]));
    });
  }
  process.on('uncaughtException', (error) => {
    if (error?.code === 'EPIPE') return;
    log(`uncaught exception: ${error?.stack ?? error}`);
    cleanupAll('exception').finally(() => process.exit(70));
  });
  process.on('unhandledRejection', (error) => {
    log(`unhandled rejection: ${error?.stack ?? error}`);
    cleanupAll('exception').finally(() => process.exit(70));
  });
}
