import type { Readable } from 'node:stream';

/** Calls `onLine` for each complete line of a text stream, and for a last line without a newline at its end. */
export function splitLines(stream: Readable, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const line of lines) onLine(line);
  });
  stream.once('end', () => {
    if (rest !== '') onLine(rest);
  });
  stream.once('error', () => undefined);
}
