/**
 * A stand-in for a control socket: an HTTP server on a unix socket that answers every request with one fixed
 * body, run as any user (`setpriv`), to play a squatter or a broken peer for `spawn-fcgi-ts status`.
 */
import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { track } from './pool.js';
import { signalIfAlive, waitFor } from './proc.js';

const SERVER = `
import { createServer } from 'node:http';
const [path, status] = process.argv.slice(2);
createServer((request, response) => response.writeHead(Number(status), { 'content-type': 'application/json' }).end(process.env.BODY))
  .listen(path, () => process.stdout.write('listening\\n'));
`;

export interface FakeControl {
  pid: number;
  stop(): void;
}

/** Serve `body` on `path` (as `user` when given); `dir` must be readable by that user (the script is put there). */
export async function startFakeControl(dir: string, path: string, body: string, options: { user?: string; status?: number } = {}): Promise<FakeControl> {
  const script = join(dir, 'fake-control.mjs');
  writeFileSync(script, SERVER);
  chmodSync(script, 0o644);
  const argv = [script, path, String(options.status ?? 200)];
  const child =
    options.user === undefined
      ? spawn(process.execPath, argv, { env: { ...process.env, BODY: body }, stdio: ['ignore', 'pipe', 'inherit'] })
      : spawn('setpriv', [`--reuid=${options.user}`, '--regid=nogroup', '--clear-groups', process.execPath, ...argv], {
          env: { ...process.env, BODY: body },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
  track(child.pid!);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  await waitFor(() => out.includes('listening') || child.exitCode !== null, { timeoutMs: 10_000, what: `the fake control socket ${path}` });
  if (!out.includes('listening')) throw new Error(`the fake control socket ${path} exited (${child.exitCode})`);
  return { pid: child.pid!, stop: () => signalIfAlive(child.pid!, 'SIGKILL') };
}
