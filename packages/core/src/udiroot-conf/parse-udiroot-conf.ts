import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors/index.js';

/**
 * One site module of `udiRoot.conf` (`module_<name>_<subkey> = value`).
 *
 * Unset scalars are `null` and unset lists are empty, so two parsers (this one and the runtime's C parser) can be
 * compared by deep equality on the JSON form.
 */
export interface UdiRootModule {
  /** Script run as the user inside the container before the command (`module_<name>_userhook`). */
  userhook: string | null;
  /** Script run as root while the container root is built (`module_<name>_roothook`). */
  roothook: string | null;
  /** `NAME=value` items set in the container, split on spaces. */
  siteEnv: string[];
  /** `NAME=value` items prepended to existing values (`PATH`-like), split on spaces. */
  siteEnvPrepend: string[];
  /** `NAME=value` items appended to existing values, split on spaces. */
  siteEnvAppend: string[];
  /** Variable names removed from the container environment, split on spaces. */
  siteEnvUnset: string[];
  /** Site volume maps added by the module, split on `;`. */
  siteFs: string[];
  /** Directory copied into `/opt/udiImage/modules/<name>`. */
  copyPath: string | null;
  /** Names of modules that cannot be active together with this one, split on spaces. */
  conflict: string[];
  /** Whether users may select the module (`0` disables it; default enabled). */
  enabled: boolean;
}

/**
 * The normalised content of a `udiRoot.conf` file.
 *
 * Every key upstream Shifter understands has a field. Unset scalars are `null`, unset lists `[]`; no default is
 * invented here (the runtime applies its own), so the object says exactly what the file says. Lists are split the
 * way upstream splits them: `siteFs` on `;`, every other list on spaces (`defaultModules` on `,`).
 */
export interface UdiRootConf {
  /** Mount point of the container root (required by the runtime). */
  udiMount: string | null;
  /** Mount point of the image loop device (required by the runtime). */
  loopMount: string | null;
  /** Shared image directory holding `<id>.squashfs` and `<id>.meta` (required by the runtime). */
  imagePath: string | null;
  /** Installation prefix (required by the runtime). */
  udiRootPath: string | null;
  /** Site `/etc` files copied into containers (required by the runtime). */
  etcPath: string | null;
  /** Generate passwd/group from NSS instead of copying `etcPath`. */
  populateEtcDynamically: boolean | null;
  /** Extra users added to the generated passwd file, split on spaces. */
  usersToImport: string[];
  /** Use libc for passwd/group look-ups instead of `etcPath` files. */
  allowLibcPwdCalls: boolean | null;
  /** Cap on group memberships written to the container's `/etc/group`. */
  maxGroupCount: number | null;
  /** Trusted `cp` binary. */
  cpPath: string | null;
  /** Trusted `mv` binary. */
  mvPath: string | null;
  /** Trusted `chmod` binary. */
  chmodPath: string | null;
  /** Trusted `dd` binary. */
  ddPath: string | null;
  /** Trusted `modprobe` binary. */
  modprobePath: string | null;
  /** Trusted `insmod` binary. */
  insmodPath: string | null;
  /** Trusted `mkfs.xfs` binary (per-node cache). */
  mkfsXfsPath: string | null;
  /** Filesystem type of the container root (`tmpfs`, `ramfs`). */
  rootfsType: string | null;
  /** Whether the container root stays writable after setup. */
  mountUdiRootWritable: boolean | null;
  /** Propagation of site mounts into the container. */
  mountPropagationStyle: 'private' | 'slave' | null;
  /** Site volume maps, split on `;`. */
  siteFs: string[];
  /** `NAME=value` items set in every container, split on spaces. */
  siteEnv: string[];
  /** `NAME=value` items appended to existing values, split on spaces. */
  siteEnvAppend: string[];
  /** `NAME=value` items prepended to existing values, split on spaces. */
  siteEnvPrepend: string[];
  /** Variable names removed from every container, split on spaces. */
  siteEnvUnset: string[];
  /** Root shell script run before site mounts (cwd = udiMount). */
  sitePreMountHook: string | null;
  /** Root shell script run after site mounts (cwd = udiMount). */
  sitePostMountHook: string | null;
  /** Directory copied into `/opt/udiImage`. */
  optUdiImage: string | null;
  /** Permit `local:` images. */
  allowLocalChroot: boolean | null;
  /** Directory backing per-node cache files. */
  perNodeCachePath: string | null;
  /**
   * The one account besides root that may own the image directory, `.meta` and image files (the gateway's worker
   * or transfer account): a user name or numeric uid. Null: root only.
   */
  imageWriter: string | null;
  /** Largest per-node cache in bytes (`10G`-style suffixes b k m g t p e, powers of 1024). */
  perNodeCacheSizeLimit: number | null;
  /** Filesystem types allowed for per-node caches, split on spaces. */
  perNodeCacheAllowedFsType: string[];
  /** Image gateway URLs, split on spaces; clients try them in random order. */
  imageGateway: string[];
  /** Seconds a client waits for the gateway. */
  gatewayTimeout: number | null;
  /**
   * CA(s) that sign `https://` gateways' certificates: a PEM file or a directory hashed by `openssl rehash` (absolute
   * path); `null` = the system trust store.
   */
  gatewayCaPath: string | null;
  /** Name of this system as the gateway knows it. */
  system: string | null;
  /** Image type used when a request names none (usually `docker`). */
  defaultImageType: string | null;
  /** Modules active when the user selects none, split on `,`. */
  defaultModules: string[];
  /** Site modules by name. */
  modules: Record<string, UdiRootModule>;
  /** Legacy batch system name. */
  batchType: string | null;
  /** Deprecated keys that were read and ignored, with their line numbers (upstream warns about them). */
  ignored: Array<{ key: string; line: number }>;
  /**
   * Spellings upstream Shifter tolerated, read with upstream's meaning (docs/udiroot-conf.md, "Upstream spellings"):
   * a boolean that is not an integer (`yes`, `true` read as 0, as `strtol` reads them), a module subkey in the wrong
   * case (ignored). `message` is the runtime's warning text, word for word.
   */
  warnings: Array<{ key: string; line: number; message: string }>;
}

