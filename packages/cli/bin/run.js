#!/usr/bin/env node
// Production entry. `shifterimg lookup IMAGE` runs on every job start, so plain lookups are answered by the small
// oclif-free bundle dist/fast-lookup.js; everything else (and any lookup it does not understand, such as --help)
// goes to the full CLI in dist/index.js.
const argv = process.argv.slice(2);
const fast = argv[0] === 'lookup' ? await (await import('../dist/fast-lookup.js')).runFastLookup(argv) : undefined;
if (fast !== undefined) {
  process.exitCode = fast;
} else {
  const { execute } = await import('../dist/index.js');
  await execute({ dir: import.meta.url });
}
