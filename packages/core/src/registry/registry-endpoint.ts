import { isIP } from 'node:net';
import { ConfigError, RegistryError } from '../errors/index.js';
import { DEFAULT_REGISTRY, DEFAULT_REGISTRY_API_HOST, type ImageReference } from '../reference/index.js';

/** Per-registry settings (the `registries` section of the configuration, upstream `Locations`). */
export interface RegistryEndpointConfig {
  /** Base URL, e.g. `https://registry.example.org` or `http://127.0.0.1:5000`. */
  url: string;
  /** Allow plain HTTP to a non-loopback host and skip TLS verification. */
  insecure?: boolean;
  /** PEM bundle of CAs that sign the registry's certificate. */
  caFile?: string;
  /** Force an auth scheme instead of following the registry's challenge. */
  authMethod?: 'token' | 'basic';
}

/** Where and how to talk to one registry. */
export interface RegistryEndpoint {
  /** The reference's registry host[:port] (the credentials key). */
  host: string;
  /** Configured location name, when one matched. */
  location?: string;
  /** Base URL without trailing slash (`https://registry-1.docker.io`). */
  baseUrl: string;
  /** URL origin, for redirect and credential decisions. */
  origin: string;
  /** Whether TLS verification is off / plain HTTP allowed for a non-loopback host. */
  insecure: boolean;
  /** CA bundle path. */
  caFile?: string;
  /** Forced auth scheme. */
  authMethod?: 'token' | 'basic';
}

/**
 * Whether a host (optionally with port) is loopback: `localhost`, 127.0.0.0/8, `::1`.
 * @param host - `127.0.0.1:5000`, `[::1]:5000`, `localhost`
 */
export function isLoopbackHost(host: string): boolean {
  let name = host.toLowerCase();
  if (name.startsWith('[')) name = name.slice(1, name.indexOf(']'));
  else if (name.split(':').length === 2) name = name.split(':')[0]!;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) === 6) return name === '::1' || name === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * Decide the endpoint of a reference's registry.
 *
 * Lookup order: the reference's location name; a configured registry whose URL host equals the reference's host;
 * else a default: Docker Hub → `https://registry-1.docker.io`, a loopback host → `http://host` (a registry on
 * this machine is reached without TLS, as Docker does), anything else → `https://host`.
 *
 * SECURITY: plain HTTP to a non-loopback host is refused unless that registry is configured `insecure`, because it
 * would expose credentials and let anyone on the path swap content before the digest check catches it only late.
 *
 * @param reference - a parsed reference
 * @param registries - configured registries by location name
 * @throws {@link RegistryError} `SHIFTER_REGISTRY_INSECURE_REFUSED`; `SHIFTER_CONFIG_INVALID` for an unusable url
 */
export function resolveRegistryEndpoint(
  reference: Pick<ImageReference, 'registry' | 'location'>,
  registries: Record<string, RegistryEndpointConfig> = {},
): RegistryEndpoint {
  let location: string | undefined;
  let config: RegistryEndpointConfig | undefined;
  if (reference.location !== undefined && Object.hasOwn(registries, reference.location)) {
    location = reference.location;
    config = registries[location];
  } else {
    for (const [name, candidate] of Object.entries(registries)) {
      if (hostOf(candidate.url) === reference.registry.toLowerCase()) {
        location = name;
        config = candidate;
        break;
      }
    }
  }
  let base: string;
  if (config?.url) base = config.url;
  else if (reference.registry === DEFAULT_REGISTRY) base = `https://${DEFAULT_REGISTRY_API_HOST}`;
  else if (isLoopbackHost(reference.registry)) base = `http://${reference.registry}`;
  else base = `https://${reference.registry}`;
  let url: URL;
  try {
    url = new URL(base);
  } catch (error) {
    throw new ConfigError(
      'SHIFTER_CONFIG_INVALID',
      `registry ${location ?? reference.registry} has an unusable url ${JSON.stringify(base)}`,
      { cause: error },
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(
      'SHIFTER_CONFIG_INVALID',
      `registry ${location ?? reference.registry} url must be http(s): ${JSON.stringify(base)}`,
    );
  }
  const insecure = config?.insecure ?? false;
  if (url.protocol === 'http:' && !insecure && !isLoopbackHost(url.host)) {
    throw new RegistryError(
      'SHIFTER_REGISTRY_INSECURE_REFUSED',
      `refusing plain HTTP to ${url.host}: only loopback registries or ones configured with insecure: true may use http`,
      { details: { registry: url.host } },
    );
  }
  return {
    host: reference.registry,
    ...(location === undefined ? {} : { location }),
    baseUrl: url.href.replace(/\/+$/, ''),
    origin: url.origin,
    insecure,
    ...(config?.caFile ? { caFile: config.caFile } : {}),
    ...(config?.authMethod ? { authMethod: config.authMethod } : {}),
  };
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    return undefined;
  }
}

/** Proxy settings, passed in explicitly (the config loader reads `HTTP(S)_PROXY`/`NO_PROXY`). */
export interface ProxyOptions {
  /** Proxy URL for `http:` requests. */
  httpProxy?: string;
  /** Proxy URL for `https:` requests. */
  httpsProxy?: string;
  /** Comma-separated hosts that bypass the proxy: `*`, `host`, `.suffix`, `host:port`, IPs. */
  noProxy?: string;
}

/**
 * The proxy URL to use for a request, or undefined for a direct connection. Loopback targets are never proxied
 * (Go's and curl's rule, and what keeps a site proxy from intercepting a local test registry).
 * @param target - request URL
 * @param proxy - proxy settings
 */
export function proxyFor(target: URL, proxy: ProxyOptions | undefined): string | undefined {
  if (!proxy) return undefined;
  const chosen = target.protocol === 'https:' ? proxy.httpsProxy : proxy.httpProxy;
  if (!chosen) return undefined;
  if (isLoopbackHost(target.host)) return undefined;
  const host = target.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  for (const raw of (proxy.noProxy ?? '').split(/[,\s]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry.length === 0) continue;
    if (entry === '*') return undefined;
    let pattern = entry;
    let entryPort: string | undefined;
    const portMatch = /^(.*):(\d+)$/.exec(entry);
    if (portMatch && !entry.includes('::')) {
      pattern = portMatch[1]!;
      entryPort = portMatch[2]!;
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    pattern = pattern.replace(/^\[|\]$/g, '').replace(/^\*\./, '.');
    if (
      pattern.startsWith('.')
        ? host.endsWith(pattern) || host === pattern.slice(1)
        : host === pattern || host.endsWith(`.${pattern}`)
    ) {
      return undefined;
    }
  }
  return chosen;
}