type Kind = 'string' | 'boolean' | 'integer' | 'bytes' | 'spaceList' | 'commaList' | 'siteFsList' | 'propagation';

// The key table is the spec: every key upstream's `_assign()` accepts, with how its value is read. A key missing
// here is an error, never silently dropped (upstream printed "Couldn't understand key" and failed the same way).
const KEYS: Record<string, Kind> = {
  udiMount: 'string',
  loopMount: 'string',
  imagePath: 'string',
  udiRootPath: 'string',
  etcPath: 'string',
  populateEtcDynamically: 'boolean',
  usersToImport: 'spaceList',
  allowLibcPwdCalls: 'boolean',
  maxGroupCount: 'integer',
  cpPath: 'string',
  mvPath: 'string',
  chmodPath: 'string',
  ddPath: 'string',
  modprobePath: 'string',
  insmodPath: 'string',
  mkfsXfsPath: 'string',
  rootfsType: 'string',
  mountUdiRootWritable: 'boolean',
  mountPropagationStyle: 'propagation',
  siteFs: 'siteFsList',
  siteEnv: 'spaceList',
  siteEnvAppend: 'spaceList',
  siteEnvPrepend: 'spaceList',
  siteEnvUnset: 'spaceList',
  sitePreMountHook: 'string',
  sitePostMountHook: 'string',
  optUdiImage: 'string',
  allowLocalChroot: 'boolean',
  perNodeCachePath: 'string',
  imageWriter: 'string',
  perNodeCacheSizeLimit: 'bytes',
  perNodeCacheAllowedFsType: 'spaceList',
  imageGateway: 'spaceList',
  gatewayTimeout: 'integer',
  gatewayCaPath: 'string',
  system: 'string',
  defaultImageType: 'string',
  defaultModules: 'commaList',
  batchType: 'string',
};

