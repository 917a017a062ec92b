import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RESPONDER, requireBuild, runCli, startPool } from '../helpers/pool.js';
import { freePort, removePath, tmpDir, waitFor } from '../helpers/proc.js';

const CHROMIUM = '/usr/bin/chromium';
let dir: string;
before(() => {
  requireBuild();
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh installs it)`);
  dir = tmpDir('sfts-observe-page');
});
after(() => removePath(dir));

/** One headless Chromium run (no sandbox: the tests run as root), with its own profile and a generous timeout. */
function chromium(args: string[], url: string): Promise<string> {
  const argv = ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--user-data-dir=${join(dir, 'profile')}`, ...args, url];
  return new Promise((resolve, reject) => {
    execFile(CHROMIUM, argv, { encoding: 'utf8', timeout: 90_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`chromium ${args.join(' ')} failed: ${error.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout);
    });
  });
}

interface Row {
  slot: number;
  pid: number | null;
  state: string;
  restarts: number;
  rss: string;
  lastExit: string;
}

/** The table as the browser built it (from --dump-dom), read back through the cells' data-field attributes. */
function rowsOf(dom: string): Row[] {
  return [...dom.matchAll(/<tr class="[^"]*">(.*?)<\/tr>/g)].map((m) => {
    const cell = (field: string) => new RegExp(`data-field="${field}"[^>]*>([^<]*)<`).exec(m[1]!)?.[1] ?? '';
    return {
      slot: Number(cell('slot')),
      pid: cell('pid') === '-' ? null : Number(cell('pid')),
      state: cell('state'),
      restarts: Number(cell('restarts')),
      rss: cell('rss'),
      lastExit: cell('last-exit'),
    };
  });
}

test('the status page in headless Chromium shows the numbers `status --json` gives; a screenshot for the docs', async () => {
  const port = await freePort();
  const metricsPort = await freePort();
  const broken = join(dir, 'broken');
  const flaky = join(dir, 'flaky.sh');
  writeFileSync(flaky, `#!/bin/sh\n[ -e '${broken}' ] && exit 1\nexec '${RESPONDER}'\n`, { mode: 0o755 });
  const pool = await startPool(['-a', '127.0.0.1', '-p', String(port), '-F', '4', '--metrics', `127.0.0.1:${metricsPort}`, '--status-page', '--', flaky]);
  const url = `http://127.0.0.1:${metricsPort}/`;

  const killed = pool.childPids()[1]!;
  process.kill(killed, 'SIGKILL');
  await waitFor(() => pool.childPids().length === 4 && !pool.childPids().includes(killed), { timeoutMs: 15_000, what: 'the killed child to be replaced' });

  const json = await runCli(['status', '-p', String(port), '-a', '127.0.0.1', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const status = JSON.parse(json.stdout) as {
    supervisorPid: number;
    restarts: number;
    slots: { slot: number; pid: number; state: string; restarts: number; rssBytes: number }[];
  };
  const dom = await chromium(['--dump-dom'], url);
  const rows = rowsOf(dom);
  assert.deepEqual(
    rows.map((r) => [r.slot, r.pid, r.state, r.restarts]),
    status.slots.map((s) => [s.slot, s.pid, s.state, s.restarts]),
  );
  for (const row of rows) assert.match(row.rss, /^\d+(\.\d)? (KiB|MiB)$/);
  assert.equal(rows.find((r) => r.restarts === 1)?.lastExit.startsWith('signal SIGKILL'), true);
  assert.match(dom, new RegExp(`data-field="supervisor-pid">${status.supervisorPid}<`));
  assert.match(dom, /data-field="ready">ready</);
  assert.match(dom, new RegExp(`data-field="restarts">${status.restarts}<`));

  // A slot that crash-loops: the page says "not ready" and why; that is the picture for the docs.
  writeFileSync(broken, '');
  process.kill(pool.childPids()[3]!, 'SIGKILL');
  await waitFor(async () => (await runCli(['status', '-p', String(port), '-a', '127.0.0.1'])).code === 150, { timeoutMs: 15_000, what: 'a slot to back off' });
  const screenshot = join(dir, 'status-page.png');
  await chromium([`--screenshot=${screenshot}`, '--window-size=1100,500'], url);
  const png = readFileSync(screenshot);
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [1100, 500]);
  // SFTS_SCREENSHOT=docs/status-page.png refreshes the picture in the docs.
  if (process.env.SFTS_SCREENSHOT !== undefined) copyFileSync(screenshot, process.env.SFTS_SCREENSHOT);
  const degraded = rowsOf(await chromium(['--dump-dom'], url));
  assert.ok(
    degraded.some((r) => r.state === 'backing off' || r.state === 'starting'),
    JSON.stringify(degraded),
  );
  await pool.stop();
});
