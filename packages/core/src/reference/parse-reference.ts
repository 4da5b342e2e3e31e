import { InvalidReferenceError } from '../errors/index.js';

/** Registry of short names such as `ubuntu` (Docker's convention). */
export const DEFAULT_REGISTRY = 'docker.io';
/** Host that serves {@link DEFAULT_REGISTRY}'s API. */
export const DEFAULT_REGISTRY_API_HOST = 'registry-1.docker.io';
/** Namespace Docker Hub puts single-component names in (`ubuntu` → `library/ubuntu`). */
export const DEFAULT_NAMESPACE = 'library';
/** Tag used when a reference names neither a tag nor a digest. */
export const DEFAULT_TAG = 'latest';
/** Longest repository path (registry excluded) the distribution spec lets registries accept. */
export const MAX_REPOSITORY_LENGTH = 255;
/** Longest whole reference accepted; bounds the work done on hostile input before any regex runs. */
export const MAX_REFERENCE_LENGTH = 1024;

/** Legacy spellings of Docker Hub that normalise to {@link DEFAULT_REGISTRY}. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

// Grammar of github.com/distribution/reference (regexp.go), anchored piecewise so errors can name the bad part.
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_NAME_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6_HOST = /^\[[a-fA-F0-9:.]+\]$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const DIGEST_LIKE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-zA-Z=_-]+$/;

/** One configured registry location (upstream `Locations` entry of imagemanager.json). */
export interface ReferenceLocation {
  /** Base URL of the registry; its host[:port] becomes the reference's registry. */
  url?: string;
}

/** How {@link parseReference} resolves names that carry no registry host. */
export interface ParseReferenceOptions {
  /**
   * Configured locations by name. A reference whose first path component is one of these names selects that
   * location's registry (upstream: `urltest/ubuntu:latest` → `Locations.urltest.url`).
   */
  locations?: Record<string, ReferenceLocation>;
  /** Location used when the reference names no registry (upstream `DefaultImageLocation`); Docker Hub otherwise. */
  defaultLocation?: string;
}

/** A parsed, normalised image reference. */
export interface ImageReference {
  /** Registry host with optional port (`docker.io`, `127.0.0.1:5000`, `[::1]:5000`). */
  readonly registry: string;
  /** Repository path inside the registry (`library/ubuntu`, `test/busybox`). */
  readonly repository: string;
  /** Tag; absent only when the reference names a digest and no tag. */
  readonly tag?: string;
  /** Manifest digest (`sha256:…`), when the reference pins one. */
  readonly digest?: string;
  /** Name of the configured location that selected the registry, when one did. */
  readonly location?: string;
  /** Short form as Docker prints it (`ubuntu:latest`, `127.0.0.1:5000/test/busybox:latest`). */
  readonly familiar: string;
  /** Fully qualified form (`docker.io/library/ubuntu:latest`); stable key for caches and records. */
  readonly canonical: string;
}

function invalid(input: string, problem: string): InvalidReferenceError {
  // JSON.stringify keeps control characters (newlines, NULs) visible and harmless in logs.
  return new InvalidReferenceError(
    'SHIFTER_REF_INVALID',
    `invalid image reference ${JSON.stringify(input.slice(0, 200))}: ${problem}`,
    {
      details: { reference: input.slice(0, 200), problem },
    },
  );
}

/** Whether a host[:port] string is syntactically a registry host. */
function isValidHost(host: string): boolean {
  let name = host;
  const portMatch = /^(.*):([0-9]+)$/.exec(host);
  if (portMatch) {
    const port = Number(portMatch[2]);
    if (port < 1 || port > 65535 || portMatch[2]!.length > 5) return false;
    name = portMatch[1]!;
  }
  if (IPV6_HOST.test(name)) return true;
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => DOMAIN_NAME_COMPONENT.test(label));
}

/** Docker's rule: the first component is a host when it has a `.` or `:`, is `localhost`, or has uppercase letters. */
function looksLikeHost(component: string): boolean {
  return (
    component.includes('.') ||
    component.includes(':') ||
    component === 'localhost' ||
    component !== component.toLowerCase()
  );
}

function hostOfUrl(url: string, input: string, locationName: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.host) throw new Error('no host');
    return parsed.host;
  } catch {
    throw invalid(input, `location ${JSON.stringify(locationName)} has an unusable url ${JSON.stringify(url)}`);
  }
}

function normaliseRegistry(host: string): string {
  return DOCKER_HUB_ALIASES.has(host.toLowerCase()) ? DEFAULT_REGISTRY : host;
}

