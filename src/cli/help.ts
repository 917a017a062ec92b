import { ALL_OPTIONS, type HelpSection } from '../options/option-table.js';

declare const SPAWN_FCGI_TS_VERSION: string | undefined;

/** Filled in by the bundler from package.json; the sources run under tsx say 'dev'. */
export const VERSION = typeof SPAWN_FCGI_TS_VERSION === 'string' ? SPAWN_FCGI_TS_VERSION : 'dev';

/** The headings of --help's groups; the short flags of spawn-fcgi in a narrow column, the long options in a wide one. */
const SECTIONS: { section: HelpSection; heading: string; column: number }[] = [
  { section: 'main', heading: 'Options:', column: 15 },
  { section: 'root', heading: '(root only)', column: 15 },
  { section: 'config', heading: '\nConfiguration file:', column: 27 },
  { section: 'env', heading: "\nChildren's environment:", column: 27 },
  { section: 'supervision', heading: '\nSupervision:', column: 27 },
  { section: 'sizing', heading: '\nPool that sizes itself (all off unless --min-procs is below -F):', column: 27 },
  { section: 'recycling', heading: '\nRecycling and limits:', column: 27 },
  { section: 'operation', heading: '\nOperation:', column: 27 },
];

/** ` -d <directory> chdir to directory before spawning`, further lines of the text under the first. */
function helpRow(label: string, text: readonly string[], column: number): string {
  const indent = ' '.repeat(column + 1);
  return text.map((line, i) => (i === 0 ? ` ${label.padEnd(column - 1)} ${line}` : `${indent}${line}`)).join('\n');
}

function optionRows(): string {
  return SECTIONS.map(({ section, heading, column }) =>
    [heading, ...ALL_OPTIONS.filter((entry) => entry.section === section).map((entry) => helpRow(entry.help.label, entry.help.text, column))].join('\n'),
  ).join('\n');
}

export const HELP_TEXT = `Usage: spawn-fcgi-ts [options] [-- <fcgiapp> [fcgi app arguments]]

spawn-fcgi-ts v${VERSION} - spawns FastCGI processes and supervises them

${optionRows()}
 DURATION: seconds, or a number with ms, s, m, h or d (at most 10 years)
 Colour: NO_COLOR=1 disables, FORCE_COLOR=0/1 disables/forces, TERM=dumb

 spawn-fcgi-ts status [--control PATH | -P PIDFILE | -s SOCKET | [-a ADDR] -p PORT]
                      [--json]
                            show the running pool: PIDs, states, restarts,
                            last exits, CPU and memory

Signals: TERM/INT stop (twice: kill now), HUP rolling restart, USR2 is
forwarded, TTIN/TTOU add/remove a child, USR1 reopens the log file.
`;
