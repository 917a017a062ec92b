/**
 * A real lighttpd (Debian's /usr/sbin/lighttpd) in front of FastCGI pools, for end-to-end tests.
 *
 * `startLighttpd({ docroot, config })` writes `<tmp>/lighttpd.conf`: the modules (mod_fastcgi by
 * default), `server.bind = "127.0.0.1"` and a free `server.port`, the document root, `server.errorlog`
 * in the temp directory, a few mime types, no `server.username`/`groupname` (it stays root), then the
 * test's own lines (`fastcgi.server = ...`). It runs `lighttpd -D -f <tmp>/lighttpd.conf` in the
 * foreground, waits until the port accepts connections and returns a handle; `stop()` sends SIGTERM to
 * that PID, waits for the exit and removes the temp directory. An `after` hook stops whatever a
 * failing test left running.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpRequest } from './nginx.js';
import { freePort, removePath, tmpDir } from './proc.js';
import { startWebServer, type RunningWebServer } from './web-server.js';

export const LIGHTTPD = '/usr/sbin/lighttpd';

export interface LighttpdOptions {
  /** `server.document-root`. */
  docroot: string;
  /** Configuration lines appended after the basics, e.g. `fastcgi.server = ( ... )`. */
  config: string;
  /** `server.modules` (default `["mod_fastcgi"]`). */
  modules?: string[];
  /** Give up waiting for the port after this long (default 10 s). */
  readyTimeoutMs?: number;
}

export interface RunningLighttpd extends RunningWebServer {
  /** The whole configuration file as written. */
  configText: string;
}

/** A lighttpd string literal. */
export const quote = (text: string): string => `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export function lighttpdConfig(options: LighttpdOptions & { port: number; dir: string }): string {
  const modules = options.modules ?? ['mod_fastcgi'];
  return `# written by test/helpers/lighttpd.ts
server.modules = ( ${modules.map(quote).join(', ')} )
server.bind = "127.0.0.1"
server.port = ${options.port}
server.document-root = ${quote(options.docroot)}
server.errorlog = ${quote(join(options.dir, 'error.log'))}
server.pid-file = ${quote(join(options.dir, 'lighttpd.pid'))}
mimetype.assign = ( ".txt" => "text/plain", ".html" => "text/html" )
${options.config}
`;
}

export async function startLighttpd(options: LighttpdOptions): Promise<RunningLighttpd> {
  const dir = tmpDir('sfts-lighttpd');
  const port = await freePort();
  const configText = lighttpdConfig({ ...options, port, dir });
  const configPath = join(dir, 'lighttpd.conf');
  writeFileSync(configPath, configText);
  // lighttpd -tt: a syntax error is reported here with lighttpd's own message, not as a port timeout.
  const check = spawnSync(LIGHTTPD, ['-tt', '-f', configPath], { encoding: 'utf8' });
  if (check.status !== 0) {
    removePath(dir);
    throw new Error(`lighttpd -tt rejects the configuration (${check.status}): ${check.stdout}${check.stderr}\n${configText}`);
  }
  const server = await startWebServer('lighttpd', LIGHTTPD, ['-D', '-f', configPath], { dir, port, readyTimeoutMs: options.readyTimeoutMs });
  return { ...server, configText };
}

// ---------------------------------------------------------------- load

export interface LoadResult {
  /** HTTP status, 0 when the request failed (then `error` says why). */
  status: number;
  body: string;
  error?: string;
  /** Date.now() when the answer (or the error) arrived. */
  at: number;
  /** Date.now() when the request was sent. */
  startedAt?: number;
}

/**
 * Requests to `url` from `concurrency` clients at once (no keep-alive), until `requests` were made or,
 * when `until` is given, until it returns true. Failures are recorded, not thrown.
 */
export async function httpLoad(
  url: string,
  options: { concurrency: number; requests?: number; until?: () => boolean; timeoutMs?: number },
): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  let started = 0;
  const more = () => (options.until !== undefined ? !options.until() : started < (options.requests ?? 0));
  const worker = async () => {
    while (more()) {
      started++;
      const startedAt = Date.now();
      try {
        const answer = await httpRequest(url, { timeoutMs: options.timeoutMs ?? 10_000 });
        results.push({ status: answer.status, body: answer.body, at: Date.now(), startedAt });
      } catch (error) {
        results.push({ status: 0, body: '', error: (error as Error).message, at: Date.now(), startedAt });
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return results;
}

/** How many answers carry each value of `name=value` lines (e.g. `pool=a`); missing → "(none)". */
export function countBy(results: LoadResult[], name: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const result of results) {
    const value =
      result.status === 200
        ? (new RegExp(`^${name}=(.*)$`, 'm').exec(result.body)?.[1] ?? '(none)')
        : `HTTP ${result.status}${result.error ? ` ${result.error}` : ''}`;
    counts[value] = (counts[value] ?? 0) + 1;
  }
  return counts;
}
export { httpRequest };

/** One `t.diagnostic` line per line of `text` (TAP escapes newlines inside one diagnostic). */
export function diagnosticLines(t: { diagnostic(message: string): void }, title: string, text: string): void {
  t.diagnostic(title);
  for (const line of text.replace(/\n$/, '').split('\n')) t.diagnostic(`  ${line}`);
}

/** The `NAME=value` lines of an answer body (the test apps report what they saw that way). */
export function fields(body: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const match of body.matchAll(/^([A-Za-z_]+)=(.*)$/gm)) result[match[1]!] = match[2]!;
  return result;
}
