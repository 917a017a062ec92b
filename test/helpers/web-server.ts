/**
 * A web server (nginx, lighttpd) run by a test: started by PID in the foreground, ready once its
 * 127.0.0.1 port accepts, stopped (SIGTERM, then SIGKILL after 5 s) with its temp directory removed.
 * Whatever a failing test leaves running is stopped when the test file ends.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after } from 'node:test';
import { isGone, removePath, signalIfAlive, waitFor } from './proc.js';

export interface RunningWebServer {
  pid: number;
  port: number;
  /** `http://127.0.0.1:<port>` */
  baseUrl: string;
  /** The temp directory holding the configuration and error.log. */
  dir: string;
  /** The server's error log so far (`<dir>/error.log`). */
  errorLog(): string;
  /** SIGTERM by PID, wait for the exit (SIGKILL after 5 s), remove the temp directory. */
  stop(): Promise<void>;
}

const running = new Set<RunningWebServer>();
after(async () => {
  for (const server of [...running]) await server.stop();
});
process.once('exit', () => {
  for (const server of running) signalIfAlive(server.pid, 'SIGKILL');
});

export async function startWebServer(
  name: string,
  command: string,
  args: string[],
  options: { dir: string; port: number; readyTimeoutMs?: number },
): Promise<RunningWebServer> {
  const { dir, port } = options;
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  const pid = child.pid;
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const server: RunningWebServer = {
    pid,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    dir,
    errorLog,
    stop: async () => {
      if (!running.delete(server)) return;
      if (!exited) signalIfAlive(pid, 'SIGTERM');
      await Promise.race([exit, waitFor(() => isGone(pid), { timeoutMs: 5000 }).catch(() => undefined)]);
      signalIfAlive(pid, 'SIGKILL');
      removePath(dir);
    },
  };
  running.add(server);
  try {
    await waitFor(
      () => {
        if (exited) throw new Error(`${name} exited: ${stderr}${errorLog()}`);
        return canConnect(port);
      },
      { timeoutMs: options.readyTimeoutMs ?? 10_000, what: `${name} on 127.0.0.1:${port}` },
    );
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
