/**
 * src/options/config-file.ts: the spawn-php.sh variable file read without a shell. Every accepted form is also
 * sourced by the real /bin/sh (dash) and bash, and the values must be the same: the parser reads these
 * files the way the shell script that uses them does.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import {
  CONFIG_VARIABLES,
  MAX_CONFIG_BYTES,
  configOptions,
  configToRawOptions,
  loadConfigFile,
  mergeRawOptions,
  parseConfig,
  parseConfigFile,
} from '../../../src/options/config-file.js';
import { SetupError } from '../../../src/common/errors.js';
import { resolveOptions } from '../../../src/options/options.js';

const dir = mkdtempSync(join(tmpdir(), 'sfts-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** What a shell sees after `. file`: the value of every known name that is set. */
function sourceWithShell(shell: string, text: string): Record<string, string> {
  const file = join(dir, `conf-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, text);
  const script = `. "$1" || exit 99; for n in ${CONFIG_VARIABLES.join(' ')}; do eval "s=\\\${$n+x}"; if [ "$s" = x ]; then eval "v=\\$$n"; printf '%s\\0%s\\0' "$n" "$v"; fi; done`;
  const result = spawnSync(shell, ['-c', script, shell, file], { env: {}, encoding: 'utf8' });
  assert.equal(result.status, 0, `${shell} could not source ${JSON.stringify(text)}: ${result.stderr}`);
  const parts = result.stdout.split('\0');
  const vars: Record<string, string> = {};
  for (let i = 0; i + 1 < parts.length; i += 2) vars[parts[i]!] = parts[i + 1]!;
  return vars;
}

function parseError(text: string, fileName = '/etc/spawn-php.conf'): string {
  try {
    parseConfigFile(text, fileName);
  } catch (error) {
    assert.ok(error instanceof SetupError, `not a SetupError: ${String(error)}`);
    return error.message;
  }
  assert.fail(`accepted: ${JSON.stringify(text)}`);
}

describe('parseConfigFile: accepted forms, as the shell reads them', () => {
  const samples: [string, string, Record<string, string>][] = [
    ['plain', 'FCGIPORT=9000\n', { FCGIPORT: '9000' }],
    ['double quotes', 'FCGIDIR="/srv/my app"\n', { FCGIDIR: '/srv/my app' }],
    ['single quotes are literal', 'FCGIDIR=\'/srv/$x \\ "q"\'\n', { FCGIDIR: '/srv/$x \\ "q"' }],
    ['escapes in double quotes', 'FCGIDIR="a\\"b\\\\c\\$d\\`e\\n"\n', { FCGIDIR: 'a"b\\c$d`e\\n' }],
    ['backslash outside quotes', 'FCGIDIR=a\\ b\\$c\n', { FCGIDIR: 'a b$c' }],
    ['mixed quoting in one word', `FCGIDIR=/a'/b c'"/d e"f\n`, { FCGIDIR: '/a/b c/d ef' }],
    ['empty values', 'FCGIDIR=\nFCGIPIDFILE=""\nCHROOT=\'\'\n', { FCGIDIR: '', FCGIPIDFILE: '', CHROOT: '' }],
    ['export with a value', 'export FCGISOCKET=/tmp/a.sock\n', { FCGISOCKET: '/tmp/a.sock' }],
    ['export of a name set before', 'PHP_FCGI_MAX_REQUESTS=1000\nexport PHP_FCGI_MAX_REQUESTS FCGI_WEB_SERVER_ADDRS\n', { PHP_FCGI_MAX_REQUESTS: '1000' }],
    [
      'comments and blank lines',
      '# a comment\n\n   # indented\nFCGIPORT=1 # trailing\n\t\nFCGIADDR=127.0.0.1\t# tab\n',
      { FCGIPORT: '1', FCGIADDR: '127.0.0.1' },
    ],
    ['# inside a word is not a comment', 'FCGIDIR=/a#b\nFCGIPIDFILE="/p # q"\n', { FCGIDIR: '/a#b', FCGIPIDFILE: '/p # q' }],
    ['several assignments on a line', 'FCGIPORT=1 FCGIADDR=::1; FCGIDIR=/x\n', { FCGIPORT: '1', FCGIADDR: '::1', FCGIDIR: '/x' }],
    ['last assignment wins', 'FCGIPORT=1\nFCGIPORT=2\n', { FCGIPORT: '2' }],
    [
      '$NAME and ${NAME} of earlier names',
      'FCGIDIR="/srv/a b"\nFCGISOCKET=$FCGIDIR/s.sock\nFCGIPIDFILE="${FCGIDIR}.pid"\n',
      { FCGIDIR: '/srv/a b', FCGISOCKET: '/srv/a b/s.sock', FCGIPIDFILE: '/srv/a b.pid' },
    ],
    ['a lone $ is literal', 'FCGIDIR="a$ b$"\n', { FCGIDIR: 'a$ b$' }],
    ['quoted value over two lines', 'ALLOWED_ENV="PATH\nUSER"\n', { ALLOWED_ENV: 'PATH\nUSER' }],
    ['backslash-newline continues', 'ALLOWED_ENV="PATH \\\nUSER"\nFCGIDIR=/a\\\nb\n', { ALLOWED_ENV: 'PATH USER', FCGIDIR: '/ab' }],
    ['no final newline, CRLF line ends', 'FCGIPORT=1\r\nFCGIADDR=127.0.0.1', { FCGIPORT: '1', FCGIADDR: '127.0.0.1' }],
    ['a quoted or inner tilde is literal', 'FCGIDIR="~/a"\nFCGIPIDFILE=/a~b\n', { FCGIDIR: '~/a', FCGIPIDFILE: '/a~b' }],
    ['SPAWNFCGI is accepted', 'SPAWNFCGI=/usr/bin/spawn-fcgi\n', { SPAWNFCGI: '/usr/bin/spawn-fcgi' }],
  ];
  for (const [name, text, expected] of samples) {
    test(name, () => {
      const parsed = parseConfigFile(text, 'x.conf');
      assert.deepEqual(parsed, expected);
      if (!text.includes('\r')) {
        // The same file through real shells (CRLF is the one form a shell would read differently).
        assert.deepEqual(sourceWithShell('/bin/sh', text), expected, 'dash disagrees');
        assert.deepEqual(sourceWithShell('bash', text), expected, 'bash disagrees');
      }
    });
  }

  test('the classic spawn-php.sh settings block', () => {
    const text = [
      '## ABSOLUTE path to the spawn-fcgi binary',
      'SPAWNFCGI="/usr/bin/spawn-fcgi"',
      '## ABSOLUTE path to the PHP binary',
      'FCGIPROGRAM="/usr/bin/php-cgi"',
      '## TCP port to which to bind on localhost',
      'FCGIPORT="1026"',
      '## number of PHP children to spawn',
      'PHP_FCGI_CHILDREN=10',
      'PHP_FCGI_MAX_REQUESTS=1000',
      'FCGI_WEB_SERVER_ADDRS="127.0.0.1,192.168.2.10"',
      '# allowed environment variables, separated by spaces',
      'ALLOWED_ENV="ORACLE_HOME PATH USER"',
      'USERID=wwwrun',
      'GROUPID=wwwrun',
      '',
    ].join('\n');
    const parsed = parseConfigFile(text, 'spawn-php.conf');
    assert.deepEqual(parsed, sourceWithShell('/bin/sh', text));
    assert.equal(parsed.FCGI_WEB_SERVER_ADDRS, '127.0.0.1,192.168.2.10');
    assert.equal(Object.keys(parsed).length, 9);
  });
});

describe('parseConfigFile: errors name the file and the line', () => {
  const errors: [string, string, string][] = [
    ['command substitution $()', '# x\nFCGIPORT=1\nFCGIDIR="$(pwd)"\n', '/etc/spawn-php.conf:3: command substitution is not allowed'],
    ['command substitution, unquoted', 'FCGIDIR=$(pwd)\n', '/etc/spawn-php.conf:1: command substitution is not allowed'],
    ['backticks', '\n\n\n\n\n\nFCGIDIR=`pwd`\n', '/etc/spawn-php.conf:7: command substitution is not allowed'],
    ['backticks in double quotes', 'FCGIDIR="/a`pwd`"\n', '/etc/spawn-php.conf:1: command substitution is not allowed'],
    ['a command line', 'FCGIPORT=1\n$(reboot)\n', '/etc/spawn-php.conf:2: command substitution is not allowed'],
    ['${ with a command', 'FCGIDIR=${x:-$(id)}\n', '/etc/spawn-php.conf:1: command substitution is not allowed'],
    ['command substitution in another variable', 'PHPRC="$(id)"\n', '/etc/spawn-php.conf:1: command substitution is not allowed'],
    ['backticks in an exported variable', 'export TMPDIR=`mktemp -d`\n', '/etc/spawn-php.conf:1: command substitution is not allowed'],
    ['a command', 'FCGIPORT=1\nrm -rf /tmp/x\n', "/etc/spawn-php.conf:2: 'rm' is not an assignment"],
    ['a command after an assignment', 'FCGIPORT=1 php-cgi\n', "/etc/spawn-php.conf:1: 'php-cgi' is not an assignment"],
    ['blanks around =', 'FCGIPORT = 1\n', "/etc/spawn-php.conf:1: no blanks allowed around '=' (write FCGIPORT=value)"],
    ['unterminated double quote: the line it opens on', 'FCGIPORT=1\nFCGIDIR="abc\n\n\n', '/etc/spawn-php.conf:2: unterminated double quote'],
    ['unterminated single quote', "FCGIDIR='abc\n", '/etc/spawn-php.conf:1: unterminated single quote'],
    ['a variable not set earlier', 'FCGIDIR=$HOME/x\n', "/etc/spawn-php.conf:1: '$HOME' is not set earlier in this file"],
    ['a variable set later', 'FCGISOCKET="$FCGIDIR/s"\nFCGIDIR=/x\n', "/etc/spawn-php.conf:1: '$FCGIDIR' is not set earlier in this file"],
    ['parameter expansion operators', 'FCGIPORT=1\nFCGIDIR=${FCGIPORT:-2}\n', "/etc/spawn-php.conf:2: '${FCGIPORT:-2}': only ${NAME}"],
    ['special parameters', 'FCGIDIR="$1"\n', "/etc/spawn-php.conf:1: '$1': special parameters are not supported"],
    ['a pipe', 'FCGIDIR=a|b\n', "/etc/spawn-php.conf:1: '|' is not allowed here (quote the value)"],
    ['a redirection', 'FCGIDIR=a >/tmp/x\n', "/etc/spawn-php.conf:1: '>/tmp/x' is not an assignment"],
    ['tilde', 'FCGIDIR=~/app\n', '/etc/spawn-php.conf:1: tilde expansion is not supported'],
    ['tilde after a colon', 'ALLOWED_ENV=PATH\nFCGIDIR=/a:~/b\n', '/etc/spawn-php.conf:2: tilde expansion is not supported'],
    ['export options', 'export -n FCGIPORT\n', '/etc/spawn-php.conf:1: export options are not allowed'],
    ['export alone', 'export\n', "/etc/spawn-php.conf:1: 'export' without a name"],
    ['a bad port', '\nFCGIPORT=70000\n', '/etc/spawn-php.conf:2: invalid port: 70000 (FCGIPORT: expected an integer from 1 to 65535)'],
    [
      'a bad child count',
      'PHP_FCGI_CHILDREN=many\n',
      "/etc/spawn-php.conf:1: invalid value for PHP_FCGI_CHILDREN: 'many' (expected an integer from 0 to 65535)",
    ],
    ['a bad process count', 'FCGIPROCS=0\n', "/etc/spawn-php.conf:1: invalid value for FCGIPROCS: '0' (expected an integer from 1 to 4096)"],
    ['too many processes', 'FCGI_CHILDREN=100000\n', "/etc/spawn-php.conf:1: invalid value for FCGI_CHILDREN: '100000' (expected an integer from 1 to 4096)"],
    ['a bad mode', 'SOCKMODE=rw\n', "/etc/spawn-php.conf:1: invalid value for SOCKMODE: 'rw' (expected an octal mode"],
    ['a bad signal', 'KILL_SIGNAL=NOPE\n', "/etc/spawn-php.conf:1: invalid value for KILL_SIGNAL: 'NOPE' (expected a signal name"],
    [
      'a signal that does not stop',
      'KILL_SIGNAL=CONT\n',
      "/etc/spawn-php.conf:1: invalid value for KILL_SIGNAL: 'CONT' (expected a signal that ends a process",
    ],
    ['a bad timeout', 'KILL_TIMEOUT=soon\n', "/etc/spawn-php.conf:1: invalid value for KILL_TIMEOUT: 'soon' (expected a duration"],
    ['a bad address', 'FCGIADDR=no_such!\n', "/etc/spawn-php.conf:1: 'no_such!' is not a valid IP address (FCGIADDR: expected"],
    [
      '$V$V doubling stops at the value limit',
      `V=${'x'.repeat(1000)}\n${'V=$V$V\n'.repeat(40)}`,
      '/etc/spawn-php.conf:9: the value of this variable is longer than 130816 bytes',
    ],
    [
      'a value over the limit',
      `FCGI_WEB_SERVER_ADDRS=${'127.0.0.1,'.repeat(14000)}\n`,
      '/etc/spawn-php.conf:1: the value of FCGI_WEB_SERVER_ADDRS is longer than 130816 bytes',
    ],
    ['a bad name in ALLOWED_ENV', 'ALLOWED_ENV="PATH 1X"\n', "/etc/spawn-php.conf:1: ALLOWED_ENV: '1X' is not a variable name"],
    ['socket and port', 'FCGISOCKET=/tmp/s\n\nFCGIPORT=9000\n', '/etc/spawn-php.conf:3: FCGISOCKET (line 1) and FCGIPORT (line 3) are both set'],
    ['aliases that disagree', 'FCGIPROCS=2\nFCGI_CHILDREN=3\n', '/etc/spawn-php.conf:2: FCGIPROCS (line 1) and FCGI_CHILDREN (line 2) disagree'],
    ['chroot aliases that disagree', 'CHROOT=/a\nFCGICHROOT=/b\n', '/etc/spawn-php.conf:2: FCGICHROOT (line 2) and CHROOT (line 1) disagree'],
    ['line numbers count lines inside quotes', 'ALLOWED_ENV="A\nB\nC"\nFCGIDIR=`x`\n', '/etc/spawn-php.conf:4: command substitution is not allowed'],
  ];
  for (const [name, text, expected] of errors) {
    test(name, () => {
      const message = parseError(text);
      assert.ok(message.startsWith(expected), `message: ${message}\nexpected to start with: ${expected}`);
    });
  }

  test('the file name is the one given', () => {
    assert.equal(parseError('FCGIDIR=`x`', 'relative/php.conf'), 'relative/php.conf:1: command substitution is not allowed');
  });

  test('a file over 1 MiB is refused before parsing', () => {
    assert.throws(
      () => parseConfig(`# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`, '/etc/big.conf'),
      /^SetupError: config file '\/etc\/big.conf' is larger than 1048576 bytes: refused$/,
    );
  });

  test('same value under both aliases, and an empty one, are fine', () => {
    assert.deepEqual(parseConfigFile('FCGIPROCS=2\nFCGI_CHILDREN=2\nCHROOT=\nFCGICHROOT=/x\nFCGISOCKET=\nFCGIPORT=9000\n', 'x'), {
      FCGIPROCS: '2',
      FCGI_CHILDREN: '2',
      CHROOT: '',
      FCGICHROOT: '/x',
      FCGISOCKET: '',
      FCGIPORT: '9000',
    });
  });
});