/**
 * Parse and normalise an image reference.
 *
 * Accepts `name`, `name:tag`, `name@sha256:…`, `name:tag@sha256:…`, each optionally preceded by a registry
 * `host[:port]/` or a configured location name. Short Docker Hub names are normalised
 * (`ubuntu` → `docker.io/library/ubuntu:latest`). Pure: no I/O, no environment.
 *
 * @param input - the reference as a user typed it; never trimmed or case-folded
 * @param options - configured locations and the default location
 * @returns the normalised reference
 * @throws {@link InvalidReferenceError} `SHIFTER_REF_INVALID` naming the offending part (empty input, bad
 *   characters, uppercase repository, bad tag, unsupported digest algorithm, over-long names, bad port…)
 *
 * @example
 * ```ts
 * parseReference('ubuntu').canonical;                    // 'docker.io/library/ubuntu:latest'
 * parseReference('127.0.0.1:5000/test/busybox').registry; // '127.0.0.1:5000'
 * parseReference('urltest/ubuntu:22.04', { locations: { urltest: { url: 'https://reg.example.org' } } }).registry;
 * // 'reg.example.org'
 * ```
 */
export function parseReference(input: string, options: ParseReferenceOptions = {}): ImageReference {
  if (typeof input !== 'string') throw invalid(String(input), 'not a string');
  if (input.length === 0) throw invalid(input, 'empty');
  if (input.length > MAX_REFERENCE_LENGTH) throw invalid(input, `longer than ${MAX_REFERENCE_LENGTH} characters`);
  // Control characters and whitespace are never part of the grammar; naming them gives a clearer message than a
  // component mismatch further down.
  if (/[\s\u0000-\u001f\u007f]/.test(input)) throw invalid(input, 'contains whitespace or control characters');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      if (DIGEST_LIKE.test(digest) && !/^sha(256|512):/.test(digest)) {
        throw invalid(input, `unsupported digest algorithm in ${JSON.stringify(digest)} (sha256 and sha512 only)`);
      }
      throw invalid(input, `malformed digest ${JSON.stringify(digest)} (want sha256:<64 hex> or sha512:<128 hex>)`);
    }
  }

  // The tag is after the last ':' that follows the last '/', so 'host:5000/repo' keeps its port.
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      throw invalid(
        input,
        tag.length > 128
          ? 'tag longer than 128 characters'
          : `malformed tag ${JSON.stringify(tag)} (want [A-Za-z0-9_][A-Za-z0-9_.-]*)`,
      );
    }
  }
  if (rest.length === 0) throw invalid(input, 'no repository name');

  const components = rest.split('/');
  let registry: string;
  let location: string | undefined;
  const first = components[0]!;
  const locations = options.locations ?? {};
  if (components.length > 1 && Object.hasOwn(locations, first)) {
    location = first;
    const url = locations[first]!.url;
    registry = url ? hostOfUrl(url, input, first) : first;
    components.shift();
  } else if (components.length > 1 && looksLikeHost(first)) {
    if (!isValidHost(first)) throw invalid(input, `malformed registry host ${JSON.stringify(first)}`);
    registry = first;
    components.shift();
  } else if (options.defaultLocation !== undefined) {
    const defaultLocation = locations[options.defaultLocation];
    location = options.defaultLocation;
    const url = defaultLocation?.url;
    registry = url ? hostOfUrl(url, input, options.defaultLocation) : options.defaultLocation;
  } else {
    registry = DEFAULT_REGISTRY;
  }
  registry = normaliseRegistry(registry);
  if (!isValidHost(registry)) throw invalid(input, `malformed registry host ${JSON.stringify(registry)}`);

  for (const component of components) {
    if (component.length === 0) throw invalid(input, 'empty path component (double or trailing "/")');
    if (!PATH_COMPONENT.test(component)) {
      const why =
        component !== component.toLowerCase()
          ? 'repository names must be lowercase'
          : 'allowed are a-z, 0-9 and single separators . _ __ -';
      throw invalid(input, `malformed path component ${JSON.stringify(component)}: ${why}`);
    }
  }
  if (registry === DEFAULT_REGISTRY && components.length === 1) components.unshift(DEFAULT_NAMESPACE);
  const repository = components.join('/');
  if (repository.length > MAX_REPOSITORY_LENGTH)
    throw invalid(input, `repository longer than ${MAX_REPOSITORY_LENGTH} characters`);

  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  const suffix = `${tag === undefined ? '' : `:${tag}`}${digest === undefined ? '' : `@${digest}`}`;
  const canonical = `${registry}/${repository}${suffix}`;
  let familiarName = `${registry}/${repository}`;
  if (location !== undefined && location !== options.defaultLocation) familiarName = `${location}/${repository}`;
  else if (location !== undefined) familiarName = repository;
  else if (registry === DEFAULT_REGISTRY) {
    familiarName = repository.startsWith(`${DEFAULT_NAMESPACE}/`)
      ? repository.slice(DEFAULT_NAMESPACE.length + 1)
      : repository;
  }
  const reference: ImageReference = {
    registry,
    repository,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
    ...(location === undefined ? {} : { location }),
    familiar: `${familiarName}${suffix}`,
    canonical,
  };
  return Object.freeze(reference);
}

/**
 * The string a registry API path uses for a reference: its digest when pinned (a digest outranks a tag, as in
 * Docker), else its tag.
 * @param reference - a parsed reference
 */
export function referenceTarget(reference: ImageReference): string {
  return reference.digest ?? reference.tag ?? DEFAULT_TAG;
}
