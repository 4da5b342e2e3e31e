import { Command } from '@oclif/core/command';
import { CLIError, ExitError } from '@oclif/core/errors';
import * as Flags from '@oclif/core/flags';
import type { Input, ParserOutput } from '@oclif/core/interfaces';
import { ShifterError, toShifterError } from '@shifter/core';
import { type CliConfig, resolveConfigPath } from './cli-config.js';
import { reportError } from './error-envelope.js';
import type { CliEnvironment } from './env.js';
import { type GatewayApi, services } from './services.js';

/**
 * Base of every `shifterimg` command: the shared flags (`--config`, `--json`, `--verbose`), configuration loading,
 * and error rendering. An error prints as `CODE: message` on stderr (or the gateway's error envelope on stdout
 * under `--json`) and the process exits with the catalogue's sysexits code.
 */
export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    config: Flags.string({
      summary: 'udiRoot.conf to read (default: $SHIFTER_CONFIG, then /etc/shifter/udiRoot.conf).',
      helpValue: 'FILE',
      helpGroup: 'GLOBAL',
    }),
    verbose: Flags.boolean({
      char: 'v',
      summary: 'Print the gateway answers and error causes on stderr.',
      helpGroup: 'GLOBAL',
      default: false,
    }),
  };

  #verbose = false;

  /** The documented environment, read once per command. */
  protected environment(): CliEnvironment {
    return services().environment();
  }

  /** Load the client settings from the configured `udiRoot.conf`. */
  protected async settings(flags: { config?: string | undefined; verbose?: boolean }): Promise<CliConfig> {
    this.#verbose = flags.verbose === true;
    return services().loadConfig(resolveConfigPath(flags.config, this.environment()));
  }

  /** A gateway client for `settings`. */
  protected client(settings: CliConfig): GatewayApi {
    return services().createClient(settings, this.environment());
  }

  /** Print `value` as JSON on stderr when `--verbose` is set. */
  protected debugJson(label: string, value: unknown): void {
    if (this.#verbose) process.stderr.write(`${label}: ${JSON.stringify(value)}\n`);
  }

  /**
   * oclif's parser, with every refusal a usage error (exit 64): besides its parse errors it throws plain CLIErrors
   * ("Flag --user expects a value", "Unexpected flag"), which would otherwise count as internal failures.
   */
  protected override async parse<
    F extends Record<string, any>,
    B extends Record<string, any>,
    A extends Record<string, any>,
  >(options?: Input<F, B, A>, argv?: string[]): Promise<ParserOutput<F, B, A>> {
    try {
      return await super.parse(options, argv);
    } catch (error) {
      throw error instanceof CLIError && !(error instanceof ExitError) ? usageError(error) : error;
    }
  }

  /** Only `--json` on the command line turns JSON on (oclif's CONTENT_TYPE variable is deliberately ignored). */
  override jsonEnabled(): boolean {
    if (!(this.constructor as typeof BaseCommand).enableJsonFlag) return false;
    const end = this.argv.indexOf('--');
    const json = this.argv.indexOf('--json');
    return json !== -1 && (end === -1 || json < end);
  }

  override logJson(json: unknown): void {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  }

  override async catch(error: Error & { exitCode?: number }): Promise<never> {
    if (error instanceof ExitError) throw error;
    return this.exit(reportError(toCliError(error), this.jsonEnabled(), this.#verbose));
  }
}

/**
 * Turn anything a command throws into a ShifterError: parse errors of oclif become `SHIFTER_USAGE_INVALID_ARGUMENT`
 * (exit 64), anything unknown `SHIFTER_INTERNAL`.
 * @param error - what was thrown
 */
export function toCliError(error: unknown): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  if (error instanceof CLIError && 'parse' in error) return usageError(error);
  return toShifterError(error);
}

/** An oclif parser refusal as `SHIFTER_USAGE_INVALID_ARGUMENT` (exit 64). */
function usageError(error: CLIError): ShifterError {
  // oclif's parse messages are multi-line ("The following errors occurred:\n  --x …\nSee more help with --help").
  const message = error.message
    .split('\n')
    .map((line) => line.trim())
    .filter(
      (line) => line !== '' && !/^The following errors? occurred:?$/.test(line) && !/^See more help with/.test(line),
    )
    .join('; ');
  return new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `${message} (see --help)`, { cause: error });
}
