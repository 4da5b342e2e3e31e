#!/usr/bin/env node
// Production entry. `shifterimg lookup IMAGE` runs on every job start, so plain lookups are answered by the small
// oclif-free bundle dist/fast-lookup.js; everything else (and any lookup it does not understand, such as --help)
// goes to the full CLI in dist/index.js.
const argv = process.argv.slice(2);
if (argv[0] === 'lookup') {
  const { runFastLookup } = await import('../dist/fast-lookup.js');
  const code = await runFastLookup(argv);
  if (code !== undefined) {
    process.exitCode = code;
  } else {
    await runFull();
  }
} else {
  await runFull();
}

async function runFull() {
  const { execute } = await import('../dist/index.js');
  await execute({ dir: import.meta.url });
}
