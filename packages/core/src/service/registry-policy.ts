/**
 * Which registries a site lets its users pull from (`allowedRegistries`).
 *
 * Upstream Shifter accepted only its configured locations. The default here is the same careful choice:
 * `"configured"` allows the registries named in `registries` (by location name or by the host of their url) and
 * Docker Hub when `defaultRegistry` is unset (that is where unqualified tags go). `"any"` allows every registry
 * host, and a list names the allowed hosts (`host[:port]`, `docker.io` for Docker Hub) and location names exactly.
 *
 * @packageDocumentation
 */
import type { ShifterConfig } from '../config/index.js';
import { ShifterError } from '../errors/index.js';
import type { ImageReference } from '../reference/index.js';
import { DEFAULT_REGISTRY } from '../reference/index.js';

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    return undefined;
  }
}

/** The registry hosts and location names `config` allows; null when any registry is allowed. */
export function allowedRegistrySet(
  config: Pick<ShifterConfig, 'allowedRegistries' | 'registries' | 'defaultRegistry'>,
): ReadonlySet<string> | null {
  const policy = config.allowedRegistries;
  if (policy === 'any') return null;
  if (Array.isArray(policy)) return new Set(policy.map((entry) => entry.toLowerCase()));
  const allowed = new Set<string>();
  for (const [name, registry] of Object.entries(config.registries)) {
    allowed.add(name.toLowerCase());
    const host = hostOf(registry.url);
    if (host) allowed.add(host);
  }
  if (config.defaultRegistry === undefined) allowed.add(DEFAULT_REGISTRY);
  return allowed;
}

/**
 * Refuse a pull from a registry the site does not allow.
 * @param reference - the parsed tag
 * @param config - `allowedRegistries`, `registries`, `defaultRegistry`
 * @throws {@link ShifterError} `SHIFTER_REGISTRY_NOT_ALLOWED` (403)
 */
export function checkRegistryAllowed(
  reference: Pick<ImageReference, 'registry' | 'location'>,
  config: Pick<ShifterConfig, 'allowedRegistries' | 'registries' | 'defaultRegistry'>,
): void {
  const allowed = allowedRegistrySet(config);
  if (allowed === null) return;
  if (reference.location !== undefined && allowed.has(reference.location.toLowerCase())) return;
  if (allowed.has(reference.registry.toLowerCase())) return;
  throw new ShifterError(
    'SHIFTER_REGISTRY_NOT_ALLOWED',
    `this site does not allow pulls from ${reference.registry.slice(0, 256)} (allowedRegistries)`,
    {
      details: { registry: reference.registry.slice(0, 256) },
    },
  );
}