describe('configToRawOptions', () => {
  test('every variable maps to its flag', () => {
    const raw = configToRawOptions({
      SPAWNFCGI: '/usr/bin/spawn-fcgi',
      FCGIPROGRAM: '/usr/bin/php-cgi',
      FCGIPORT: '9000',
      FCGIADDR: '127.0.0.1',
      PHP_FCGI_CHILDREN: '4',
      PHP_FCGI_MAX_REQUESTS: '500',
      FCGI_WEB_SERVER_ADDRS: '127.0.0.1,10.0.0.1',
      ALLOWED_ENV: 'PATH USER',
      USERID: 'www-data',
      GROUPID: 'www-data',
      SOCKUSERID: 'nginx',
      SOCKGROUPID: 'nginx',
      SOCKMODE: '0600',
      FCGIPROCS: '3',
      FCGI_BACKLOG: '64',
      FCGIPIDFILE: '/run/php.pid',
      FCGICHROOT: '/srv/jail',
      FCGIDIR: '/srv/app',
      KILL_SIGNAL: 'QUIT',
      KILL_TIMEOUT: '5s',
    });
    assert.deepEqual(raw, {
      app: ['/usr/bin/php-cgi'],
      p: '9000',
      a: '127.0.0.1',
      C: '4',
      F: '3',
      u: 'www-data',
      g: 'www-data',
      U: 'nginx',
      G: 'nginx',
      M: '0600',
      b: '64',
      P: '/run/php.pid',
      c: '/srv/jail',
      d: '/srv/app',
      killSignal: 'QUIT',
      killTimeout: '5s',
      webServerAddrs: '127.0.0.1,10.0.0.1',
      copyEnv: ['PATH', 'USER', 'PHP_FCGI_MAX_REQUESTS', 'FCGI_WEB_SERVER_ADDRS'],
      env: ['PHP_FCGI_MAX_REQUESTS=500'],
    });
  });

  test('the socket, FCGI_CHILDREN and CHROOT', () => {
    assert.deepEqual(configToRawOptions({ FCGISOCKET: '/tmp/a b.sock', FCGI_CHILDREN: '2', CHROOT: '/jail' }), { s: '/tmp/a b.sock', F: '2', c: '/jail' });
  });

  test('FCGIPROGRAM: one path, or words split on blanks', () => {
    assert.deepEqual(configToRawOptions({ FCGIPROGRAM: '/usr/bin/php-cgi' }).app, ['/usr/bin/php-cgi']);
    assert.deepEqual(configToRawOptions({ FCGIPROGRAM: ' /usr/bin/php-cgi  -c\t/etc/php.ini ' }).app, ['/usr/bin/php-cgi', '-c', '/etc/php.ini']);
  });

  test('ALLOWED_ENV: blanks or commas; the php-cgi settings are always let through, once', () => {
    assert.deepEqual(configToRawOptions({ ALLOWED_ENV: 'PATH,USER  HOME' }).copyEnv, [
      'PATH',
      'USER',
      'HOME',
      'PHP_FCGI_MAX_REQUESTS',
      'FCGI_WEB_SERVER_ADDRS',
    ]);
    assert.deepEqual(configToRawOptions({ ALLOWED_ENV: 'FCGI_WEB_SERVER_ADDRS PATH' }).copyEnv, ['FCGI_WEB_SERVER_ADDRS', 'PATH', 'PHP_FCGI_MAX_REQUESTS']);
    assert.deepEqual(configToRawOptions({ ALLOWED_ENV: '' }).copyEnv, ['PHP_FCGI_MAX_REQUESTS', 'FCGI_WEB_SERVER_ADDRS']);
    assert.equal(configToRawOptions({ FCGIPORT: '1' }).copyEnv, undefined, 'no ALLOWED_ENV: the environment is inherited');
  });

  test('empty values are unset; SPAWNFCGI is ignored', () => {
    assert.deepEqual(configToRawOptions({ FCGISOCKET: '', FCGIPORT: '9000', PHP_FCGI_CHILDREN: '', SPAWNFCGI: '/x', FCGIPROCS: '', FCGI_CHILDREN: '2' }), {
      p: '9000',
      F: '2',
    });
  });

  test('a parsed file resolves to the options the same flags give', () => {
    const raw = configToRawOptions(
      parseConfigFile(
        'FCGISOCKET=/tmp/x.sock\nFCGIPROGRAM=/usr/bin/php-cgi\nPHP_FCGI_CHILDREN=0\nFCGIPROCS=2\nPHP_FCGI_MAX_REQUESTS=100\nALLOWED_ENV="PATH"\nKILL_TIMEOUT=3\n',
        'x',
      ),
    );
    const options = resolveOptions(raw);
    assert.deepEqual(options.socket, { kind: 'unix', path: '/tmp/x.sock', abstract: false });
    assert.deepEqual(options.app, ['/usr/bin/php-cgi']);
    assert.equal(options.phpChildren, 0);
    assert.equal(options.procs, 2);
    assert.equal(options.killTimeoutMs, 3000);
    assert.deepEqual(options.env, { PHP_FCGI_MAX_REQUESTS: '100' });
    assert.deepEqual(options.copyEnv, ['PATH', 'PHP_FCGI_MAX_REQUESTS', 'FCGI_WEB_SERVER_ADDRS']);
  });
});

