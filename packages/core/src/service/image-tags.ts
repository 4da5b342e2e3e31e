/**
 * Image tags as the service keys records: docker tags parsed against the configured registries, custom tags checked.
 *
 * @packageDocumentation
 */
import type { ShifterConfig } from '../config/index.js';
import { NotFoundError, ShifterError } from '../errors/index.js';
import { parseReference, type ImageReference, type ParseReferenceOptions } from '../reference/index.js';

const DOCKER = 'docker';
const CUSTOM = 'custom';
const CUSTOM_TAG = /^[A-Za-z0-9][A-Za-z0-9_.\-/:@]{0,255}$/;
/** Parsed docker tags kept for reuse; the cache is dropped when it reaches this size. */
const PARSED_TAGS_MAX = 10_000;

/** A docker tag as records are keyed, and the reference it names. */
export interface ParsedDockerTag {
  readonly key: string;
  readonly reference: ImageReference;
}

/** Normalises image tags for one configuration (pure; caches parsed docker tags). */
export class ImageTags {
  private readonly parsed = new Map<string, ParsedDockerTag>();
  private readonly referenceOptions: ParseReferenceOptions;

  constructor(config: Pick<ShifterConfig, 'registries' | 'defaultRegistry'>) {
    this.referenceOptions = {
      locations: Object.fromEntries(
        Object.entries(config.registries).map(([name, registry]) => [name, { url: registry.url }]),
      ),
      ...(config.defaultRegistry ? { defaultLocation: config.defaultRegistry } : {}),
    };
  }

  /**
   * Parse a docker tag.
   * @throws {@link InvalidReferenceError} `SHIFTER_REF_INVALID`
   */
  parseDocker(tag: string): ParsedDockerTag {
    // Parsing is pure, so lookups under load reuse earlier results (bounded: the cache is dropped when full).
    const cached = this.parsed.get(tag);
    if (cached) return cached;
    const reference = parseReference(tag, this.referenceOptions);
    // NOTE: records are keyed by the tag as the user wrote it plus ':latest' when it names no tag or digest, as
    // upstream does — but for lookups and pulls alike (upstream only added it on lookup).
    const key = reference.digest || tag.endsWith(`:${reference.tag}`) ? tag : `${tag}:${reference.tag ?? 'latest'}`;
    if (this.parsed.size >= PARSED_TAGS_MAX) this.parsed.clear();
    const parsed = { key, reference };
    this.parsed.set(tag, parsed);
    return parsed;
  }

  /**
   * Validate and normalise an image tag for a type.
   * @throws {@link ShifterError} `SHIFTER_REF_INVALID` for a malformed tag; `SHIFTER_USAGE_INVALID_ARGUMENT` for an
   *   unknown image type
   */
  normalize(itype: string, tag: string): string {
    if (itype === DOCKER) return this.parseDocker(tag).key;
    if (itype === CUSTOM) {
      if (!CUSTOM_TAG.test(tag) || tag.split(/[/:]/).some((part) => part === '..' || part === '.')) {
        throw new ShifterError('SHIFTER_REF_INVALID', `invalid custom image tag ${JSON.stringify(tag.slice(0, 200))}`);
      }
      return tag.includes(':') ? tag : `${tag}:latest`;
    }
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      `unknown image type ${JSON.stringify(itype.slice(0, 32))}: use docker or custom`,
    );
  }
}

/**
 * The config of a system.
 * @throws {@link NotFoundError} `SHIFTER_SYSTEM_UNKNOWN`
 */
export function requireSystem(config: Pick<ShifterConfig, 'systems'>, name: string): ShifterConfig['systems'][string] {
  const system = Object.hasOwn(config.systems, name) ? config.systems[name] : undefined;
  if (!system)
    throw new NotFoundError('SHIFTER_SYSTEM_UNKNOWN', `system ${JSON.stringify(name.slice(0, 128))} is not configured`);
  return system;
}
