import { toShifterError } from '@shifter/core';
import { resolveConfigPath } from './cli-config.js';
import { reportError } from './error-envelope.js';
import { lookupImage } from './lookup-image.js';
import { services } from './services.js';

interface FastLookupArguments {
  image: string;
  config: string | undefined;
  json: boolean;
  verbose: boolean;
}

/**
 * Read `lookup [--config FILE] [--json] [-v|--verbose] IMAGE` in any order; anything else (help, unknown flags,
 * `--`, a missing or second argument) returns undefined so the full oclif CLI handles it with its usual messages.
 */
export function parseFastLookup(argv: readonly string[]): FastLookupArguments | undefined {
  if (argv[0] !== 'lookup') return undefined;
  let image: string | undefined;
  let config: string | undefined;
  let json = false;
  let verbose = false;
  for (let index = 1; index < argv.length; index++) {
    const item = argv[index]!;
    if (item === '--json') json = true;
    else if (item === '-v' || item === '--verbose') verbose = true;
    else if (item === '--config') {
      const value = argv[++index];
      if (value === undefined || value.startsWith('-')) return undefined;
      config = value;
    } else if (item.startsWith('--config=')) config = item.slice('--config='.length);
    else if (item.startsWith('-') || image !== undefined) return undefined;
    else image = item;
  }
  return image === undefined || config === '' ? undefined : { image, config, json, verbose };
}

/**
 * The start-up fast path of `shifterimg lookup`, which the runtime and job scripts call on every job start: the same
 * arguments, output, errors and exit codes as the oclif command, without loading oclif (about half of the CLI's cold
 * start). bin/run.cjs tries it first.
 * @param argv - the arguments after the program name
 * @returns the exit code, or undefined when the arguments need the full CLI
 */
export async function runFastLookup(argv: readonly string[]): Promise<number | undefined> {
  const parsed = parseFastLookup(argv);
  if (!parsed) return undefined;
  try {
    const environment = services().environment();
    // The credential of the first request is made while udiRoot.conf is read: the munge socket comes from the
    // environment, not the file. Credentials are single-use, so later attempts (failover) sign their own.
    let early: Promise<string> | undefined = services().sign('', environment);
    early.catch(() => undefined);
    const settings = await services().loadConfig(resolveConfigPath(parsed.config, environment));
    const client = services().createClient(settings, environment, (payload) => {
      const ready = payload === '' ? early : undefined;
      early = undefined;
      return ready ?? services().sign(payload, environment);
    });
    const image = await lookupImage(settings, client, parsed.image);
    if (parsed.verbose) process.stderr.write(`lookup: ${JSON.stringify(image)}\n`);
    process.stdout.write(parsed.json ? `${JSON.stringify(image, null, 2)}\n` : `${image.id}\n`);
    return 0;
  } catch (error) {
    return reportError(toShifterError(error), parsed.json, parsed.verbose);
  }
}