/** Keys upstream accepts but ignores (deprecated); recorded in `ignored` instead of failing old files. */
const IGNORED_KEYS = new Set([
  'optionalSshdAsRoot',
  'autoLoadKernelModule',
  'kmodBasePath',
  'kmodCacheFile',
  'nodeContextPrefix',
]);

const MODULE_KEYS: Record<string, Kind> = {
  userhook: 'string',
  roothook: 'string',
  siteEnv: 'spaceList',
  siteEnvPrepend: 'spaceList',
  siteEnvAppend: 'spaceList',
  siteEnvUnset: 'spaceList',
  siteFs: 'siteFsList',
  copyPath: 'string',
  conflict: 'spaceList',
  enabled: 'boolean',
};

function emptyConf(): UdiRootConf {
  return {
    udiMount: null,
    loopMount: null,
    imagePath: null,
    udiRootPath: null,
    etcPath: null,
    populateEtcDynamically: null,
    usersToImport: [],
    allowLibcPwdCalls: null,
    maxGroupCount: null,
    cpPath: null,
    mvPath: null,
    chmodPath: null,
    ddPath: null,
    modprobePath: null,
    insmodPath: null,
    mkfsXfsPath: null,
    rootfsType: null,
    mountUdiRootWritable: null,
    mountPropagationStyle: null,
    siteFs: [],
    siteEnv: [],
    siteEnvAppend: [],
    siteEnvPrepend: [],
    siteEnvUnset: [],
    sitePreMountHook: null,
    sitePostMountHook: null,
    optUdiImage: null,
    allowLocalChroot: null,
    perNodeCachePath: null,
    imageWriter: null,
    perNodeCacheSizeLimit: null,
    perNodeCacheAllowedFsType: [],
    imageGateway: [],
    gatewayTimeout: null,
    gatewayCaPath: null,
    system: null,
    defaultImageType: null,
    defaultModules: [],
    modules: {},
    batchType: null,
    ignored: [],
    warnings: [],
  };
}

function emptyModule(): UdiRootModule {
  return {
    userhook: null,
    roothook: null,
    siteEnv: [],
    siteEnvPrepend: [],
    siteEnvAppend: [],
    siteEnvUnset: [],
    siteFs: [],
    copyPath: null,
    conflict: [],
    enabled: true,
  };
}

interface LogicalLine {
  key: string;
  value: string;
  line: number;
}

/** Split the text into key/value records, joining continuation lines; `line` is where the record starts. */
function* logicalLines(text: string, source: string): Generator<LogicalLine> {
  const physical = text.split(/\r?\n/);
  let pending: LogicalLine | undefined;
  for (let index = 0; index < physical.length; index++) {
    const lineNumber = index + 1;
    const raw = physical[index]!;
    let content = raw.trim();
    if (pending === undefined) {
      if (content === '' || content.startsWith('#')) continue;
      const eq = content.indexOf('=');
      if (eq < 0) {
        throw new ConfigError(
          'SHIFTER_CONFIG_INVALID',
          `${source}:${lineNumber}: expected "key=value", got "${content}"`,
          {
            details: { file: source, line: lineNumber },
          },
        );
      }
      const key = content.slice(0, eq).trim();
      if (key === '') {
        throw new ConfigError('SHIFTER_CONFIG_INVALID', `${source}:${lineNumber}: missing key before "="`, {
          details: { file: source, line: lineNumber },
        });
      }
      pending = { key, value: '', line: lineNumber };
      content = content.slice(eq + 1).trim();
    } else if (content.startsWith('#')) {
      // NOTE: upstream only treats '#' in column 0 as a comment, even inside a continuation; a commented-out line in
      // the middle of a continued value is far more likely a mistake than data, so it ends nothing and is skipped.
      continue;
    }
    const continues = content.endsWith('\\');
    if (continues) content = content.slice(0, -1).trim();
    // Continuation pieces are joined with one space, as upstream does, so `a \` + `b` reads "a b".
    if (content !== '') pending.value = pending.value === '' ? content : `${pending.value} ${content}`;
    if (!continues) {
      yield pending;
      pending = undefined;
    }
  }
  // A trailing backslash on the last line still ends the record (upstream assigns nothing and loses it silently).
  if (pending !== undefined) yield pending;
}

