#!/usr/bin/env node
// Bundles src/cli.ts and its dependencies into one ESM file: startup reads one file instead of
// hundreds of modules (execa and yargs alone are ~70 ms each unbundled on these machines).
import { build } from 'esbuild';
import { chmodSync, readFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
const outfile = new URL('dist/cli.mjs', root).pathname;

await build({
  entryPoints: [new URL('src/cli.ts', root).pathname],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  legalComments: 'none',
  define: { SPAWN_FCGI_TS_VERSION: JSON.stringify(version) },
  // CommonJS dependencies (pidusage) call require(); give the ESM bundle one.
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);

// The FastCGI client, for the demo and the benchmark (plain .mjs scripts that do not compile TypeScript).
await build({
  entryPoints: [new URL('src/fcgi/client.ts', root).pathname],
  outfile: new URL('dist/fcgi-client.mjs', root).pathname,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
});
