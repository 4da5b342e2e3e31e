import { readFileSync } from 'node:fs';
import { Config } from '@oclif/core/config';
import { handle } from '@oclif/core/handle';
import { run } from '@oclif/core/run';

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
  try {
    const config = await Config.load({ root, pjson });
    await run(argv, config);
  } catch (error) {
    await handle(error as Error);
  }
}