function fail(source: string, line: number, key: string, message: string): never {
  throw new ConfigError('SHIFTER_CONFIG_INVALID', `${source}:${line}: ${key}: ${message}`, {
    details: { file: source, line, key },
  });
}

function splitList(value: string, separator: RegExp): string[] {
  return value
    .split(separator)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

const BYTE_SCALE = 'bkmgtpe';

function parseBytes(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]?)$/.exec(value);
  if (!match) return undefined;
  const exponent = BYTE_SCALE.indexOf((match[2] || 'b').toLowerCase());
  if (exponent < 0) return undefined;
  return Math.floor(Number(match[1]) * 1024 ** exponent);
}

function convert(
  kind: Kind,
  value: string,
  source: string,
  line: number,
  key: string,
  warn: (message: string) => void,
): unknown {
  switch (kind) {
    case 'string':
      if (value === '') fail(source, line, key, 'value is empty');
      return value;
    case 'boolean': {
      // Upstream reads these with strtol() != 0, so `yes`/`true` meant 0 there: read them the same way (leading
      // integer, else 0; never turning on what upstream left off) and warn with the accepted spelling.
      const on = /^[+-]?0*[1-9]/.test(value);
      if (!/^[+-]?\d+$/.test(value)) {
        warn(
          `${key}=${value} is not 0 or 1: read as ${on ? '1 (on)' : '0 (off)'}, as upstream Shifter's strtol read it; write ${key}=0 or ${key}=1`,
        );
      }
      return on;
    }
    case 'integer':
      if (!/^\d+$/.test(value)) fail(source, line, key, `expected a non-negative integer, got "${value}"`);
      return Number.parseInt(value, 10);
    case 'bytes': {
      const bytes = parseBytes(value);
      if (bytes === undefined) fail(source, line, key, `expected a size such as 10G, got "${value}"`);
      return bytes;
    }
    case 'spaceList':
      return splitList(value, /\s+/);
    case 'commaList':
      return splitList(value, /,/);
    case 'siteFsList':
      return splitList(value, /;/).map((item) =>
        item.length >= 2 && item.startsWith('"') && item.endsWith('"') ? item.slice(1, -1) : item,
      );
    case 'propagation':
      if (value !== 'private' && value !== 'slave')
        fail(source, line, key, `expected "private" or "slave", got "${value}"`);
      return value;
  }
}

function isListKind(kind: Kind): boolean {
  return kind === 'spaceList' || kind === 'commaList' || kind === 'siteFsList';
}

/** Options of {@link parseUdiRootConf}. */
export interface ParseUdiRootConfOptions {
  /** Name used in error messages and `details.file` (default `udiRoot.conf`). */
  source?: string;
}

/**
 * Parse the text of a `udiRoot.conf` file into a normalised {@link UdiRootConf}.
 *
 * Format: `key = value` lines (spaces around key and value trimmed), `#` starts a comment line, a trailing `\`
 * continues the value on the next line (pieces joined with one space), no quoting. Top-level list keys given twice
 * accumulate (upstream appends); scalars given twice keep the last value; module list subkeys are replaced. Pure: no
 * I/O, no defaults applied, nothing validated beyond syntax and value types (the runtime checks required keys and
 * tool paths itself).
 *
 * @param text - the file content
 * @param options - where the text came from, for messages
 * @returns the normalised configuration
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` on an unknown key, a line without `=`, an empty scalar, a
 *   malformed number, size or propagation style, or a malformed `module_<name>_<subkey>` key; the message and
 *   `details` carry the file name and the 1-based line number. A boolean that is not an integer and a module subkey
 *   in the wrong case are not errors: they land in `warnings` (upstream's meaning).
 *
 * @example
 * ```ts
 * const conf = parseUdiRootConf('imageGateway=http://gw1:8000 http://gw2:8000\nsystem=cluster\n');
 * conf.imageGateway; // ['http://gw1:8000', 'http://gw2:8000']
 * ```
 */
