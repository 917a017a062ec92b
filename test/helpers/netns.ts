/**
 * Separate "hosts" for FastCGI backends: Linux network namespaces that the test creates and removes.
 *
 * `createHosts(['a', 'b'])` makes, for each label, a namespace `sfts-<label>-<random>` with a veth pair
 * to the root namespace; the pair gets a /30 out of a private 10.201.<n>.0/24 that no interface here
 * uses yet (root side .1, namespace side .2 for the first host; .5/.6 for the second...). A process
 * started with `host.prefix` (`ip netns exec <ns>`, which execs: the pid is the command's own) sees only
 * its namespace's loopback and veth, so a pool bound to `host.address` is reachable from the root
 * namespace (lighttpd) through the veth only, like a second machine.
 *
 * `removeHost` / `removeAllHosts` kill what still runs inside a namespace (`ip netns pids`: only
 * processes the test started there), delete the veth and the namespace; an `after` hook removes every
 * host this file created, pass or fail. `ourNamespaces()` lists what is left, for the test to assert
 * that `ip netns list` is clean.
 *
 * When namespaces are not permitted (`ip netns add` fails, e.g. in an unprivileged container),
 * `createHosts` falls back to loopback addresses 127.0.0.2, 127.0.0.3... (kind 'loopback', empty prefix)
 * and says why in `fallbackReason`. `SFTS_TEST_NO_NETNS=1` forces that fallback (to try it where namespaces work).
 *
 * `startPoolOn(host, args)` runs `node dist/cli.cjs -n ...args` on such a host and waits until the pool
 * answers from the root namespace, registering the supervisor with test/helpers/pool.ts's clean-up.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { CLI, fcgiGet, poolChildren, track, untrack, type Exit, type FcgiAnswer } from './pool.js';
import { signalIfAlive, sleep, waitFor } from './proc.js';

export const IP = '/usr/sbin/ip';
const PREFIX = 'sfts-';

export interface BackendHost {
  kind: 'netns' | 'loopback';
  label: string;
  /** The address a pool on this host binds, and the web server connects to. */
  address: string;
  /** The namespace's name (netns only). */
  namespace?: string;
  /** The root-namespace end of the veth pair and its address (netns only). */
  hostInterface?: string;
  hostAddress?: string;
  /** argv prefix that runs a command on this host (`ip netns exec <ns>`; empty for loopback). */
  prefix: string[];
}

export interface Hosts {
  hosts: BackendHost[];
  /** Why namespaces were not used (undefined when they were). */
  fallbackReason?: string;
}

