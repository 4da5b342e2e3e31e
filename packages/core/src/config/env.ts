/**
 * The environment variables that may change Shifter's configuration — an explicit list, never a prefix scan.
 *
 * Jobs and containers run with variables such as `SHIFTER_IMAGE`, `SHIFTER_VOLUME` or `SHIFTER_MODULES` set; a
 * prefix scan would let any of them reconfigure a gateway or worker started from inside a job. Only the names below
 * are read, and only by {@link readConfigEnvironment}; nothing else in the library touches `process.env`.
 *
 * @packageDocumentation
 */
import { ConfigError } from '../errors/index.js';

/** How one variable's text becomes a config value. */
export type EnvironmentValueKind = 'string' | 'integer' | 'boolean';

/** One documented configuration variable. */
export interface ConfigEnvironmentVariable {
  /** Variable name. */
  readonly name: string;
  /** What it sets, for docs/configuration.md. */
  readonly description: string;
  /** Builds the partial config the variable contributes (merged over the file, under overrides). */
  readonly apply: (value: string) => Record<string, unknown>;
}

const at = (path: readonly string[], value: unknown): Record<string, unknown> => {
  let result: unknown = value;
  for (let i = path.length - 1; i >= 0; i--) result = { [path[i]!]: result };
  return result as Record<string, unknown>;
};

function convert(name: string, kind: EnvironmentValueKind, text: string): unknown {
  if (kind === 'string') return text;
  if (kind === 'integer') {
    if (!/^-?\d+$/.test(text.trim())) {
      throw new ConfigError('SHIFTER_CONFIG_INVALID', `${name} must be an integer, got ${JSON.stringify(text)}`, {
        details: { issues: [{ path: name, message: 'expected an integer' }] },
      });
    }
    return Number.parseInt(text, 10);
  }
  const lowered = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(lowered)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(lowered)) return false;
  throw new ConfigError(
    'SHIFTER_CONFIG_INVALID',
    `${name} must be a boolean (true/false/1/0), got ${JSON.stringify(text)}`,
    {
      details: { issues: [{ path: name, message: 'expected a boolean' }] },
    },
  );
}

const scalar = (
  name: string,
  path: readonly string[],
  kind: EnvironmentValueKind,
  description: string,
): ConfigEnvironmentVariable => ({
  name,
  description,
  apply: (value) => at(path, convert(name, kind, value)),
});

/**
 * Every variable that can change the configuration, in the order they are applied. The file path variables
 * (`SHIFTER_CONFIG`, upstream's `GWCONFIG`) are listed in {@link CONFIG_FILE_VARIABLES}.
 */
export const CONFIG_ENVIRONMENT: readonly ConfigEnvironmentVariable[] = Object.freeze([
  scalar('SHIFTER_GATEWAY_HOST', ['gateway', 'host'], 'string', 'gateway.host: address the REST service listens on'),
  scalar('SHIFTER_GATEWAY_PORT', ['gateway', 'port'], 'integer', 'gateway.port: TCP port of the REST service'),
  scalar('SHIFTER_CACHE_DIR', ['storage', 'cacheDir'], 'string', 'storage.cacheDir: blob cache directory'),
  scalar('SHIFTER_EXPAND_DIR', ['storage', 'expandDir'], 'string', 'storage.expandDir: scratch directory'),
  {
    name: 'SHIFTER_SQLITE_PATH',
    description: 'metadata = { kind: "sqlite", path }: the embedded store\'s database file',
    apply: (value) => ({ metadata: { kind: 'sqlite', path: value } }),
  },
  {
    name: 'SHIFTER_MONGO_URL',
    description: 'metadata = { kind: "mongo", url }: use MongoDB (or FerretDB) for image records and job state',
    apply: (value) => ({ metadata: { kind: 'mongo', url: value } }),
  },
  {
    name: 'SHIFTER_REDIS_URL',
    description: 'queue = { kind: "redis", url }: dispatch jobs through Redis + BullMQ',
    apply: (value) => ({ queue: { kind: 'redis', url: value } }),
  },
  scalar('SHIFTER_LOG_LEVEL', ['logLevel'], 'string', 'logLevel: trace, debug, info, warn, error or fatal'),
  scalar('SHIFTER_METRICS', ['metrics'], 'boolean', 'metrics: record lookups for /api/metrics'),
  scalar('ENABLE_LABELS', ['enableLabels'], 'boolean', 'enableLabels (upstream variable): store image labels'),
]);

/** Variables naming the config file, in order of preference (upstream's `GWCONFIG` is accepted). */
export const CONFIG_FILE_VARIABLES: readonly string[] = Object.freeze(['SHIFTER_CONFIG', 'GWCONFIG']);

/**
 * Read the documented configuration variables from an environment.
 *
 * @param environment - variables to read (normally `process.env`); only names in {@link CONFIG_ENVIRONMENT} are used
 * @returns one partial config per variable that is set (non-empty), in {@link CONFIG_ENVIRONMENT} order
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` when a variable's text is not of its type
 */
export function readConfigEnvironment(
  environment: Readonly<Record<string, string | undefined>>,
): Record<string, unknown>[] {
  const layers: Record<string, unknown>[] = [];
  for (const variable of CONFIG_ENVIRONMENT) {
    const value = environment[variable.name];
    if (value === undefined || value === '') continue;
    layers.push(variable.apply(value));
  }
  return layers;
}

/**
 * The config file named by the environment, if any.
 * @param environment - variables to read (normally `process.env`)
 */
export function configFileFromEnvironment(
  environment: Readonly<Record<string, string | undefined>>,
): string | undefined {
  for (const name of CONFIG_FILE_VARIABLES) {
    const value = environment[name];
    if (value) return value;
  }
  return undefined;
}

/**
 * The process environment. The one place that reads `process.env`, so a reviewer can audit every read.
 */
export function processEnvironment(): Readonly<Record<string, string | undefined>> {
  return process.env;
}
