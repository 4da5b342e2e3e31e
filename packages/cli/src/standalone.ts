/**
 * The one-file `shifterimg` for login nodes (dist/shifterimg.mjs, needs only Node >= 20): the whole CLI and the
 * lookup fast path bundled into a single ES module that is also its own oclif command target.
 *
 * oclif loads the explicit command map by importing `oclif.commands.target` relative to the plugin root; here the
 * target is this very file, so the package manifest oclif needs is compiled in (`__SHIFTERIMG_PJSON__`) and the
 * root is the file's directory. The entry does not await at top level: the self-import then finds this module
 * evaluated instead of waiting on itself.
 *
 * @packageDocumentation
 */
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config } from '@oclif/core/config';
import { handle } from '@oclif/core/handle';
import { run } from '@oclif/core/run';
import { ShifterError } from '@shifter/core';
import { reportError } from './error-envelope.js';
import { runFastLookup } from './fast-lookup.js';
import { normalizeArgv } from './upstream-argv.js';

export { COMMANDS } from './commands.js';

declare const __SHIFTERIMG_PJSON__: { name: string; version: string; oclif: Record<string, unknown> };

async function main(raw: string[]): Promise<void> {
  // Upstream's option order (`shifterimg -v images`) as in bin/run.cjs; a missing or unknown mode exits 64.
  const normalized = normalizeArgv(raw);
  if ('usage' in normalized) {
    process.exitCode = reportError(
      new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', normalized.usage),
      raw.includes('--json'),
      false,
    );
    return;
  }
  const argv = [...normalized.argv];
  const code = argv[0] === 'lookup' ? await runFastLookup(argv) : undefined;
  if (code !== undefined) {
    process.exitCode = code;
    return;
  }
  const file = fileURLToPath(import.meta.url);
  const pjson = structuredClone(__SHIFTERIMG_PJSON__);
  pjson.oclif = {
    ...pjson.oclif,
    commands: { strategy: 'explicit', target: `./${basename(file)}`, identifier: 'COMMANDS' },
  };
  try {
    const config = await Config.load({ root: dirname(file), pjson: pjson as never });
    await run(argv, config);
  } catch (error) {
    await handle(error as Error);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`SHIFTER_INTERNAL: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 70;
});
