#!/usr/bin/env node
// Production entry. `shifterimg lookup IMAGE` runs on every job start, so plain lookups are answered by the small
// oclif-free CommonJS bundle dist/fast-lookup.cjs (no ESM loader, no oclif); everything else, and any lookup the fast
// path does not understand (such as --help), goes to the full CLI in dist/index.js.
'use strict';

const { existsSync } = require('node:fs');
const { join } = require('node:path');

async function main() {
  for (const file of ['fast-lookup.cjs', 'index.js']) {
    if (!existsSync(join(__dirname, '..', 'dist', file))) {
      // A source checkout before `npm run build`: one line, not a module-resolution stack trace.
      process.stderr.write(
        `shifterimg: not built (${join(__dirname, '..', 'dist', file)} is missing): run \`npm run build\` in the Shifter checkout, or install the one-file shifterimg (docs/install.md)\n`,
      );
      process.exitCode = 69;
      return;
    }
  }
  const argv = process.argv.slice(2);
  const code = argv[0] === 'lookup' ? await require('../dist/fast-lookup.cjs').runFastLookup(argv) : undefined;
  if (code !== undefined) {
    process.exitCode = code;
    return;
  }
  const { execute } = await import('../dist/index.js');
  await execute({ dir: __dirname });
}

main().catch((error) => {
  process.stderr.write(`SHIFTER_INTERNAL: ${error && error.stack ? error.stack : error}\n`);
  process.exitCode = 70;
});
