import { readFileSync } from 'node:fs';
import { Config } from '@oclif/core/config';
import { handle } from '@oclif/core/handle';
import { run } from '@oclif/core/run';
import { ShifterError } from '@shifter/core';
import { reportError } from './error-envelope.js';
import { normalizeArgv } from './upstream-argv.js';

/**
 * Run the CLI from its TypeScript sources (bin/dev.js): the explicit command map is taken from `src/index.ts`
 * instead of the bundle.
 * @param binUrl - `import.meta.url` of the bin script
 * @param argv - the arguments
 */
export async function runFromSources(binUrl: string, argv: string[]): Promise<void> {
  const root = new URL('..', binUrl).pathname;
  const pjson = JSON.parse(readFileSync(`${root}package.json`, 'utf8'));
  pjson.oclif.commands = { ...pjson.oclif.commands, target: './src/index.ts' };
  const normalized = normalizeArgv(argv);
  if ('usage' in normalized) {
    process.exitCode = reportError(
      new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', normalized.usage),
      argv.includes('--json'),
      false,
    );
    return;
  }
  try {
    const config = await Config.load({ root, pjson });
    await run(normalized.argv, config);
  } catch (error) {
    await handle(error as Error);
  }
}
