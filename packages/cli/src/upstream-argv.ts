/**
 * Upstream's `shifterimg` takes its options before the mode (`shifterimg --user alice --group proj pull IMG`,
 * `shifterimg -v images`); oclif wants the command first. {@link normalizeArgv} moves leading options behind the mode
 * so both orders work, and turns a missing or unknown mode into a usage error (exit 64) instead of oclif's exit 2.
 *
 * This module has no dependencies: `bin/run.cjs` loads it (as `dist/upstream-argv.cjs`) before deciding whether the
 * lookup fast path applies.
 *
 * @packageDocumentation
 */

/** Every mode (command id) `shifterimg` knows; a unit test keeps it equal to the command map. */
export const MODES = [
  'autoexpire',
  'expire',
  'images',
  'import',
  'login',
  'lookup',
  'pull',
  'pullnb',
  'queue',
  'status',
] as const;

// Options that take a value as the next argument when written without `=`, in any command.
const VALUE_OPTIONS = new Set(['--user', '--group', '--config', '--username']);
// Arguments oclif answers itself when they come first.
const PASS_THROUGH = new Set(['--help', '--version']);
// Help spellings oclif does not know at the top level: `-h` (upstream's) and `help [MODE]`.
const HELP = new Set(['-h', 'help']);

/** The result of {@link normalizeArgv}: arguments for oclif, or the message of a usage error. */
export type NormalizedArgv = { readonly argv: string[] } | { readonly usage: string };

/**
 * Reorder upstream-style arguments (options, mode, rest) into oclif's (mode, options, rest).
 *
 * Leading arguments that start with `-` are options; `--user`, `--group`, `--config` and `--username` take the next
 * argument as their value. The first other argument is the mode. Nothing after the mode is touched.
 * @param argv - the arguments after the program name
 * @returns the arguments to run, or a usage message (exit 64)
 * @example
 * ```ts
 * normalizeArgv(['--user', 'alice', 'pull', 'ubuntu:22.04']); // { argv: ['pull', '--user', 'alice', 'ubuntu:22.04'] }
 * normalizeArgv(['fetch']); // { usage: 'unknown mode "fetch": …' }
 * ```
 */
export function normalizeArgv(argv: readonly string[]): NormalizedArgv {
  const modes = `one of ${MODES.join(', ')}`;
  if (argv.length === 0) return { usage: `a mode is required: ${modes} (see --help)` };
  if (PASS_THROUGH.has(argv[0]!)) return { argv: [...argv] };
  if (HELP.has(argv[0]!)) {
    const mode = argv[1];
    return { argv: mode !== undefined && (MODES as readonly string[]).includes(mode) ? [mode, '--help'] : ['--help'] };
  }
  const leading: string[] = [];
  let index = 0;
  for (; index < argv.length; index++) {
    const item = argv[index]!;
    if (item === '--' || !item.startsWith('-') || item === '-') break;
    leading.push(item);
    if (VALUE_OPTIONS.has(item)) {
      const value = argv[index + 1];
      if (value === undefined) return { usage: `${item} needs a value (see --help)` };
      leading.push(value);
      index++;
    }
  }
  const mode = argv[index];
  if (mode === undefined || mode === '--') {
    // Only options: `shifterimg -h` and friends still show the help.
    if (leading.some((item) => item === '--help' || item === '-h')) return { argv: ['--help'] };
    return { usage: `a mode is required: ${modes} (see --help)` };
  }
  if (!(MODES as readonly string[]).includes(mode)) return { usage: `unknown mode "${mode}": ${modes} (see --help)` };
  return { argv: [mode, ...leading, ...argv.slice(index + 1)] };
}
