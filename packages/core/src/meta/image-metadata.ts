import { ManifestError } from '../errors/index.js';

/**
 * The parts of an image config the runtime needs: environment, entrypoint, command, working directory, labels and
 * user. Field names follow the OCI image config's `config` object, lower-cased.
 */
export interface ImageMetadata {
  /** `KEY=value` strings, in config order. */
  env: string[];
  /** `Entrypoint`, or null when the config has none. */
  entrypoint: string[] | null;
  /** `Cmd`, or null when the config has none. */
  cmd: string[] | null;
  /** `WorkingDir`, or null when empty or absent. */
  workdir: string | null;
  /** `Labels` (string values only). */
  labels: Record<string, string>;
  /** `User`, or null when empty or absent. */
  user: string | null;
}

function stringList(value: unknown, field: string, allowString = false): string[] | null {
  if (value === undefined || value === null) return null;
  // NOTE: Docker accepts a bare string for Entrypoint/Cmd in some old configs; it means a one-item list.
  if (allowString && typeof value === 'string') return [value];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new ManifestError('SHIFTER_MANIFEST_INVALID', `image config field ${field} is not a list of strings`, {
      details: { field },
    });
  }
  return [...value];
}

function optionalString(value: unknown, field: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') {
    throw new ManifestError('SHIFTER_MANIFEST_INVALID', `image config field ${field} is not a string`, {
      details: { field },
    });
  }
  return value;
}

/**
 * Extract {@link ImageMetadata} from a parsed OCI or Docker image config (the config blob's JSON).
 *
 * Reads `config` (OCI, Docker) and falls back to `container_config` only when `config` is absent (very old Docker
 * configs). Missing fields become empty/null; labels with non-string values are skipped.
 *
 * @param config - the parsed image config JSON
 * @returns the metadata; never shares arrays with the input
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_INVALID` when the config is not an object or a field has the wrong type
 */
export function imageMetadataFromConfig(config: unknown): ImageMetadata {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ManifestError('SHIFTER_MANIFEST_INVALID', 'image config is not a JSON object');
  }
  const root = config as Record<string, unknown>;
  const inner = root.config ?? root.container_config ?? {};
  if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) {
    throw new ManifestError('SHIFTER_MANIFEST_INVALID', 'image config field config is not an object', {
      details: { field: 'config' },
    });
  }
  const c = inner as Record<string, unknown>;
  const labels: Record<string, string> = {};
  if (c.Labels !== undefined && c.Labels !== null) {
    if (typeof c.Labels !== 'object' || Array.isArray(c.Labels)) {
      throw new ManifestError('SHIFTER_MANIFEST_INVALID', 'image config field Labels is not an object', {
        details: { field: 'Labels' },
      });
    }
    for (const [key, value] of Object.entries(c.Labels as Record<string, unknown>)) {
      if (typeof value === 'string') labels[key] = value;
    }
  }
  return {
    env: stringList(c.Env, 'Env') ?? [],
    entrypoint: stringList(c.Entrypoint, 'Entrypoint', true),
    cmd: stringList(c.Cmd, 'Cmd', true),
    workdir: optionalString(c.WorkingDir, 'WorkingDir'),
    labels,
    user: optionalString(c.User, 'User'),
  };
}
