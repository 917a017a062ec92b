'use strict';
// The Node floor (issue 10): what any Node.js supervisor pays before it does anything of its own. A bare
// `node` process that starts one child (the bench runs `spawn-fcgi -n -s SOCK -- multiwatch -f N --
// php-cgi`, so the C programs do all the work), forwards the stop signals to it and exits with it.
// CommonJS and nothing but node:child_process, so that Node's own start-up is all that is measured.
const { spawn } = require('node:child_process');

const [command, ...args] = process.argv.slice(2);
if (command === undefined) {
  process.stderr.write('usage: node node-floor.cjs COMMAND [ARGS...]\n');
  process.exit(2);
}
const child = spawn(command, args, { stdio: 'inherit' });
for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal));
}
child.on('error', (error) => {
  process.stderr.write(`node-floor: ${command}: ${error.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => process.exit(code ?? 128 + (require('node:os').constants.signals[signal] ?? 0)));
