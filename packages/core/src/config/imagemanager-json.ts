/**
 * Translation of upstream Shifter's `imagemanager.json` into {@link ShifterConfigInput}.
 *
 * One table, {@link IMAGEMANAGER_KEY_MAP}, documents every upstream key and what it becomes; docs/configuration.md
 * repeats it. Upstream quirks are fixed here rather than copied: `PullUpdateTimeout` is honoured on its own (upstream
 * only honoured it when the misspelt `PullUpdateTime` was present too), `ConvertOptions` (the misspelling upstream
 * validated) is accepted as an alias of `ConverterOptions`, and `Authentication: "mock"` is refused.
 *
 * @packageDocumentation
 */
import { ConfigError } from '../errors/index.js';
import type { ShifterConfigInput } from './config-schema.js';

/** One row of the key-mapping table. */
export interface ImageManagerKeyMapping {
  /** Upstream key (`Platforms.*.x` for per-system keys). */
  readonly upstream: string;
  /** Where it lands in the Shifter config, or what happens to it. */
  readonly shifter: string;
}

/** The documented key mapping; docs/configuration.md shows the same table. */
export const IMAGEMANAGER_KEY_MAP: readonly ImageManagerKeyMapping[] = Object.freeze([
  { upstream: 'Platforms', shifter: 'systems (one entry per platform name)' },
  { upstream: 'Platforms.*.mungeSocketPath', shifter: 'systems.*.mungeSocketPath' },
  { upstream: 'Platforms.*.accesstype', shifter: 'systems.*.transfer.kind: "local" → local, "remote" → ssh' },
  { upstream: 'Platforms.*.local.imageDir', shifter: 'systems.*.transfer.imageDir (local)' },
  { upstream: 'Platforms.*.host', shifter: 'systems.*.transfer.host (ssh)' },
  { upstream: 'Platforms.*.ssh.{username,key,imageDir}', shifter: 'systems.*.transfer.{username,key,imageDir} (ssh)' },
  { upstream: 'Platforms.*.ssh.{sshCmdOptions,scpCmdOptions}', shifter: 'systems.*.transfer.{sshOptions,scpOptions}' },
  {
    upstream: 'Platforms.*.admins',
    shifter: 'systems.*.admins (a string becomes a one-element list, not a substring test)',
  },
  { upstream: 'Platforms.*.platform (Shifter extension)', shifter: 'systems.*.platform, e.g. linux/arm64' },
  { upstream: 'Platforms.*.ImportUsers (Shifter extension)', shifter: 'systems.*.importUsers' },
  { upstream: 'Platforms.*.use_external', shifter: 'ignored with a warning: there is one native pull engine' },
  {
    upstream: 'Platforms.*.{policy_file,usergroupService,mountCommand}',
    shifter: 'ignored with a warning (unused upstream too)',
  },
  { upstream: 'Locations', shifter: 'registries (remotetype must be "dockerv2")' },
  { upstream: 'Locations.*.url', shifter: 'registries.*.url (default https://<name>)' },
  { upstream: 'Locations.*.sslcacert', shifter: 'registries.*.caFile' },
  { upstream: 'Locations.*.authMethod', shifter: 'registries.*.authMethod' },
  { upstream: 'DefaultImageLocation', shifter: 'defaultRegistry' },
  { upstream: 'DefaultImageFormat', shifter: 'must be "squashfs" (the only format built)' },
  { upstream: 'MongoDBURI', shifter: 'metadata = { kind: "mongo", url }' },
  { upstream: 'MongoDB', shifter: 'metadata.database' },
  { upstream: 'Broker (16.08)', shifter: 'queue = { kind: "redis", url }' },
  { upstream: 'CacheDirectory', shifter: 'storage.cacheDir' },
  { upstream: 'ExpandDirectory', shifter: 'storage.expandDir' },
  { upstream: 'PullUpdateTimeout', shifter: 'jobs.pullUpdateTimeout (honoured on its own)' },
  { upstream: 'PullUpdateTime', shifter: 'alias of PullUpdateTimeout (PullUpdateTimeout wins when both are set)' },
  { upstream: 'ImageExpirationTimeout', shifter: 'jobs.imageExpirationTimeout ("D:H:M:S")' },
  {
    upstream: 'ConverterOptions.squashfs',
    shifter:
      'conversion.extraArgs (a string is split on white space) with conversion.tool = "mksquashfs", whose options they are',
  },
  { upstream: 'ConvertOptions', shifter: "alias of ConverterOptions (upstream's misspelling)" },
  { upstream: 'ImportUsers', shifter: 'importUsers ("all", "none" or a list of user names)' },
  { upstream: 'Metrics', shifter: 'metrics' },
  { upstream: 'examiner', shifter: 'examiner' },
  { upstream: 'WorkerThreads', shifter: 'queue.concurrency' },
  { upstream: 'LogLevel', shifter: 'logLevel (critical → fatal, warning → warn)' },
  { upstream: 'Authentication', shifter: '"munge" only; "mock" is refused' },
  {
    upstream: 'DefaultLustreReplication, DefaultOstCount, DefaultImageRemote',
    shifter: 'ignored with a warning (never used upstream)',
  },
]);