describe('a pool that sizes itself in a config file', () => {
  test('FCGI_MIN_PROCS and FCGI_IDLE_TIMEOUT map to --min-procs and --idle-timeout', () => {
    const raw = configToRawOptions(parseConfigFile('FCGISOCKET=/tmp/x.sock\nFCGIPROCS=4\nFCGI_MIN_PROCS=0\nFCGI_IDLE_TIMEOUT=30s\n', 'x'));
    assert.equal(raw.F, '4');
    assert.equal(raw.minProcs, '0');
    assert.equal(raw.idleTimeout, '30s');
  });
  test('bad values name the variable', () => {
    assert.throws(() => parseConfigFile('FCGI_MIN_PROCS=some\n', 'f'), /f:1: invalid value for FCGI_MIN_PROCS/);
    assert.throws(() => parseConfigFile('FCGI_IDLE_TIMEOUT=soon\n', 'f'), /f:1: invalid value for FCGI_IDLE_TIMEOUT/);
  });
});

describe('mergeRawOptions', () => {
  const file = configToRawOptions({
    FCGIPORT: '9000',
    FCGIADDR: '127.0.0.1',
    FCGIPROGRAM: '/usr/bin/php-cgi',
    PHP_FCGI_CHILDREN: '4',
    FCGIPROCS: '2',
    PHP_FCGI_MAX_REQUESTS: '100',
    ALLOWED_ENV: 'PATH',
    KILL_TIMEOUT: '5s',
  });

  test('an empty command line keeps the file', () => {
    assert.deepEqual(mergeRawOptions(file, { S: false, n: false, keepSocket: false }), { ...file, S: false, n: false, keepSocket: false });
  });

  test('a flag on the command line wins, the others stay', () => {
    const merged = mergeRawOptions(file, { C: '8', n: true, killTimeout: '1s' });
    assert.equal(merged.C, '8');
    assert.equal(merged.n, true);
    assert.equal(merged.killTimeout, '1s');
    assert.equal(merged.F, '2');
    assert.equal(merged.p, '9000');
  });

  test('env entries add up, the command line last (so it overrides a name)', () => {
    const merged = mergeRawOptions(file, { env: ['PHP_FCGI_MAX_REQUESTS=7', 'A=b'] });
    assert.deepEqual(merged.env, ['PHP_FCGI_MAX_REQUESTS=100', 'PHP_FCGI_MAX_REQUESTS=7', 'A=b']);
    assert.deepEqual(resolveOptions(merged).env, { PHP_FCGI_MAX_REQUESTS: '7', A: 'b' });
    assert.deepEqual(mergeRawOptions(file, { copyEnv: ['HOME', 'PATH'] }).copyEnv, ['PATH', 'PHP_FCGI_MAX_REQUESTS', 'FCGI_WEB_SERVER_ADDRS', 'HOME']);
    assert.deepEqual(mergeRawOptions({}, { env: ['X=1'] }).env, ['X=1']);
    assert.equal(mergeRawOptions({}, {}).env, undefined);
  });

  test('a command-line socket replaces the file socket; the file address stays for -p', () => {
    const unix = mergeRawOptions(file, { s: '/tmp/other.sock' });
    assert.equal(unix.s, '/tmp/other.sock');
    assert.equal(unix.p, undefined);
    assert.deepEqual(resolveOptions(unix).socket, { kind: 'unix', path: '/tmp/other.sock', abstract: false });
    const tcp = mergeRawOptions(configToRawOptions({ FCGISOCKET: '/tmp/x.sock', FCGIADDR: '127.0.0.1', FCGIPROGRAM: '/bin/true' }), { p: '9001' });
    assert.deepEqual(resolveOptions(tcp).socket, { kind: 'tcp', host: '127.0.0.1', port: 9001 });
    assert.deepEqual(resolveOptions(mergeRawOptions(file, { a: '::1' })).socket, { kind: 'tcp', host: '::1', port: 9000 });
  });

  test('a command-line application (or -f) replaces the file program', () => {
    assert.deepEqual(mergeRawOptions(file, { app: ['/usr/bin/env', 'x'] }).app, ['/usr/bin/env', 'x']);
    const withF = mergeRawOptions(file, { f: '/usr/bin/php-cgi -q' });
    assert.equal(withF.app, undefined);
    assert.deepEqual(resolveOptions(withF).app, ['/bin/sh', '-c', 'exec /usr/bin/php-cgi -q']);
    assert.deepEqual(mergeRawOptions(file, { app: [] }).app, ['/usr/bin/php-cgi']);
  });

  test('the inputs are not modified', () => {
    const before = JSON.stringify(file);
    const cli = { env: ['A=1'], s: '/tmp/s' };
    mergeRawOptions(file, cli);
    assert.equal(JSON.stringify(file), before);
    assert.deepEqual(cli, { env: ['A=1'], s: '/tmp/s' });
  });
});

