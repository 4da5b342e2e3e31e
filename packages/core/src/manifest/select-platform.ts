import { ManifestError, ShifterError } from '../errors/index.js';
import type { Descriptor, ImagePlatform } from './descriptor.js';
import type { ImageIndex } from './parse-manifest.js';

/** The platform wanted from a multi-platform image. */
export interface PlatformSelector {
  os: string;
  architecture: string;
  /** Required variant; when absent any variant matches (the preferred one for the architecture first). */
  variant?: string;
}

/** Platform used when none is configured. */
export const DEFAULT_PLATFORM: Readonly<PlatformSelector> = Object.freeze({ os: 'linux', architecture: 'amd64' });

// Variants implied by an architecture when an index entry omits them (containerd's platforms normalisation).
const DEFAULT_VARIANT: Readonly<Record<string, string>> = { arm64: 'v8', arm: 'v7' };

/**
 * Parse `os/architecture[/variant]`.
 * @param value - e.g. `linux/arm64/v8`
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` when malformed
 */
export function parsePlatform(value: string): PlatformSelector {
  const match = /^([a-z0-9]+)\/([a-z0-9_]+)(?:\/([a-z0-9]+))?$/.exec(value);
  if (!match) {
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      `platform ${JSON.stringify(value)} must look like os/architecture[/variant]`,
    );
  }
  return { os: match[1]!, architecture: match[2]!, ...(match[3] ? { variant: match[3] } : {}) };
}

/** `os/architecture[/variant]` of a platform. */
export function formatPlatform(platform: Pick<ImagePlatform, 'os' | 'architecture' | 'variant'>): string {
  return `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
}

function isAttestation(entry: Descriptor): boolean {
  // BuildKit stores provenance/SBOM manifests in the index with platform unknown/unknown and this annotation.
  return (
    (entry.platform?.os === 'unknown' && entry.platform.architecture === 'unknown') ||
    entry.annotations?.['vnd.docker.reference.type'] !== undefined
  );
}

/**
 * Pick the manifest for a platform from an index or manifest list.
 *
 * Matching: `os` and `architecture` must be equal; a requested `variant` must equal the entry's (an entry without a
 * variant counts as the architecture's default: arm64 → v8, arm → v7). Without a requested variant, an entry with
 * the default variant (or none) is preferred. Attestation entries are skipped.
 *
 * @param index - a parsed index or list
 * @param platform - wanted platform; {@link DEFAULT_PLATFORM} when omitted
 * @returns the chosen descriptor
 * @throws {@link ManifestError} `SHIFTER_PLATFORM_NOT_FOUND` listing the platforms the index offers
 */
export function selectPlatform(index: ImageIndex, platform: PlatformSelector = DEFAULT_PLATFORM): Descriptor {
  const candidates = index.manifests.filter((entry) => entry.platform !== undefined && !isAttestation(entry));
  const matching = candidates.filter((entry) => {
    const p = entry.platform!;
    if (p.os !== platform.os || p.architecture !== platform.architecture) return false;
    if (platform.variant === undefined) return true;
    return (p.variant ?? DEFAULT_VARIANT[p.architecture]) === platform.variant;
  });
  if (matching.length === 0) {
    const available = candidates.map((entry) => formatPlatform(entry.platform!));
    throw new ManifestError(
      'SHIFTER_PLATFORM_NOT_FOUND',
      `no manifest for ${formatPlatform(platform)} in the image index; it offers: ${available.length > 0 ? available.join(', ') : '(no platforms)'}`,
      { details: { requested: formatPlatform(platform), available } },
    );
  }
  const preferred = matching.find((entry) => {
    const variant = entry.platform!.variant;
    return variant === undefined || variant === DEFAULT_VARIANT[entry.platform!.architecture];
  });
  return preferred ?? matching[0]!;
}
