/**
 * The only environment variables `shifterimg` reads. Nothing else is looked at, and no prefix is scanned:
 * `SHIFTER_IMAGE`, `SHIFTER_VOLUME`, `SHIFTER_MODULE` and friends are set inside every job and container and must not
 * change what this tool does.
 */
export const CLI_ENV = {
  /** Path of `udiRoot.conf` when `--config` is not given. */
  config: 'SHIFTER_CONFIG',
  /** munged socket used to sign requests (default: munge's own default socket). */
  mungeSocket: 'SHIFTER_MUNGE_SOCKET',
  /** Home directory holding `.udiRoot/credentials.json` (the login store). */
  home: 'HOME',
} as const;

/** The variables of {@link CLI_ENV}, read once. */
export interface CliEnvironment {
  config: string | undefined;
  mungeSocket: string | undefined;
  home: string | undefined;
}

/**
 * Read the documented variables from `source` (default `process.env`); empty strings count as unset.
 * @param source - the environment to read
 */
export function readCliEnvironment(source: NodeJS.ProcessEnv = process.env): CliEnvironment {
  const get = (name: string): string | undefined => {
    const value = source[name];
    return value === undefined || value === '' ? undefined : value;
  };
  return { config: get(CLI_ENV.config), mungeSocket: get(CLI_ENV.mungeSocket), home: get(CLI_ENV.home) };
}