/** Result of a translation: the Shifter config input plus warnings about ignored keys. */
export interface ImageManagerTranslation {
  /** Config in Shifter's shape; validate it with `ShifterConfigSchema` (loadConfig does). */
  readonly config: ShifterConfigInput;
  /** One sentence per ignored or aliased key. */
  readonly warnings: readonly string[];
}

const IGNORED_TOP = new Set(['DefaultLustreReplication', 'DefaultOstCount', 'DefaultImageRemote']);
const IGNORED_PLATFORM = new Set(['use_external', 'policy_file', 'usergroupService', 'mountCommand']);
const KNOWN_TOP = new Set([
  'Platforms',
  'Locations',
  'DefaultImageLocation',
  'DefaultImageFormat',
  'MongoDBURI',
  'MongoDB',
  'Broker',
  'CacheDirectory',
  'ExpandDirectory',
  'PullUpdateTimeout',
  'PullUpdateTime',
  'ImageExpirationTimeout',
  'ConverterOptions',
  'ConvertOptions',
  'ImportUsers',
  'Metrics',
  'examiner',
  'WorkerThreads',
  'LogLevel',
  'Authentication',
  ...IGNORED_TOP,
]);
const KNOWN_PLATFORM = new Set([
  'mungeSocketPath',
  'accesstype',
  'local',
  'ssh',
  'host',
  'admins',
  'platform',
  'ImportUsers',
  ...IGNORED_PLATFORM,
]);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Whether a parsed config file is an upstream `imagemanager.json` (it has the upstream-only `Platforms` key).
 * @param document - parsed JSON
 */
export function isImageManagerConfig(document: unknown): boolean {
  return isObject(document) && 'Platforms' in document;
}

/**
 * Translate an upstream `imagemanager.json` document. Values are copied as they are; their types are checked later
 * by the schema, so a wrong type is reported with the Shifter path it landed on.
 *
 * @param document - the parsed `imagemanager.json`
 * @returns the translated input and warnings for ignored keys
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` listing every problem found (unknown keys, mock
 *   authentication, non-squashfs format, unknown accesstype or remotetype)
 */