export function parseUdiRootConf(text: string, options: ParseUdiRootConfOptions = {}): UdiRootConf {
  const source = options.source ?? 'udiRoot.conf';
  const conf = emptyConf();
  const target = conf as unknown as Record<string, unknown>;
  for (const { key, value, line } of logicalLines(text, source)) {
    if (key.startsWith('module_')) {
      assignModuleKey(conf, key, value, source, line);
      continue;
    }
    if (IGNORED_KEYS.has(key)) {
      conf.ignored.push({ key, line });
      continue;
    }
    const kind = Object.hasOwn(KEYS, key) ? KEYS[key] : undefined;
    if (kind === undefined) fail(source, line, key, 'unknown key (see docs/udiroot-conf-ts.md for the accepted keys)');
    const converted = convert(kind, value, source, line, key, (message) => conf.warnings.push({ key, line, message }));
    if (isListKind(kind)) {
      (target[key] as string[]).push(...(converted as string[]));
    } else {
      target[key] = converted;
    }
  }
  return conf;
}

function assignModuleKey(conf: UdiRootConf, key: string, value: string, source: string, line: number): void {
  // Upstream splits the key on '_' and takes parts 1 and 2, so a module name cannot contain '_' and a subkey is one
  // word; anything longer would be silently truncated there, so it is refused here.
  const parts = key.split('_');
  const name = parts[1];
  const subkey = parts[2];
  if (parts.length !== 3 || !name || !subkey)
    fail(source, line, key, 'expected module_<name>_<subkey> with no "_" in name');
  // SECURITY: the name becomes a path component (/opt/udiImage/modules/<name>); the runtime accepts the same set.
  if (!/^[A-Za-z0-9-]+$/.test(name))
    fail(source, line, key, `module name "${name}" may hold only letters, digits and "-"`);
  const kind = Object.hasOwn(MODULE_KEYS, subkey) ? MODULE_KEYS[subkey] : undefined;
  const meant = Object.keys(MODULE_KEYS).find((known) => known.toLowerCase() === subkey.toLowerCase());
  if (kind === undefined && meant === undefined) {
    fail(source, line, key, `unknown module subkey "${subkey}" (one of ${Object.keys(MODULE_KEYS).join(', ')})`);
  }
  const module = (conf.modules[name] ??= emptyModule());
  if (kind === undefined) {
    // Upstream compared subkeys case-sensitively and ignored any other one (after creating the module), so
    // module_mpich_copypath copied nothing there: the same here, with a warning naming the key it meant.
    conf.warnings.push({
      key,
      line,
      message: `${key} is ignored, as upstream Shifter ignored it; the key is module_${name}_${meant}`,
    });
    return;
  }
  const target = module as unknown as Record<string, unknown>;
  const converted = convert(kind, value, source, line, key, (message) => conf.warnings.push({ key, line, message }));
  if (kind === 'siteFsList') {
    (target[subkey] as string[]).push(...(converted as string[]));
  } else {
    target[subkey] = converted;
  }
}

/**
 * Read and parse a `udiRoot.conf` file.
 *
 * Ownership and mode are not checked here: the setuid runtime insists on a root-owned, non-writable file itself,
 * while `shifterimg` only needs to read the gateway settings.
 *
 * @param path - the file to read
 * @returns the normalised configuration
 * @throws {@link ConfigError} `SHIFTER_CONFIG_NOT_FOUND` when the file cannot be read; `SHIFTER_CONFIG_INVALID` as
 *   {@link parseUdiRootConf}.
 */
export async function loadUdiRootConf(path: string): Promise<UdiRootConf> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
    throw new ConfigError(
      'SHIFTER_CONFIG_NOT_FOUND',
      `cannot read ${path} (${code}): pass --config FILE or set SHIFTER_CONFIG`,
      {
        cause: error,
        details: { file: path, errno: code },
      },
    );
  }
  return parseUdiRootConf(text, { source: path });
}