describe('loadConfigFile', () => {
  test('reads through the given function and names the file in errors', () => {
    const path = join(dir, 'php.conf');
    writeFileSync(path, 'FCGISOCKET=/tmp/x.sock\nFCGIPROGRAM=/usr/bin/php-cgi\n');
    assert.deepEqual(
      loadConfigFile(path, (p) => readFileSync(p, 'utf8')),
      { s: '/tmp/x.sock', app: ['/usr/bin/php-cgi'] },
    );
    writeFileSync(path, 'FCGISOCKET=/tmp/x.sock\nFCGIPROGRAM=`which php-cgi`\n');
    assert.throws(() => loadConfigFile(path, (p) => readFileSync(p, 'utf8')), {
      name: 'SetupError',
      message: `${path}:2: command substitution is not allowed`,
    });
    const missing = join(dir, 'missing.conf');
    assert.throws(() => loadConfigFile(missing, (p) => readFileSync(p, 'utf8')), {
      name: 'SetupError',
      message: `reading config file '${missing}' failed: No such file or directory`,
    });
  });
});

describe('scripts/spawn-php.conf.example', () => {
  const example = readFileSync(new URL('../../../scripts/spawn-php.conf.example', import.meta.url), 'utf8');

  test('parses, and means what the shell reads', () => {
    const parsed = parseConfigFile(example, 'spawn-php.conf.example');
    assert.deepEqual(parsed, sourceWithShell('/bin/sh', example));
    const options = resolveOptions(configToRawOptions(parsed));
    assert.equal(options.socket?.kind, 'unix');
    assert.deepEqual(options.app, ['/usr/bin/php-cgi']);
  });

  test('every commented-out setting is valid once uncommented', () => {
    const uncommented = example
      .split('\n')
      .map((line) => line.replace(/^#([A-Z_]+=)/, '$1'))
      // the alternatives of settings already given
      .filter((line) => !/^(FCGIPORT|FCGIADDR|FCGI_CHILDREN|CHROOT)=/.test(line))
      .join('\n');
    const parsed = parseConfigFile(uncommented, 'uncommented');
    assert.deepEqual(parsed, sourceWithShell('bash', uncommented));
    for (const name of [
      'SPAWNFCGI',
      'FCGIPROCS',
      'FCGI_WEB_SERVER_ADDRS',
      'FCGI_BACKLOG',
      'FCGIPIDFILE',
      'FCGICHROOT',
      'FCGIDIR',
      'KILL_SIGNAL',
      'KILL_TIMEOUT',
    ]) {
      assert.ok(parsed[name] !== undefined, `${name} is not in the example`);
    }
    resolveOptions(configToRawOptions(parsed));
  });
});

describe('other variables, as spawn-php.sh (which sources the file) means them', () => {
  const options = (text: string) => {
    const warnings: string[] = [];
    const raw = configOptions(parseConfig(text, '/etc/php.conf'), (w) => warnings.push(w));
    return { raw, warnings };
  };

  test('an exported variable named by ALLOWED_ENV reaches the app; a helper variable is used as $NAME', () => {
    const { raw, warnings } = options('BASE=/srv/php\nexport PHPRC=/etc/php/8.2/cgi\nTMPDIR=$BASE/tmp\nFCGIDIR=$BASE\nALLOWED_ENV="PATH PHPRC TMPDIR"\n');
    assert.deepEqual(raw.env, ['PHPRC=/etc/php/8.2/cgi', 'TMPDIR=/srv/php/tmp']);
    assert.deepEqual(raw.copyEnv, ['PATH', 'PHPRC', 'TMPDIR', 'PHP_FCGI_MAX_REQUESTS', 'FCGI_WEB_SERVER_ADDRS']);
    assert.equal(raw.d, '/srv/php');
    assert.deepEqual(warnings, []);
    assert.deepEqual(resolveOptions({ ...raw, s: '/tmp/x.sock', app: ['x'] }).env, { PHPRC: '/etc/php/8.2/cgi', TMPDIR: '/srv/php/tmp' });
  });

  test('with ALLOWED_ENV, a name it does not list stays out (exported or not), with a warning', () => {
    const { raw, warnings } = options('export PHPRC=/etc/php\nTMPDIR=/var/tmp/php\nALLOWED_ENV=PATH\n');
    assert.equal(raw.env, undefined);
    assert.deepEqual(warnings, [
      '/etc/php.conf:1: PHPRC is set but not used: ALLOWED_ENV does not name it and no later line uses $PHPRC',
      '/etc/php.conf:2: TMPDIR is set but not used: ALLOWED_ENV does not name it and no later line uses $TMPDIR',
    ]);
  });

  test('without ALLOWED_ENV (the environment is kept), exported names reach the app, others do not', () => {
    const { raw, warnings } = options('export PHPRC=/etc/php\nTMPDIR=/var/tmp/php\nFCGISOKET=/run/x.sock\nexport TMPDIR\nFCGISOCKET=/run/php.sock\n');
    assert.deepEqual(raw.env, ['PHPRC=/etc/php', 'TMPDIR=/var/tmp/php']);
    assert.equal(raw.copyEnv, undefined);
    assert.deepEqual(warnings, [
      '/etc/php.conf:3: FCGISOKET is set but not used: it is not exported (and there is no ALLOWED_ENV) and no later line uses $FCGISOKET (did you mean FCGISOCKET?)',
    ]);
  });

  test('bash and dash read the same values', () => {
    const text = 'BASE=/srv/php\nexport PHPRC="$BASE/etc"\nTMPDIR=${BASE}/tmp\nFCGIDIR=$TMPDIR\n';
    assert.deepEqual(parseConfigFile(text, 'x'), { BASE: '/srv/php', PHPRC: '/srv/php/etc', TMPDIR: '/srv/php/tmp', FCGIDIR: '/srv/php/tmp' });
    for (const shell of ['/bin/sh', '/bin/bash']) assert.equal(sourceWithShell(shell, text).FCGIDIR, '/srv/php/tmp');
  });
});
