/** Exit code spawn-fcgi uses for every error before a child runs (it returns -1 from main). */
export const SETUP_EXIT_CODE = 255;

/**
 * An error the user can fix: bad flags, a busy socket, an unknown user. It is printed as one line,
 * `spawn-fcgi-ts: <message>`, and the process exits with `exitCode` having started nothing.
 */
export class SetupError extends Error {
  override name = 'SetupError';
  readonly exitCode: number;
  /** Print the `--help` hint after the message (bad command line). */
  readonly usage: boolean;

  constructor(message: string, options: { exitCode?: number; usage?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.exitCode = options.exitCode ?? SETUP_EXIT_CODE;
    this.usage = options.usage ?? false;
  }
}

export const usageError = (message: string): SetupError => new SetupError(message, { usage: true });

/** strerror-like text for a Node system error: "Address already in use" rather than "EADDRINUSE". */
export const errnoText = (error: unknown): string => {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && code in ERRNO_TEXT) return ERRNO_TEXT[code]!;
  return (error as Error | undefined)?.message ?? String(error);
};

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'Permission denied',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EEXIST: 'File exists',
  EINVAL: 'Invalid argument',
  EISDIR: 'Is a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  ENOENT: 'No such file or directory',
  ENOTDIR: 'Not a directory',
  ENOTSOCK: 'Socket operation on non-socket',
  EPERM: 'Operation not permitted',
  EROFS: 'Read-only file system',
  ECONNREFUSED: 'Connection refused',
  EMFILE: 'Too many open files',
  ENFILE: 'Too many open files in system',
  ENOSPC: 'No space left on device',
  EDQUOT: 'Disk quota exceeded',
  ENXIO: 'No such device or address',
  ETXTBSY: 'Text file busy',
};