export function translateImageManagerConfig(document: unknown): ImageManagerTranslation {
  const issues: { path: string; message: string }[] = [];
  const warnings: string[] = [];
  if (!isObject(document)) {
    throw new ConfigError('SHIFTER_CONFIG_INVALID', 'imagemanager.json must hold a JSON object', {
      details: { issues: [{ path: '', message: 'expected an object' }] },
    });
  }
  const out: Record<string, unknown> = {};

  for (const key of Object.keys(document)) {
    if (!KNOWN_TOP.has(key)) issues.push({ path: key, message: 'unknown imagemanager.json key' });
    if (IGNORED_TOP.has(key)) warnings.push(`${key} is ignored: upstream never used it`);
  }

  const systems: Record<string, unknown> = {};
  const platforms = document.Platforms;
  if (!isObject(platforms)) issues.push({ path: 'Platforms', message: 'expected an object of systems' });
  else {
    for (const [name, raw] of Object.entries(platforms)) {
      const where = `Platforms.${name}`;
      if (!isObject(raw)) {
        issues.push({ path: where, message: 'expected an object' });
        continue;
      }
      for (const key of Object.keys(raw)) {
        if (!KNOWN_PLATFORM.has(key)) issues.push({ path: `${where}.${key}`, message: 'unknown platform key' });
        if (IGNORED_PLATFORM.has(key)) {
          warnings.push(
            key === 'use_external'
              ? `${where}.use_external is ignored: Shifter has one native pull engine (no skopeo/umoci)`
              : `${where}.${key} is ignored: upstream never used it`,
          );
        }
      }
      const system: Record<string, unknown> = {};
      const access = raw.accesstype ?? 'local';
      if (access === 'local') {
        const local = isObject(raw.local) ? raw.local : {};
        system.transfer = { kind: 'local', imageDir: local.imageDir };
      } else if (access === 'remote') {
        const ssh = isObject(raw.ssh) ? raw.ssh : {};
        const transfer: Record<string, unknown> = {
          kind: 'ssh',
          host: typeof raw.host === 'string' ? [raw.host] : raw.host,
          imageDir: ssh.imageDir,
        };
        if (ssh.username !== undefined) transfer.username = ssh.username;
        if (ssh.key !== undefined) transfer.key = ssh.key;
        if (ssh.sshCmdOptions !== undefined) transfer.sshOptions = ssh.sshCmdOptions;
        if (ssh.scpCmdOptions !== undefined) transfer.scpOptions = ssh.scpCmdOptions;
        system.transfer = transfer;
      } else {
        issues.push({ path: `${where}.accesstype`, message: 'must be "local" or "remote"' });
      }
      if (raw.mungeSocketPath !== undefined) system.mungeSocketPath = raw.mungeSocketPath;
      if (raw.admins !== undefined) system.admins = typeof raw.admins === 'string' ? [raw.admins] : raw.admins;
      if (raw.platform !== undefined) system.platform = raw.platform;
      if (raw.ImportUsers !== undefined) system.importUsers = raw.ImportUsers;
      systems[name] = system;
    }
  }
  out.systems = systems;

  if (document.Locations !== undefined) {
    const registries: Record<string, unknown> = {};
    if (!isObject(document.Locations)) issues.push({ path: 'Locations', message: 'expected an object of locations' });
    else {
      for (const [name, raw] of Object.entries(document.Locations)) {
        if (!isObject(raw)) {
          issues.push({ path: `Locations.${name}`, message: 'expected an object' });
          continue;
        }
        if (raw.remotetype !== undefined && raw.remotetype !== 'dockerv2') {
          issues.push({ path: `Locations.${name}.remotetype`, message: 'only "dockerv2" is supported' });
        }
        const registry: Record<string, unknown> = { url: raw.url ?? `https://${name}` };
        if (raw.sslcacert !== undefined) registry.caFile = raw.sslcacert;
        if (raw.authMethod !== undefined) registry.authMethod = raw.authMethod;
        registries[name] = registry;
      }
    }
    out.registries = registries;
  }
  if (document.DefaultImageLocation !== undefined) out.defaultRegistry = document.DefaultImageLocation;
  if (document.DefaultImageFormat !== undefined && document.DefaultImageFormat !== 'squashfs') {
    issues.push({ path: 'DefaultImageFormat', message: 'only "squashfs" is supported' });
  }

  if (document.MongoDBURI !== undefined) {
    const metadata: Record<string, unknown> = { kind: 'mongo', url: document.MongoDBURI };
    if (document.MongoDB !== undefined) metadata.database = document.MongoDB;
    out.metadata = metadata;
  } else if (document.MongoDB !== undefined) {
    issues.push({ path: 'MongoDB', message: 'MongoDB (database name) needs MongoDBURI' });
  }
  const queue: Record<string, unknown> = {};
  if (document.Broker !== undefined) Object.assign(queue, { kind: 'redis', url: document.Broker });
  if (document.WorkerThreads !== undefined) {
    queue.kind ??= 'in-process';
    queue.concurrency = document.WorkerThreads;
  }
  if (Object.keys(queue).length > 0) out.queue = queue;

  const storage: Record<string, unknown> = {};
  if (document.CacheDirectory !== undefined) storage.cacheDir = document.CacheDirectory;
  if (document.ExpandDirectory !== undefined) storage.expandDir = document.ExpandDirectory;
  if (Object.keys(storage).length > 0) out.storage = storage;

  const jobs: Record<string, unknown> = {};
  if (document.PullUpdateTimeout !== undefined) {
    jobs.pullUpdateTimeout = document.PullUpdateTimeout;
    if (document.PullUpdateTime !== undefined && document.PullUpdateTime !== document.PullUpdateTimeout) {
      warnings.push('PullUpdateTime and PullUpdateTimeout differ: PullUpdateTimeout is used');
    }
  } else if (document.PullUpdateTime !== undefined) {
    jobs.pullUpdateTimeout = document.PullUpdateTime;
    warnings.push("PullUpdateTime is read as PullUpdateTimeout (upstream's key mismatch)");
  }
  if (document.ImageExpirationTimeout !== undefined) jobs.imageExpirationTimeout = document.ImageExpirationTimeout;
  if (Object.keys(jobs).length > 0) out.jobs = jobs;

  let converter = document.ConverterOptions;
  if (converter === undefined && document.ConvertOptions !== undefined) {
    converter = document.ConvertOptions;
    warnings.push("ConvertOptions is read as ConverterOptions (upstream's misspelling)");
  }
  if (converter !== undefined) {
    if (!isObject(converter)) issues.push({ path: 'ConverterOptions', message: 'expected an object keyed by format' });
    else {
      for (const format of Object.keys(converter)) {
        if (format !== 'squashfs')
          issues.push({ path: `ConverterOptions.${format}`, message: 'only squashfs options are used' });
      }
      const options = converter.squashfs;
      // Upstream's options are mksquashfs options: keep mksquashfs as the builder for them.
      if (typeof options === 'string')
        out.conversion = { tool: 'mksquashfs', extraArgs: options.split(/\s+/).filter(Boolean) };
      else if (options !== undefined) out.conversion = { tool: 'mksquashfs', extraArgs: options };
    }
  }
  if (document.ImportUsers !== undefined) out.importUsers = document.ImportUsers;
  if (document.Metrics !== undefined) out.metrics = document.Metrics;
  if (document.examiner !== undefined) out.examiner = document.examiner;
  if (document.LogLevel !== undefined) {
    // A LogLevel that is not a string goes on unchanged, for the schema to reject it by name.
    const level = typeof document.LogLevel === 'string' ? document.LogLevel.toLowerCase() : document.LogLevel;
    out.logLevel = level === 'critical' ? 'fatal' : level === 'warning' ? 'warn' : level;
  }
  if (document.Authentication !== undefined && document.Authentication !== 'munge') {
    issues.push({
      path: 'Authentication',
      message:
        document.Authentication === 'mock'
          ? 'mock authentication is not supported: use munge'
          : 'only "munge" is supported',
    });
  }

  if (issues.length > 0) {
    throw new ConfigError(
      'SHIFTER_CONFIG_INVALID',
      `imagemanager.json is invalid:\n${issues.map((issue) => `  - ${issue.path}: ${issue.message}`).join('\n')}`,
      { details: { issues } },
    );
  }
  return { config: out as ShifterConfigInput, warnings };
}
