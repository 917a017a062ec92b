// The spawners under test. Each recipe turns (socket, N, worker command, run dir, max requests) into
// the argv and environment of ONE foreground process: the "spawner" that the benchmark starts,
// signals and measures (its descendants that are not workers are the "supervisors").
import { accessSync, constants, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { delimiter, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tcpListen } from './fcgi.mjs';
import { log } from './util.mjs';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const TS_CLI = join(REPO, 'dist', 'cli.cjs');
export const TS_HELPER = join(REPO, 'build', 'spawn-fcgi-ts-helper');
/** The Node floor's whole program (issue 10): spawn one child, forward stop signals. */
export const NODE_FLOOR = join(REPO, 'scripts', 'bench', 'node-floor.cjs');

export const APT_PACKAGES = ['spawn-fcgi', 'multiwatch', 'php-cgi', 'php-fpm', 'supervisor', 'nginx', 'wrk', 'libfcgi-bin'];

export function which(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** php-fpm is versioned on Debian (php-fpm8.2): the newest /usr/sbin/php-fpm*, or php-fpm on PATH. */
export function findPhpFpm() {
  const plain = which('php-fpm');
  if (plain) return plain;
  try {
    const versions = readdirSync('/usr/sbin')
      .filter((f) => /^php-fpm\d+(\.\d+)?$/.test(f))
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    if (versions.length > 0) return join('/usr/sbin', versions.at(-1));
  } catch {
    // no /usr/sbin
  }
  return null;
}

/** The environment every recipe starts from: ours, without PHP_FCGI_* and with the pool settings. */
function phpEnv(maxRequests) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PHP_FCGI_')) env[k] = v;
  env.PHP_FCGI_CHILDREN = '0';
  env.PHP_FCGI_MAX_REQUESTS = String(maxRequests);
  return env;
}

const isRoot = () => process.getuid?.() === 0;

/** spawn-fcgi's (and spawn-fcgi-ts's) listen options for a run's socket: -s PATH, or -a HOST -p PORT. */
function listenArgs(sock) {
  const tcp = tcpListen(sock);
  return tcp ? ['-a', tcp.host, '-p', String(tcp.port)] : ['-s', sock];
}

/** php-fpm in the foreground, one pool on `sock` with the given pm.* lines. */
function phpFpmBuild({ sock, runDir, maxRequests, pm }) {
  const conf = join(runDir, 'php-fpm.conf');
  writeFileSync(
    conf,
    `[global]
pid = ${runDir}/php-fpm.pid
error_log = ${runDir}/php-fpm.log
daemonize = no

[www]
${isRoot() ? 'user = root\ngroup = root\n' : ''}listen = ${tcpListen(sock) ? sock.slice(4) : sock}
listen.mode = 0660
${pm}
pm.max_requests = ${maxRequests}
`,
  );
  const argv = [findPhpFpm(), '-F', '-y', conf];
  if (isRoot()) argv.splice(2, 0, '-R');
  return { argv, env: phpEnv(maxRequests) };
}

/**
 * The tests that mean something for a pool that sizes itself (the others count on N workers at all
 * times: restart, churn, crash loop, the idle overhead of N).
 */
const POOL_TESTS = ['throughput', 'stop', 'reload', 'maxreq', 'restart-load', 'pool-sizing'];

/** spawn-fcgi-ts with a pool that sizes itself between `min` and N (issue 11). */
function tsPool(name, short, min) {
  const flags = ['--min-procs', String(min), '--idle-timeout', '2s'];
  return {
    name,
    short,
    ts: true,
    title: `spawn-fcgi-ts --min-procs ${min} -F N --idle-timeout 2s`,
    command: `node dist/cli.cjs -n -s SOCK --min-procs ${min} -F N --idle-timeout 2s -- /usr/bin/php-cgi`,
    tools: [['php-cgi', 'php-cgi']],
    workerRe: /^php-cgi/,
    daemonizes: false,
    crashloop: true,
    reload: { signal: 'SIGHUP', label: 'SIGHUP (rolling restart)' },
    pool: { min },
    onlyTests: POOL_TESTS,
    build({ sock, n, worker, maxRequests }) {
      return {
        argv: [process.execPath, this.cli ?? TS_CLI, '-n', ...listenArgs(sock), '-F', String(n), ...flags, ...(this.extraArgs ?? []), '--', worker],
        env: phpEnv(maxRequests),
      };
    },
  };
}

export const RECIPES = [
  {
    name: 'spawn-fcgi-ts',
    short: 'ts',
    ts: true,
    title: 'spawn-fcgi-ts -n -F N',
    command: 'node dist/cli.cjs -n -s SOCK -F N -- /usr/bin/php-cgi',
    tools: [['php-cgi', 'php-cgi']],
    workerRe: /^php-cgi/,
    daemonizes: false,
    crashloop: true,
    reload: { signal: 'SIGHUP', label: 'SIGHUP (rolling restart)' },
    // churn: every worker death counts as the death of a long-running child (no backoff), as multiwatch -t 1.
    build({ sock, n, worker, maxRequests, churn }) {
      const churnArgs = churn ? ['--stable-after', '1ms'] : [];
      return {
        argv: [process.execPath, this.cli ?? TS_CLI, '-n', ...listenArgs(sock), '-F', String(n), ...churnArgs, ...(this.extraArgs ?? []), '--', worker],
        env: phpEnv(maxRequests),
      };
    },
  },
  {
    name: 'spawn-fcgi',
    short: 'spawn-fcgi',
    title: 'spawn-fcgi -F N (daemonizing)',
    command: 'spawn-fcgi -s SOCK -F N -- /usr/bin/php-cgi',
    tools: [
      ['spawn-fcgi', 'spawn-fcgi'],
      ['php-cgi', 'php-cgi'],
    ],
    workerRe: /^php-cgi/,
    daemonizes: true,
    crashloop: true,
    reload: null,
    build({ sock, n, worker, maxRequests }) {
      return { argv: [which('spawn-fcgi'), ...listenArgs(sock), '-F', String(n), '--', worker], env: phpEnv(maxRequests) };
    },
  },
  {
    name: 'multiwatch',
    short: 'multiwatch',
    title: 'spawn-fcgi -n -- multiwatch -f N',
    command: 'spawn-fcgi -n -s SOCK -- multiwatch -f N -- /usr/bin/php-cgi',
    tools: [
      ['spawn-fcgi', 'spawn-fcgi'],
      ['multiwatch', 'multiwatch'],
      ['php-cgi', 'php-cgi'],
    ],
    workerRe: /^php-cgi/,
    daemonizes: false,
    crashloop: true,
    // multiwatch 1.0 takes SIGHUP as "shut down" (it forwards its graceful signal): no reload.
    reload: null,
    // churn: -t 1 resets multiwatch's retry counter for any child that lived 1 ms (it would give a slot up
    // after 3 deaths within 10 s otherwise).
    build({ sock, n, worker, maxRequests, churn }) {
      return {
        argv: [which('spawn-fcgi'), '-n', ...listenArgs(sock), '--', which('multiwatch'), '-f', String(n), ...(churn ? ['-t', '1'] : []), '--', worker],
        env: phpEnv(maxRequests),
      };
    },
  },
  {
    // Issue 10's yardstick: what a Node.js supervisor costs before it does anything itself. A bare node
    // process (scripts/bench/node-floor.cjs) whose only child is the multiwatch recipe's command and which
    // forwards stop signals. Its supervisors are node + multiwatch.
    name: 'node-floor',
    short: 'node-floor',
    title: 'node → spawn-fcgi -n -- multiwatch -f N',
    command: 'node scripts/bench/node-floor.cjs spawn-fcgi -n -s SOCK -- multiwatch -f N -- /usr/bin/php-cgi',
    tools: [
      ['spawn-fcgi', 'spawn-fcgi'],
      ['multiwatch', 'multiwatch'],
      ['php-cgi', 'php-cgi'],
    ],
    workerRe: /^php-cgi/,
    daemonizes: false,
    crashloop: true,
    reload: null,
    build({ sock, n, worker, maxRequests, churn }) {
      return {
        argv: [
          process.execPath,
          NODE_FLOOR,
          which('spawn-fcgi'),
          '-n',
          ...listenArgs(sock),
          '--',
          which('multiwatch'),
          '-f',
          String(n),
          ...(churn ? ['-t', '1'] : []),
          '--',
          worker,
        ],
        env: phpEnv(maxRequests),
      };
    },
  },
  {
    name: 'supervisord',
    short: 'supervisord',
    title: 'supervisord [fcgi-program] numprocs=N',
    command: 'supervisord -n -c CONF ([fcgi-program] socket=unix://SOCK numprocs=N autorestart=true)',
    tools: [
      ['supervisord', 'supervisor'],
      ['php-cgi', 'php-cgi'],
    ],
    workerRe: /^php-cgi/,
    daemonizes: false,
    crashloop: true,
    reload: { signal: 'SIGHUP', label: 'SIGHUP (restarts every process)' },
    build({ sock, n, worker, runDir, maxRequests }) {
      const conf = join(runDir, 'supervisord.conf');
      // Defaults except autorestart=true: "unexpected" would not restart a php-cgi that exits 0
      // after PHP_FCGI_MAX_REQUESTS requests.
      writeFileSync(
        conf,
        `[supervisord]
nodaemon=true
logfile=${runDir}/supervisord.log
pidfile=${runDir}/supervisord.pid
childlogdir=${runDir}
loglevel=info

[fcgi-program:php]
command=${worker}
socket=${tcpListen(sock) ? `tcp://${sock.slice(4)}` : `unix://${sock}`}
${tcpListen(sock) ? '' : 'socket_mode=0660\n'}numprocs=${n}
process_name=%(program_name)s_%(process_num)03d
autorestart=true
startsecs=1
startretries=3
stopsignal=TERM
stopwaitsecs=10
redirect_stderr=true
stdout_logfile=${runDir}/php.log
`,
      );
      return { argv: [which('supervisord'), '-n', '-c', conf], env: phpEnv(maxRequests) };
    },
  },
  fpmRecipe({
    name: 'php-fpm',
    short: 'php-fpm',
    title: 'php-fpm pm=static',
    command: 'php-fpm -F -R -y CONF (pm=static, pm.max_children=N, listen=SOCK)',
    pm: (n) => `pm = static\npm.max_children = ${n}`,
  }),
  // Issue 11: pools that size themselves, the same bounds on both sides (min 1 or 0, max N, 2 s idle).
  // They take part in POOL_TESTS only (their N is a maximum).
  tsPool('spawn-fcgi-ts-dynamic', 'ts-dynamic', 1),
  tsPool('spawn-fcgi-ts-ondemand', 'ts-ondemand', 0),
  fpmRecipe({
    name: 'php-fpm-dynamic',
    short: 'fpm-dynamic',
    title: 'php-fpm pm=dynamic (1…N)',
    command: 'php-fpm -F -R -y CONF (pm=dynamic, start_servers=1, min_spare_servers=1, max_spare_servers=1, max_children=N)',
    pool: { min: 1 },
    // max_spare_servers=1: an idle pool goes back to its one child, as --min-procs 1 does
    pm: (n) => `pm = dynamic\npm.max_children = ${n}\npm.start_servers = 1\npm.min_spare_servers = 1\npm.max_spare_servers = 1`,
  }),
  fpmRecipe({
    name: 'php-fpm-ondemand',
    short: 'fpm-ondemand',
    title: 'php-fpm pm=ondemand (0…N, 2 s idle)',
    command: 'php-fpm -F -R -y CONF (pm=ondemand, max_children=N, process_idle_timeout=2s)',
    pool: { min: 0 },
    pm: (n) => `pm = ondemand\npm.max_children = ${n}\npm.process_idle_timeout = 2s`,
  }),
];

/**
 * A php-fpm recipe: what every pm= mode shares, and its process-manager lines. A pool that sizes itself
 * (`pool`) takes part in POOL_TESTS only.
 */
function fpmRecipe({ name, short, title, command, pm, pool }) {
  return {
    name,
    short,
    title,
    command,
    tools: [['php-fpm', 'php-fpm']],
    workerRe: /^php-fpm/,
    daemonizes: false,
    // php-fpm's graceful stop (SIGTERM/SIGINT: immediate termination); the stop and restart tests send it
    stopSignal: 'SIGQUIT',
    // php-fpm runs no external worker command: nothing to crash-loop.
    crashloop: false,
    reload: { signal: 'SIGUSR2', label: 'SIGUSR2 (graceful reload)' },
    ...(pool === undefined ? {} : { pool, onlyTests: POOL_TESTS }),
    build: ({ sock, n, runDir, maxRequests }) => phpFpmBuild({ sock, runDir, maxRequests, pm: pm(n) }),
  };
}

export const RECIPE_NAMES = RECIPES.map((r) => r.name);

function toolPath(tool) {
  return tool === 'php-fpm' ? findPhpFpm() : which(tool);
}

/** Missing tools of the harness itself and of each recipe: {common: [[tool, pkg]], byRecipe: {name: [[tool, pkg]]}}. */
export function missingTools(recipes) {
  const common = [
    ['nginx', 'nginx'],
    ['wrk', 'wrk'],
    ['php-cgi', 'php-cgi'],
  ].filter(([t]) => toolPath(t) === null);
  const byRecipe = {};
  for (const r of recipes) {
    const missing = r.tools.filter(([t]) => toolPath(t) === null);
    if (missing.length > 0) byRecipe[r.name] = missing;
  }
  return { common, byRecipe };
}

export function aptInstall(packages) {
  log(`installing Debian packages: ${packages.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  if (update.status !== 0) return false;
  const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
  return install.status === 0;
}

/** dist/cli.cjs and the native helper: build them when missing. */
export function ensureBuilt() {
  if (existsSync(TS_CLI) && existsSync(TS_HELPER)) return null;
  log('spawn-fcgi-ts is not built (dist/cli.cjs or build/spawn-fcgi-ts-helper missing): running npm run build');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: REPO, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0 || !existsSync(TS_CLI) || !existsSync(TS_HELPER)) return 'npm run build failed: spawn-fcgi-ts cannot be measured';
  return null;
}

/** The bench measures dist/cli.cjs as it is: say so when a source file is newer (not rebuilt here: others may be editing). */
export function staleBuild() {
  if (!existsSync(TS_CLI)) return null;
  const built = statSync(TS_CLI).mtimeMs;
  const newer = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (/\.(ts|c)$/.test(entry.name) && statSync(p).mtimeMs > built) newer.push(p.slice(REPO.length));
    }
  };
  try {
    walk(join(REPO, 'src'));
  } catch {
    return null;
  }
  return newer.length === 0
    ? null
    : `dist/cli.cjs is older than ${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ` and ${newer.length - 3} more` : ''}: the bench measures the build as it is (run npm run build first)`;
}

/**
 * Measure a snapshot: dist/cli.cjs and build/ copied under the scratch dir (the bundle finds its
 * helpers at ../build/), so that a rebuild by someone else during the run changes nothing.
 */
export function snapshotTs(tmpRoot) {
  const root = join(tmpRoot, 'spawn-fcgi-ts');
  mkdirSync(join(root, 'dist'), { recursive: true });
  mkdirSync(join(root, 'build'), { recursive: true });
  const cli = join(root, 'dist', 'cli.cjs');
  const hash = createHash('sha256');
  for (const dir of ['dist', 'build']) {
    for (const f of readdirSync(join(REPO, dir)).sort()) {
      const src = join(REPO, dir, f);
      // build/<arch>/ holds the helpers the bundle runs: copied whole
      if (dir === 'build' && statSync(src).isDirectory()) cpSync(src, join(root, dir, f), { recursive: true });
      if (!statSync(src).isFile()) continue;
      copyFileSync(src, join(root, dir, f));
      if (dir === 'dist' && !f.endsWith('.cache')) hash.update(readFileSync(src));
    }
  }
  for (const r of RECIPES) if (r.ts) r.cli = cli;
  // preflight: the copy must start (a build that cannot even print its version measures nothing)
  const v = spawnSync(process.execPath, [cli, '-v'], { encoding: 'utf8', timeout: 20_000 });
  const problem =
    v.status === 0
      ? null
      : `spawn-fcgi-ts (${cli} -v) does not start: ${(v.stderr || v.stdout || String(v.error ?? v.signal)).trim().split('\n').slice(-3).join(' ')}`;
  return { dist_sha256: hash.digest('hex').slice(0, 16), built: new Date(statSync(TS_CLI).mtimeMs).toISOString(), version: v.stdout?.trim(), problem };
}