function ip(args: string[], { check = true } = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(IP, args, { encoding: 'utf8', timeout: 10_000 });
  if (check && result.status !== 0) throw new Error(`ip ${args.join(' ')} failed (${result.status}): ${result.stderr}${result.error?.message ?? ''}`);
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** Names from `ip netns list` (each line starts with the name, maybe followed by "(id: n)"). */
export function listNamespaces(): string[] {
  return ip(['netns', 'list'], { check: false })
    .stdout.split('\n')
    .map((l) => l.trim().split(/\s+/)[0]!)
    .filter((n) => n !== '');
}

const created = new Set<BackendHost>();

/** Namespaces created by this process (the random part of their names) that still exist. */
export function ourNamespaces(): string[] {
  const ours = new Set([...created].map((h) => h.namespace).filter((n): n is string => n !== undefined));
  return listNamespaces().filter((n) => ours.has(n) || n.startsWith(`${PREFIX}probe-${process.pid}-`));
}

/** A 10.201.<n>.0/24 that no address or route of the root namespace mentions. */
function freeSubnet(): number {
  const used = ip(['-4', 'addr', 'show']).stdout + ip(['-4', 'route', 'show', 'table', 'all'], { check: false }).stdout;
  for (let attempt = 0; attempt < 64; attempt++) {
    const n = randomBytes(1)[0]!;
    if (!used.includes(`10.201.${n}.`)) return n;
  }
  throw new Error('no free 10.201.<n>.0/24 found');
}

/** Whether `ip netns add` works here; the reason when it does not. */
export function probeNetns(): string | undefined {
  const name = `${PREFIX}probe-${process.pid}-${randomBytes(3).toString('hex')}`;
  const add = ip(['netns', 'add', name], { check: false });
  if (add.status !== 0) return `ip netns add: ${add.stderr.trim() || `exit ${add.status}`}`;
  ip(['netns', 'del', name], { check: false });
  return undefined;
}

/** One host per label: namespaces with veth pairs, or loopback addresses when namespaces are not permitted. */
export function createHosts(labels: string[]): Hosts {
  const problem = process.env.SFTS_TEST_NO_NETNS === '1' ? 'SFTS_TEST_NO_NETNS=1' : probeNetns();
  if (problem !== undefined) {
    return {
      hosts: labels.map((label, i) => ({ kind: 'loopback', label, address: `127.0.0.${i + 2}`, prefix: [] })),
      fallbackReason: `network namespaces not permitted (${problem}): using loopback addresses instead`,
    };
  }
  const subnet = freeSubnet();
  const tag = randomBytes(3).toString('hex');
  const hosts: BackendHost[] = [];
  try {
    labels.forEach((label, i) => {
      const namespace = `${PREFIX}${label}-${tag}`;
      // Interface names: at most 15 bytes.
      const hostInterface = `sf${tag}${i}h`;
      const nsInterface = `sf${tag}${i}n`;
      const hostAddress = `10.201.${subnet}.${4 * i + 1}`;
      const address = `10.201.${subnet}.${4 * i + 2}`;
      const host: BackendHost = { kind: 'netns', label, address, namespace, hostInterface, hostAddress, prefix: [IP, 'netns', 'exec', namespace] };
      ip(['netns', 'add', namespace]);
      created.add(host);
      hosts.push(host);
      ip(['link', 'add', hostInterface, 'type', 'veth', 'peer', 'name', nsInterface]);
      ip(['link', 'set', nsInterface, 'netns', namespace]);
      ip(['addr', 'add', `${hostAddress}/30`, 'dev', hostInterface]);
      ip(['link', 'set', hostInterface, 'up']);
      ip(['-n', namespace, 'addr', 'add', `${address}/30`, 'dev', nsInterface]);
      ip(['-n', namespace, 'link', 'set', nsInterface, 'up']);
      ip(['-n', namespace, 'link', 'set', 'lo', 'up']);
    });
  } catch (error) {
    for (const host of hosts) removeHost(host);
    throw error;
  }
  return { hosts };
}

/** Kill what runs inside the namespace (only what the test started there), delete the veth and the namespace. */
export function removeHost(host: BackendHost): void {
  if (host.kind !== 'netns' || host.namespace === undefined) return;
  if (listNamespaces().includes(host.namespace)) {
    const pids = ip(['netns', 'pids', host.namespace], { check: false })
      .stdout.split(/\s+/)
      .filter((p) => /^\d+$/.test(p))
      .map(Number);
    for (const pid of pids) signalIfAlive(pid, 'SIGKILL');
  }
  if (host.hostInterface !== undefined) ip(['link', 'del', host.hostInterface], { check: false });
  ip(['netns', 'del', host.namespace], { check: false });
  created.delete(host);
}

export function removeAllHosts(): void {
  for (const host of [...created]) removeHost(host);
}

after(() => removeAllHosts());
process.once('exit', () => removeAllHosts());

// ---------------------------------------------------------------- a pool on a host

export interface HostPool {
  pid: number;
  host: BackendHost;
  port: number;
  stdout(): string;
  stderr(): string;
  childPids(): number[];
  exited: Promise<Exit>;
  exitStatus(): Exit | undefined;
  request(params?: Record<string, string>): Promise<FcgiAnswer>;
  /** Send `signal` (default SIGTERM) and wait for the exit (rejects after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

/**
 * `<host.prefix> node dist/cli.cjs -n -a <host.address> -p <port> ...args` (args must not give -a/-p),
 * resolved once a FastCGI request from here gets an answer and `procs` children are up.
 */
export async function startPoolOn(
  host: BackendHost,
  port: number,
  args: string[],
  options: { procs?: number; probeParams?: Record<string, string>; readyTimeoutMs?: number } = {},
): Promise<HostPool> {
  const argv = [...host.prefix, process.execPath, CLI, '-n', '-a', host.address, '-p', String(port), ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${argv.join(' ')}`);
  const pid = child.pid;
  track(pid);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    }),
  );
  const target = { host: host.address, port };
  const pool: HostPool = {
    pid,
    host,
    port,
    stdout: () => stdout,
    stderr: () => stderr,
    childPids: () => poolChildren(pid),
    exited,
    exitStatus: () => exit,
    request: (params = {}) => fcgiGet(target, params, { timeoutMs: 5000 }),
    stop: async (signal = 'SIGTERM', timeoutMs = 15_000) => {
      if (exit === undefined) signalIfAlive(pid, signal);
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([
        exited,
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (result === undefined) throw new Error(`supervisor ${pid} on ${host.label} still running ${timeoutMs} ms after ${signal}\nstderr: ${stderr}`);
      await sleep(20);
      untrack(pid);
      return result;
    },
  };
  const procs = options.procs ?? 1;
  try {
    await waitFor(
      async () => {
        if (exit !== undefined) throw new Error(`exited ${JSON.stringify(exit)} before serving\nstderr: ${stderr}`);
        await fcgiGet(target, options.probeParams ?? {}, { timeoutMs: 2000 });
        return poolChildren(pid).length >= procs;
      },
      { timeoutMs: options.readyTimeoutMs ?? 15_000, intervalMs: 50, what: `the pool on ${host.label} (${host.address}:${port}) to serve` },
    );
  } catch (error) {
    signalIfAlive(pid, 'SIGKILL');
    throw new Error(`${(error as Error).message}\nstderr: ${stderr}`);
  }
  return pool;
}
