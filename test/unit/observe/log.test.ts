import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { CONTINUED_MARK, splitLines } from '../../../src/common/lines.js';
import { count, escapeControl, formatMs, useColour } from '../../../src/observe/log.js';

test('useColour: NO_COLOR, FORCE_COLOR, TERM=dumb, else the terminal decides', () => {
  assert.equal(useColour({}, true), true);
  assert.equal(useColour({}, false), false);
  assert.equal(useColour({ NO_COLOR: '1' }, true), false);
  assert.equal(useColour({ NO_COLOR: '' }, true), true, 'an empty NO_COLOR does not count');
  assert.equal(useColour({ NO_COLOR: '1', FORCE_COLOR: '1' }, true), false, 'NO_COLOR wins');
  assert.equal(useColour({ FORCE_COLOR: '0' }, true), false);
  for (const level of ['1', '2', '3']) assert.equal(useColour({ FORCE_COLOR: level }, false), true);
  assert.equal(useColour({ TERM: 'dumb' }, true), false);
  assert.equal(useColour({ TERM: 'dumb', FORCE_COLOR: '1' }, false), true, 'FORCE_COLOR forces');
  assert.equal(useColour({ TERM: 'xterm-256color' }, true), true);
});

test('escapeControl: C0 (but tab), DEL and C1 become visible escapes', () => {
  assert.equal(escapeControl('a\tb'), 'a\tb');
  assert.equal(escapeControl('evil\r\x1b[2Jline\nforged'), 'evil\\x0d\\x1b[2Jline\\x0aforged');
  assert.equal(escapeControl('\x00\x7f\x9b\u2028'), '\\x00\\x7f\\x9b\\u2028');
  assert.equal(escapeControl('café ✓'), 'café ✓');
});

test('count and formatMs', () => {
  assert.equal(count(1, 'child', 'children'), '1 child');
  assert.equal(count(0, 'child', 'children'), '0 children');
  assert.equal(count(2, 'child', 'children'), '2 children');
  assert.equal(formatMs(500), '500 ms');
  assert.equal(formatMs(10_000), '10 s');
  assert.equal(formatMs(2500), '2.5 s');
});

function linesOf(chunks: string[], maxLength: number): Promise<string[]> {
  const stream = new PassThrough();
  const lines: string[] = [];
  splitLines(stream, (line) => lines.push(line), maxLength);
  return new Promise((resolve) => {
    stream.once('end', () => setImmediate(() => resolve(lines)));
    for (const chunk of chunks) stream.write(chunk);
    stream.end();
  });
}

test('splitLines: whole lines across chunks, a last line without a newline', async () => {
  assert.deepEqual(await linesOf(['a\nb', 'c\n', '\nd'], 100), ['a', 'bc', '', 'd']);
});

test('splitLines: a line over the limit is passed on in marked pieces, never held whole', async () => {
  const C = CONTINUED_MARK;
  assert.deepEqual(await linesOf(['abcdefghij\n'], 4), [`abcd${C}`, `efgh${C}`, 'ij']);
  assert.deepEqual(await linesOf(['ab', 'cd', 'ef', 'g\nxy'], 4), [`abcd${C}`, 'efg', 'xy']);
  assert.deepEqual(await linesOf(['abcd\n'], 4), ['abcd'], 'exactly the limit is not cut');
  // A surrogate pair is never split.
  const lines = await linesOf(['abc😀def\n'], 4);
  assert.deepEqual(lines, [`abc${C}`, `😀de${C}`, 'f']);
});

test('splitLines: a flood without newlines is linear and bounded', async () => {
  const chunk = 'x'.repeat(65_536);
  const stream = new PassThrough();
  let pieces = 0;
  let longest = 0;
  splitLines(
    stream,
    (line) => {
      pieces++;
      longest = Math.max(longest, line.length);
    },
    4096,
  );
  for (let i = 0; i < 512; i++) stream.write(chunk); // 32 MiB
  stream.end();
  await new Promise((resolve) => stream.once('end', resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(pieces, (512 * 65_536) / 4096);
  assert.equal(longest, 4096 + CONTINUED_MARK.length);
});
