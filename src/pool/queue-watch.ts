import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Watching the socket's accept queue without ever accepting (DESIGN §3), for a pool that sizes itself.
 *
 * The native helper's --watch-queue mode gets the socket as fd 0, listens on it (so that a pool with no
 * child yet queues connections instead of refusing them) and sleeps in poll(2): a listening socket is
 * readable while a connection waits in its accept queue. It writes 'a' when one arrives and 'w' every
 * QUEUE_SETTLE_MS while the queue is still not empty. Blocked in poll it costs no CPU, so an idle pool
 * stays at zero; /proc/net/{tcp,unix} would need a timer, and sock_diag a netlink client.
 */

/** 'arrived': the queue became non-empty; 'waiting': still non-empty QUEUE_SETTLE_MS later. */
export type QueueSignal = 'arrived' | 'waiting';

/** How long a connection may wait before the watcher says so again: long enough for an idle child to take it. */
export const QUEUE_SETTLE_MS = 25;

export interface QueueWatch {
  /** The watcher has called listen(2) (connections queue from now on), or it ended trying. */
  readonly listening: Promise<void>;
  stop(): void;
}

export interface QueueWatchOptions {
  /** The native helper (its --watch-queue mode). */
  helper: string;
  socketFd: number;
  backlog: number;
  onSignal: (signal: QueueSignal) => void;
  /** The watcher ended without being asked (it is started again after a second). */
  onError: (message: string) => void;
}

const RESTART_MS = 1000;

export function watchQueue(options: QueueWatchOptions): QueueWatch {
  let stopped = false;
  let child: ChildProcess | undefined;
  let restart: NodeJS.Timeout | undefined;
  let markListening!: () => void;
  const listening = new Promise<void>((resolve) => {
    markListening = resolve;
  });

  const start = () => {
    let stderr = '';
    const c = spawn(options.helper, ['--watch-queue', String(QUEUE_SETTLE_MS), String(options.backlog), String(process.pid)], {
      stdio: [options.socketFd, 'pipe', 'pipe'],
    });
    child = c;
    c.on('error', (error) => options.onError(`queue watcher: ${error.message}`));
    c.stderr!.setEncoding('utf8');
    c.stderr!.on('data', (chunk: string) => {
      stderr += chunk;
    });
    c.stdout!.on('data', (chunk: Buffer) => {
      for (const byte of chunk) {
        if (byte === 0x6c)
          markListening(); // 'l'
        else if (byte === 0x61) options.onSignal('arrived');
        else if (byte === 0x77) options.onSignal('waiting');
      }
    });
    c.once('exit', (code, signal) => {
      if (child === c) child = undefined;
      markListening(); // whether or not it got there: a start must not wait for a watcher that failed
      if (stopped) return;
      options.onError(`queue watcher ended (${signal ?? `exit ${code}`})${stderr.trim() === '' ? '' : `: ${stderr.trim()}`}; starting it again`);
      restart = setTimeout(start, RESTART_MS);
    });
  };
  start();
  return {
    listening,
    stop: () => {
      stopped = true;
      clearTimeout(restart);
      const pid = child?.pid;
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      child?.stdout?.destroy();
      child?.stderr?.destroy();
    },
  };
}
