export interface SignalActions {
  /** SIGTERM, SIGINT, SIGQUIT: graceful stop; a second one kills at once. */
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
  /** A signal whose default action would kill the supervisor without clean-up, and that means nothing to it. */
  ignore(signal: NodeJS.Signals): void;
}

/**
 * Signals that kill a process by default but that nobody sends a supervisor to stop it: a stray timer
 * signal (ALRM, VTALRM, PROF) or a file-size limit hit while writing the log (XFSZ; the write then fails
 * with EFBIG instead). Dying of one would leave the socket, control socket and PID file behind and the
 * children orphaned. SIGPIPE is already ignored by Node.
 */
export const IGNORED_SIGNALS: readonly NodeJS.Signals[] = ['SIGALRM', 'SIGVTALRM', 'SIGPROF', 'SIGXFSZ'].filter(
  // V8's sampling profiler (node --cpu-prof, --prof) runs on SIGPROF: a handler of ours would take it away.
  (signal) => signal !== 'SIGPROF' || !process.execArgv.some((arg) => arg.startsWith('--cpu-prof') || arg === '--prof'),
) as NodeJS.Signals[];

/**
 * Process signals → pool actions. Returns a function that removes the handlers.
 * SIGQUIT stops gracefully, as TERM does: php-fpm's QUIT is its graceful stop, and a user who types
 * Ctrl-\ wants the pool down, not a core-dumped supervisor with orphaned children.
 */
export function installSignalHandlers(actions: SignalActions): () => void {
  const table: [NodeJS.Signals, () => void][] = [
    ['SIGTERM', () => actions.stop('SIGTERM')],
    ['SIGINT', () => actions.stop('SIGINT')],
    ['SIGQUIT', () => actions.stop('SIGQUIT')],
    ['SIGHUP', () => actions.reload()],
    ['SIGUSR2', () => actions.forward('SIGUSR2')],
    ['SIGTTIN', () => actions.grow()],
    ['SIGTTOU', () => actions.shrink()],
    ['SIGUSR1', () => actions.reopenLogs()],
    ...IGNORED_SIGNALS.map((signal): [NodeJS.Signals, () => void] => [signal, () => actions.ignore(signal)]),
  ];
  for (const [signal, handler] of table) process.on(signal, handler);
  return () => {
    for (const [signal, handler] of table) process.off(signal, handler);
  };
}
