/**
 * Configuration loading: defaults < file < environment < overrides, validated by the one schema and deeply frozen.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors/index.js';
import { ShifterConfigSchema, type ShifterConfig } from './config-schema.js';
import { readConfigEnvironment } from './env.js';
import { isImageManagerConfig, translateImageManagerConfig } from './imagemanager-json.js';

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** JSON config file: Shifter's shape or an upstream `imagemanager.json` (detected by its `Platforms` key). */
  file?: string;
  /**
   * Environment to read the documented variables from (`env.ts`); pass `processEnvironment()` to use the process's.
   * Omitted means no environment layer, so tests and embedders are not affected by the caller's variables.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Highest-precedence values, e.g. command-line flags. */
  overrides?: Record<string, unknown>;
  /** Receives warnings (ignored upstream keys, aliases). Defaults to dropping them. */
  onWarning?: (message: string) => void;
}

/** One validation problem. */
export interface ConfigIssue {
  /** Dotted path into the config (`systems.cluster.transfer.imageDir`). */
  readonly path: string;
  /** What is wrong. */
  readonly message: string;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Merge `upper` over `lower`. Objects merge key by key, except that objects with different `kind`s (the schema's
 * discriminated unions) replace each other: a sqlite `path` must not survive a switch to mongo.
 */
export function mergeConfigLayers(lower: unknown, upper: unknown): unknown {
  if (upper === undefined) return lower;
  if (!isPlainObject(lower) || !isPlainObject(upper)) return upper;
  if (lower.kind !== undefined && upper.kind !== undefined && lower.kind !== upper.kind) return upper;
  const result: Record<string, unknown> = { ...lower };
  for (const [key, value] of Object.entries(upper)) result[key] = mergeConfigLayers(lower[key], value);
  return result;
}

/**
 * Freeze an object graph in place.
 * @param value - any value; objects and arrays are frozen recursively
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}

/**
 * Turn zod issues into path/message pairs, including those nested in unions.
 * @param error - a failed parse
 */
export function configIssues(error: z.ZodError): ConfigIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || '(root)',
    message: issue.message,
  }));
}

/**
 * Validate a config input against the schema and freeze the result.
 *
 * @param input - config in Shifter's shape (defaults optional)
 * @returns the validated, deeply frozen config
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` whose message and `details.issues` list every problem
 */
export function parseConfig(input: unknown): ShifterConfig {
  const result = ShifterConfigSchema.safeParse(input);
  if (!result.success) {
    const issues = configIssues(result.error);
    throw new ConfigError(
      'SHIFTER_CONFIG_INVALID',
      `configuration is invalid:\n${issues.map((issue) => `  - ${issue.path}: ${issue.message}`).join('\n')}`,
      { details: { issues } },
    );
  }
  return deepFreeze(result.data);
}

function readConfigFile(file: string, onWarning: (message: string) => void): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError('SHIFTER_CONFIG_NOT_FOUND', `cannot read config file ${file}: ${(error as Error).message}`, {
      cause: error,
      details: { file },
    });
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      'SHIFTER_CONFIG_INVALID',
      `config file ${file} is not valid JSON: ${(error as Error).message}`,
      {
        cause: error,
        details: { file, issues: [{ path: '(file)', message: 'not valid JSON' }] },
      },
    );
  }
  if (isImageManagerConfig(document)) {
    const translation = translateImageManagerConfig(document);
    for (const warning of translation.warnings) onWarning(`${file}: ${warning}`);
    return translation.config;
  }
  return document;
}

/**
 * Load the configuration: schema defaults, then the file, then the documented environment variables, then
 * overrides; validate; freeze. Pure apart from reading `file`.
 *
 * @param options - sources; all optional (an empty call yields the defaults)
 * @returns the validated, deeply frozen config
 * @throws {@link ConfigError} `SHIFTER_CONFIG_NOT_FOUND` when the file cannot be read; `SHIFTER_CONFIG_INVALID`
 *   listing every issue when the merged result breaks the schema or an upstream file cannot be translated
 * @example
 * ```ts
 * const config = await loadConfig({ file: '/etc/shifter/gateway.json', env: processEnvironment() });
 * ```
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<ShifterConfig> {
  const onWarning = options.onWarning ?? (() => {});
  let merged: unknown = {};
  if (options.file !== undefined) merged = mergeConfigLayers(merged, readConfigFile(options.file, onWarning));
  if (options.env !== undefined) {
    for (const layer of readConfigEnvironment(options.env)) merged = mergeConfigLayers(merged, layer);
  }
  if (options.overrides !== undefined) merged = mergeConfigLayers(merged, options.overrides);
  return parseConfig(merged);
}

/** The process roles that check the deployment shape. */
export type DeploymentRole = 'serve' | 'worker';

/**
 * Check that a config can run in the given role: a separate `worker`, or more than one `serve` instance, need the
 * shared MongoDB store and Redis queue (the embedded store and in-process queue belong to one process).
 *
 * @param config - validated config
 * @param role - `serve` or `worker`
 * @param system - for `worker`: the system it serves (must be configured)
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` listing each problem
 */
export function checkDeployment(config: ShifterConfig, role: DeploymentRole, system?: string): void {
  const issues: ConfigIssue[] = [];
  const distributed = role === 'worker' || config.gateway.instances > 1;
  if (distributed && config.metadata.kind !== 'mongo') {
    issues.push({
      path: 'metadata.kind',
      message: `${role === 'worker' ? 'a separate worker' : 'more than one serve instance'} needs metadata.kind "mongo"`,
    });
  }
  if (distributed && config.queue.kind !== 'redis') {
    issues.push({
      path: 'queue.kind',
      message: `${role === 'worker' ? 'a separate worker' : 'more than one serve instance'} needs queue.kind "redis"`,
    });
  }
  if (role === 'worker' && (system === undefined || !(system in config.systems))) {
    issues.push({ path: 'systems', message: `worker system ${JSON.stringify(system ?? '')} is not configured` });
  }
  if (config.defaultRegistry !== undefined && !(config.defaultRegistry in config.registries)) {
    issues.push({ path: 'defaultRegistry', message: `names no entry of registries` });
  }
  if (role === 'serve' && config.gateway.maxConnectionsPerAddress >= config.gateway.maxConnections) {
    issues.push({
      path: 'gateway.maxConnectionsPerAddress',
      message: 'must be below gateway.maxConnections, or one client address can take every connection',
    });
  }
  if (issues.length > 0) {
    throw new ConfigError(
      'SHIFTER_CONFIG_INVALID',
      `configuration cannot run as ${role}:\n${issues.map((issue) => `  - ${issue.path}: ${issue.message}`).join('\n')}`,
      { details: { issues } },
    );
  }
}
