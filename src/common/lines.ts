import type { Readable } from 'node:stream';

/**
 * The longest line passed on, in characters (php-fpm's log_limit is 1024 bytes): a child that writes
 * without a newline must not make the supervisor buffer without bound.
 */
export const MAX_LINE_LENGTH = 4096;
/** Ends a piece of a line that was cut at MAX_LINE_LENGTH; the rest follows as the next line(s). */
export const CONTINUED_MARK = ' [continued]';

/**
 * Calls `onLine` for each complete line of a text stream, and for a last line without a newline at its end.
 * A line longer than `maxLength` is passed on in pieces of `maxLength`, each but the last ending with
 * CONTINUED_MARK. Linear in the input: each chunk is searched once, and the unfinished line is never
 * longer than `maxLength`.
 */
export function splitLines(stream: Readable, onLine: (line: string) => void, maxLength = MAX_LINE_LENGTH): void {
  const splitter = lineSplitter(onLine, maxLength);
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => splitter.push(chunk));
  stream.once('end', () => splitter.end());
  stream.once('error', () => undefined);
}

export interface LineSplitter {
  /** Text in: every line it completes goes out. */
  push(chunk: string): void;
  /** The end of the text: a last line without a newline goes out. */
  end(): void;
}

/** splitLines' splitter, fed by hand (for output that arrives in frames rather than as a stream). */
export function lineSplitter(onLine: (line: string) => void, maxLength = MAX_LINE_LENGTH): LineSplitter {
  let pending = '';
  return {
    push(chunk) {
      let start = 0;
      for (let newline = chunk.indexOf('\n'); newline >= 0; newline = chunk.indexOf('\n', start)) {
        const line = pending + chunk.slice(start, newline);
        pending = '';
        start = newline + 1;
        emitCut(line, maxLength, onLine);
        onLine(line.slice(cutPoint(line, maxLength)));
      }
      pending += chunk.slice(start);
      if (pending.length > maxLength) {
        const keep = cutPoint(pending, maxLength);
        emitCut(pending.slice(0, keep), maxLength, onLine, true);
        pending = pending.slice(keep);
      }
    },
    end() {
      if (pending !== '') onLine(pending);
      pending = '';
    },
  };
}

/**
 * Where the last piece of `text` starts: the end of its last whole `maxLength` piece, leaving 1..maxLength
 * characters (0 for an empty text); never between the two halves of a surrogate pair.
 */
function cutPoint(text: string, maxLength: number): number {
  let at = 0;
  while (text.length - at > maxLength) at = pieceEnd(text, at, maxLength);
  return at;
}

function pieceEnd(text: string, from: number, maxLength: number): number {
  const end = from + maxLength;
  const code = text.charCodeAt(end - 1);
  return code >= 0xd800 && code <= 0xdbff && maxLength > 1 ? end - 1 : end;
}

/** The whole pieces before the cut point (all of `text` when `all`), each marked as continued. */
function emitCut(text: string, maxLength: number, onLine: (line: string) => void, all = false): void {
  const stop = all ? text.length : cutPoint(text, maxLength);
  for (let at = 0; at < stop; ) {
    const end = Math.min(pieceEnd(text, at, maxLength), stop);
    onLine(`${text.slice(at, end)}${CONTINUED_MARK}`);
    at = end;
  }
}
