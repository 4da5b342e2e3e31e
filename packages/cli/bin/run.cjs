#!/usr/bin/env node
// Production entry. `shifterimg lookup IMAGE` runs on every job start, so plain lookups are answered by the small
// oclif-free CommonJS bundle dist/fast-lookup.cjs (no ESM loader, no oclif); everything else, and any lookup the fast
// path does not understand (such as --help), goes to the full CLI in dist/index.js.
'use strict';

const { existsSync } = require('node:fs');
const { join } = require('node:path');

// Upstream's option order (`shifterimg -v lookup IMG`) is turned into oclif's (`lookup -v IMG`) first, so both take
// the same path; a missing or unknown mode is reported by the full CLI as a usage error (exit 64).

async function main() {
  for (const file of ['fast-lookup.cjs', 'upstream-argv.cjs', 'index.js']) {
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
  // `lookup …` (run on every job start) is already in oclif's order: it skips even this small module.
  const normalized = argv[0] === 'lookup' ? { argv } : require('../dist/upstream-argv.cjs').normalizeArgv(argv);
  const code =
    normalized.argv && normalized.argv[0] === 'lookup'
      ? await require('../dist/fast-lookup.cjs').runFastLookup(normalized.argv)
      : undefined;
  if (code !== undefined) {
    process.exitCode = code;
    return;
  }
  const { runShifterimg } = await import('../dist/index.js');
  await runShifterimg(argv, { dir: __dirname });
}

main().catch((error) => {
  process.stderr.write(`SHIFTER_INTERNAL: ${error && error.stack ? error.stack : error}\n`);
  process.exitCode = 70;
});
