export interface SignalActions {
  /** SIGTERM, SIGINT: graceful stop; a second one kills at once. */
  stop(signal: NodeJS.Signals): void;
  /** SIGHUP: rolling restart. */
  reload(): void;
  /** SIGUSR2: passed on to every child, as multiwatch does. */
  forward(signal: NodeJS.Signals): void;
  /** SIGTTIN / SIGTTOU: one child more / less. */
  grow(): void;
  shrink(): void;
  /** SIGUSR1: reopen the log file (logrotate). */
  reopenLogs(): void;
}

/** Process signals → pool actions. Returns a function that removes the handlers. */
export function installSignalHandlers(actions: SignalActions): () => void {
  const table: [NodeJS.Signals, () => void][] = [
    ['SIGTERM', () => actions.stop('SIGTERM')],
    ['SIGINT', () => actions.stop('SIGINT')],
    ['SIGHUP', () => actions.reload()],
    ['SIGUSR2', () => actions.forward('SIGUSR2')],
    ['SIGTTIN', () => actions.grow()],
    ['SIGTTOU', () => actions.shrink()],
    ['SIGUSR1', () => actions.reopenLogs()],
  ];
  for (const [signal, handler] of table) process.on(signal, handler);
  return () => {
    for (const [signal, handler] of table) process.off(signal, handler);
  };
}
