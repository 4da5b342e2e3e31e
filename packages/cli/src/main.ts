import { execute } from '@oclif/core/execute';
import { ShifterError } from '@shifter/core';
import { reportError } from './error-envelope.js';
import { normalizeArgv } from './upstream-argv.js';

/**
 * Run `shifterimg` with `argv` in either option order (upstream's `shifterimg -v images` or `shifterimg images -v`).
 * A missing or unknown mode prints `SHIFTER_USAGE_INVALID_ARGUMENT: …` (or its `--json` envelope) and sets exit code
 * 64, where oclif alone would exit 2.
 * @param argv - the arguments after the program name
 * @param options - `dir`: a directory inside the package (the bin script's), as oclif's `execute` takes it
 */
export async function runShifterimg(argv: readonly string[], options: { dir: string }): Promise<void> {
  const normalized = normalizeArgv(argv);
  if ('usage' in normalized) {
    process.exitCode = reportError(
      new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', normalized.usage),
      argv.includes('--json'),
      false,
    );
    return;
  }
  await execute({ dir: options.dir, args: normalized.argv });
}
