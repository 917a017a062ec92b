/**
 * The supervisor's wording and colour, through the real command: singular/plural, the stop line that says
 * when SIGKILL comes, and NO_COLOR / FORCE_COLOR / TERM=dumb for the log and the status table.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { RESPONDER, requireBuild, runCli, startPool } from '../helpers/pool.js';
import { removePath, tmpDir } from '../helpers/proc.js';

let dir: string;
before(() => {
  requireBuild();
  dir = tmpDir('sfts-inputs-msg');
});
after(() => removePath(dir));

// eslint-disable-next-line no-control-regex
const ESCAPE = /\x1b\[/;

test("'1 child serving', and the stop line says when SIGKILL comes", async () => {
  const one = await startPool(['-s', join(dir, 'one.sock'), '--kill-timeout', '7s', '--', RESPONDER]);
  await one.stop();
  assert.match(one.stderr(), /^spawn-fcgi-ts: 1 child serving on /m);
  assert.match(one.stderr(), /^spawn-fcgi-ts: stopping \(SIGTERM\): sending SIGTERM to 1 child, SIGKILL in 7 s to what is left$/m);
  assert.doesNotMatch(one.stderr(), /\b1 children\b/);

  const two = await startPool(['-s', join(dir, 'two.sock'), '-F', '2', '--kill-signal', 'USR1', '--kill-timeout', '500ms', '--', RESPONDER]);
  await two.stop();
  assert.match(two.stderr(), /^spawn-fcgi-ts: 2 children serving on /m);
  assert.match(two.stderr(), /^spawn-fcgi-ts: stopping \(SIGTERM\): sending SIGUSR1 to 2 children, SIGKILL in 500 ms to what is left$/m);
});

test('colour: FORCE_COLOR=1 colours the log and the status table off a terminal; NO_COLOR wins over it, TERM=dumb disables', async () => {
  const socket = join(dir, 'colour.sock');
  const env = (extra: Record<string, string>) => {
    const base = { ...process.env };
    delete base.NO_COLOR;
    delete base.FORCE_COLOR;
    delete base.TERM;
    return { ...base, ...extra };
  };
  // As non-root there would be a warning to colour; as root there is one anyway (the app runs as root).
  const forced = await startPool(['-s', socket, '--', RESPONDER], { env: env({ FORCE_COLOR: '1' }) });
  const plainStatus = await runCli(['status', '-s', socket], { env: env({}) });
  const forcedStatus = await runCli(['status', '-s', socket], { env: env({ FORCE_COLOR: '1' }) });
  const noColorStatus = await runCli(['status', '-s', socket], { env: env({ FORCE_COLOR: '1', NO_COLOR: '1' }) });
  await forced.stop();
  assert.match(forced.stderr(), /^spawn-fcgi-ts: \x1b\[33mWARNING: /m, 'the WARNING label is yellow when forced');
  assert.equal(plainStatus.code, 0);
  assert.doesNotMatch(plainStatus.stdout, ESCAPE, 'not a terminal: no colour');
  assert.match(forcedStatus.stdout, ESCAPE, 'FORCE_COLOR=1: colour');
  assert.doesNotMatch(noColorStatus.stdout, ESCAPE, 'NO_COLOR wins');

  const plain = await startPool(['-s', socket, '--', RESPONDER], { env: env({ NO_COLOR: '1', FORCE_COLOR: '3' }) });
  await plain.stop();
  assert.doesNotMatch(plain.stderr(), ESCAPE);
  const dumb = await startPool(['-s', socket, '--', RESPONDER], { env: env({ TERM: 'dumb' }) });
  await dumb.stop();
  assert.doesNotMatch(dumb.stderr(), ESCAPE);
});
