import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, ProxyAgent, request, type Dispatcher } from 'undici';
import type { BlobStore } from '../blob-store/index.js';
import { computeDigest, DEFAULT_SIZE_LIMITS, digestAlgorithm, digestHex, MAX_ERROR_BODY_BYTES, parseDigest, readAllLimited, type Digest, type SizeLimits } from '../digest/index.js';
import { ConfigError, IntegrityError, ManifestError, RegistryError, ShifterError } from '../errors/index.js';
import {
  ACCEPTED_MANIFEST_TYPES,
  checkImageManifest,
  isImageIndex,
  parseImageConfig,
  parseManifest,
  selectPlatform,
  DEFAULT_PLATFORM,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  type Manifest,
  type PlatformSelector,
} from '../manifest/index.js';
import { parseReference, referenceTarget, type ImageReference, type ParseReferenceOptions } from '../reference/index.js';
import { BlobProofs, type BlobRangeAnswer } from './blob-proof.js';
import { registryNetworkError, registryResponseError, type RegistryRequestKind } from './registry-errors.js';
import { isLoopbackHost, proxyFor, resolveRegistryEndpoint, type ProxyOptions, type RegistryEndpoint, type RegistryEndpointConfig } from './registry-endpoint.js';
import { backoffDelay, DEFAULT_RETRY_POLICY, isRetryableNetworkError, parseRetryAfter, RETRYABLE_STATUSES, type RetryPolicy } from './retry-policy.js';
import { parseWwwAuthenticate, type AuthChallenge } from './www-authenticate.js';

/** A user name and password (or registry token) for one registry. */
export interface RegistryCredentials {
  username: string;
  password: string;
}

/**
 * Finds credentials for a registry. Called only when the registry asks for them, with the reference's
 * registry host (`docker.io`, `127.0.0.1:5001`) and the configured location name if one matched.
 */
export type CredentialsLookup = (registryHost: string, location?: string) => RegistryCredentials | undefined | Promise<RegistryCredentials | undefined>;

/** Network timeouts of the registry client. */
export interface RegistryTimeouts {
  /** TCP + TLS connect. */
  connectMs: number;
  /** From request sent to response headers received. */
  headersMs: number;
  /** Longest silence between two body chunks (a stalled blob download is resumed after this). */
  bodyMs: number;
}

/** Default {@link RegistryTimeouts}. */
export const DEFAULT_REGISTRY_TIMEOUTS: Readonly<RegistryTimeouts> = Object.freeze({ connectMs: 10_000, headersMs: 60_000, bodyMs: 60_000 });

/** Default `User-Agent` of registry requests. */
export const DEFAULT_USER_AGENT = 'shifter/0.1 (@shifter/core)';

/** Lifetime assumed for a token whose answer has no `expires_in` (Docker token spec). */
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 60;

const MAX_REDIRECTS = 5;
const MAX_AUTH_ROUNDS = 2;

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** Registries by location name (url, insecure, caFile, authMethod). */
  registries?: Record<string, RegistryEndpointConfig>;
  /** Location used for references that name no registry (upstream `DefaultImageLocation`). */
  defaultLocation?: string;
  /** Credentials lookup; anonymous access only when omitted. */
  credentials?: CredentialsLookup;
  /** undici dispatcher for every request (tests pass a `MockAgent`); proxies and CA bundles are then ignored. */
  dispatcher?: Dispatcher;
  /** Byte caps; see {@link DEFAULT_SIZE_LIMITS}. */
  limits?: Partial<SizeLimits>;
  /** Network timeouts; see {@link DEFAULT_REGISTRY_TIMEOUTS}. */
  timeouts?: Partial<RegistryTimeouts>;
  /** Retry policy; see {@link DEFAULT_RETRY_POLICY}. */
  retry?: Partial<RetryPolicy>;
  /** Proxies, passed explicitly (never read from `process.env` here). */
  proxy?: ProxyOptions;
  /** `User-Agent` header. */
  userAgent?: string;
  /** Proofs that registries serve cached blobs, shared between clients (blob-proof.ts); a fresh set by default. */
  blobProofs?: BlobProofs;
}

/** Options of {@link RegistryClient.resolveImage}. */
export interface ResolveImageOptions {
  /** Platform chosen from multi-platform images; linux/amd64 by default. */
  platform?: PlatformSelector;
  /** Cancels the requests. */
  signal?: AbortSignal;
}

/** An image reference resolved to one platform's manifest and config. */
export interface ResolvedRegistryImage {
  /** The parsed reference. */
  reference: ImageReference;
  /** Digest of the platform manifest (hash of its bytes as received). */
  manifestDigest: Digest;
  /** Digest of the index or manifest list the tag pointed to, when it pointed to one. */
  indexDigest?: Digest;
  /** Image id: hex of {@link ResolvedRegistryImage.manifestDigest}; stable across tags and registries for the same image. */
  id: string;
  /** Media type of the platform manifest. */
  manifestMediaType: string;
  /** The parsed platform manifest. */
  manifest: ImageManifest;
  /** The parsed image config (digest-verified). */
  config: ImageConfig;
  /** Digest of the config blob. */
  configDigest: Digest;
  /** Layer descriptors, lowest first. */
  layers: Descriptor[];
  /** Whether the registry required credentials for this repository (the gateway marks such images private). */
  usedCredentials: boolean;
}

/** Progress of one blob download. */
export interface BlobProgress {
  digest: string;
  /** Bytes received so far (including bytes before a resume). */
  receivedBytes: number;
  /** Declared size. */
  totalBytes: number;
  /** How many times the download resumed after a broken connection. */
  resumes: number;
}

/** Options of {@link RegistryClient.fetchBlob} and {@link RegistryClient.openBlob}. */
export interface FetchBlobOptions {
  /** Called as bytes arrive; must not throw. */
  onProgress?: (progress: BlobProgress) => void;
  /** Cancels the download. */
  signal?: AbortSignal;
}

/** Result of {@link RegistryClient.fetchBlob}. */
export interface FetchBlobResult {
  digest: Digest;
  size: number;
  /** True when the blob was already in the store (or another caller stored it meanwhile). */
  cached: boolean;
}

/** Result of {@link RegistryClient.probe}. */
export interface RegistryProbe {
  /** HTTP status of `GET /v2/` (200, or 401 when auth is needed). */
  status: number;
  /** The auth challenges the registry offered. */
  challenges: AuthChallenge[];
}

interface AuthState {
  scheme: 'bearer' | 'basic';
  token?: string;
  expiresAt?: number;
  lifetimeMs?: number;
  withCredentials: boolean;
  challenge?: AuthChallenge;
}

interface RequestSpec {
  endpoint: RegistryEndpoint;
  /** Token scope, e.g. `repository:test/busybox:pull`; undefined for requests that carry no registry auth. */
  scope: string | undefined;
  url: string;
  kind: RegistryRequestKind;
  what: string;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Skip all registry auth handling (token server, redirect targets). */
  anonymous?: boolean;
  /** Credentials sent as Basic regardless of challenges (token server requests). */
  basic?: RegistryCredentials;
  /** Statuses returned to the caller instead of mapped to errors. */
  acceptStatuses?: ReadonlySet<number>;
}

type ResponseData = Dispatcher.ResponseData;

function basicHeader(credentials: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

async function readErrorBody(body: Readable): Promise<Buffer | undefined> {
  try {
    return await readAllLimited(body, MAX_ERROR_BODY_BYTES, 'error body');
  } catch {
    body.destroy();
    return undefined;
  }
}

/**
 * Client of OCI distribution / Docker registry v2 APIs, on undici.
 *
 * It resolves references to a platform's manifest and config ({@link RegistryClient.resolveImage}) and downloads
 * blobs into a {@link BlobStore} ({@link RegistryClient.fetchBlob}), handling: anonymous, Bearer-token (challenge
 * parsed fully, token cached per scope, refreshed before expiry and once more on a 401 mid-pull) and Basic auth;
 * TLS with a site CA bundle; the plain-HTTP policy (loopback or `insecure` only); retries with exponential backoff
 * and jitter on 429/5xx/connection failures honouring `Retry-After`; blob redirects to other hosts without the
 * registry's `Authorization`; resumption of broken blob downloads with `Range`; size caps on manifests, tokens and
 * configs; explicit proxies.
 *
 * One client may serve many concurrent pulls; call {@link RegistryClient.close} when done to close its connections.
 *
 * @example
 * ```ts
 * const client = new RegistryClient({ registries: { site: { url: 'https://reg.example.org', caFile: '/etc/ssl/site.pem' } } });
 * const image = await client.resolveImage('site/app:1.0');
 * for (const layer of image.layers) await client.fetchBlob(image.reference, layer, store);
 * await client.close();
 * ```
 */
export class RegistryClient {
  readonly #registries: Record<string, RegistryEndpointConfig>;
  readonly #referenceOptions: ParseReferenceOptions;
  readonly #credentials: CredentialsLookup | undefined;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #limits: SizeLimits;
  readonly #timeouts: RegistryTimeouts;
  readonly #retry: RetryPolicy;
  readonly #proxy: ProxyOptions | undefined;
  readonly #userAgent: string;
  readonly #agents = new Map<string, Dispatcher>();
  readonly #auth = new Map<string, AuthState>();
  readonly #challenges = new Map<string, AuthChallenge>();
  readonly #tokenRequests = new Map<string, Promise<AuthState>>();
  readonly #blobProofs: BlobProofs;
  #tokensIssued = 0;

  /**
   * @param options - registries, credentials, limits, timeouts, retries, proxy, user agent
   * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` for nonsensical limits or retry settings
   */
  constructor(options: RegistryClientOptions = {}) {
    this.#registries = options.registries ?? {};
    const locations = Object.fromEntries(Object.entries(this.#registries).map(([name, config]) => [name, { url: config.url }]));
    this.#referenceOptions = { locations, ...(options.defaultLocation !== undefined ? { defaultLocation: options.defaultLocation } : {}) };
    this.#credentials = options.credentials;
    this.#dispatcher = options.dispatcher;
    this.#limits = { ...DEFAULT_SIZE_LIMITS, ...options.limits };
    this.#timeouts = { ...DEFAULT_REGISTRY_TIMEOUTS, ...options.timeouts };
    this.#retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.#proxy = options.proxy;
    this.#userAgent = options.userAgent ?? DEFAULT_USER_AGENT;
    this.#blobProofs = options.blobProofs ?? new BlobProofs();
    for (const [name, value] of Object.entries({ ...this.#limits, ...this.#timeouts })) {
      if (!Number.isFinite(value) || value <= 0) throw new ConfigError('SHIFTER_CONFIG_INVALID', `registry client option ${name} must be a positive number, got ${value}`);
    }
    if (!Number.isInteger(this.#retry.attempts) || this.#retry.attempts < 1) {
      throw new ConfigError('SHIFTER_CONFIG_INVALID', `registry client retry.attempts must be an integer ≥ 1, got ${this.#retry.attempts}`);
    }
  }

  /** Number of tokens this client obtained from token servers (for tests and metrics). */
  get tokensIssued(): number {
    return this.#tokensIssued;
  }

  /**
   * Parse a reference with this client's configured locations and default location.
   * @throws {@link InvalidReferenceError} `SHIFTER_REF_INVALID`
   */
  parseReference(input: string): ImageReference {
    return parseReference(input, this.#referenceOptions);
  }

  /**
   * The endpoint (base URL, TLS and auth settings) used for a reference.
   * @throws {@link RegistryError} `SHIFTER_REGISTRY_INSECURE_REFUSED`
   */
  endpointFor(reference: Pick<ImageReference, 'registry' | 'location'>): RegistryEndpoint {
    return resolveRegistryEndpoint(reference, this.#registries);
  }

  /**
   * `GET /v2/`: checks the registry speaks the v2 API and returns its auth challenges. No credentials are sent.
   * @param reference - any reference on the registry (only its registry is used)
   * @throws {@link RegistryError} `SHIFTER_REGISTRY_UNAVAILABLE`, `SHIFTER_REGISTRY_PROTOCOL`
   */
  async probe(reference: ImageReference | string, options: { signal?: AbortSignal } = {}): Promise<RegistryProbe> {
    const ref = typeof reference === 'string' ? this.parseReference(reference) : reference;
    const endpoint = this.endpointFor(ref);
    const response = await this.#send({
      endpoint,
      scope: undefined,
      url: `${endpoint.baseUrl}/v2/`,
      kind: 'probe',
      what: `API probe of ${endpoint.baseUrl}`,
      anonymous: true,
      signal: options.signal,
      acceptStatuses: new Set([401]),
    });
    const challenges = parseWwwAuthenticate(response.headers['www-authenticate']);
    await response.body.dump();
    for (const challenge of challenges) if (challenge.scheme === 'bearer') this.#challenges.set(endpoint.origin, challenge);
    return { status: response.statusCode, challenges };
  }

  /**
   * Resolve a reference to its platform manifest digest with as few requests as possible (one manifest GET): the
   * cheap "has the tag moved?" check of the gateway. For an index the digest comes from the chosen entry and the
   * platform manifest itself is not fetched; {@link RegistryClient.resolveImage} verifies it later.
   *
   * @param reference - parsed reference or a string
   * @param options - platform and abort signal
   * @returns the platform manifest digest, the image id (its hex), the index digest if any, and whether
   *   credentials were needed
   * @throws as {@link RegistryClient.resolveImage}, minus the config checks
   */
  async resolveDigest(
    reference: ImageReference | string,
    options: ResolveImageOptions = {},
  ): Promise<{ reference: ImageReference; manifestDigest: Digest; id: string; indexDigest?: Digest; usedCredentials: boolean }> {
    const { ref, endpoint, scope, top } = await this.#topManifest(reference, options.signal);
    let manifestDigest = top.digest;
    let indexDigest: Digest | undefined;
    if (isImageIndex(top.manifest)) {
      indexDigest = top.digest;
      manifestDigest = parseDigest(selectPlatform(top.manifest, options.platform ?? DEFAULT_PLATFORM).digest);
    }
    const usedCredentials = this.#auth.get(this.#authKey(endpoint, scope))?.withCredentials ?? false;
    return { reference: ref, manifestDigest, id: digestHex(manifestDigest), ...(indexDigest ? { indexDigest } : {}), usedCredentials };
  }

  /**
   * Resolve a reference to one platform's manifest and image config.
   *
   * Verified: the manifest digest is computed over the bytes as received and must equal a digest in the reference
   * (`Docker-Content-Digest` is advisory and ignored); a platform manifest chosen from an index must match the
   * index entry's digest and size; the config blob must match its descriptor. Sizes are capped before parsing.
   *
   * @param reference - parsed reference or a string (parsed with this client's locations)
   * @param options - platform and abort signal
   * @throws {@link RegistryError} `SHIFTER_REGISTRY_MANIFEST_UNKNOWN`, `…_NAME_UNKNOWN`, `…_AUTH_FAILED`, `…_DENIED`,
   *   `…_RATE_LIMITED`, `…_UNAVAILABLE`, `…_PROTOCOL`, `…_INSECURE_REFUSED`
   * @throws {@link ManifestError} `SHIFTER_MANIFEST_UNSUPPORTED`, `SHIFTER_MANIFEST_INVALID`, `SHIFTER_PLATFORM_NOT_FOUND`
   * @throws {@link IntegrityError} `SHIFTER_DIGEST_MISMATCH`, `SHIFTER_SIZE_LIMIT`
   */
  async resolveImage(reference: ImageReference | string, options: ResolveImageOptions = {}): Promise<ResolvedRegistryImage> {
    const { ref, endpoint, scope, top } = await this.#topManifest(reference, options.signal);
    let manifestDigest = top.digest;
    let manifest: Manifest = top.manifest;
    let indexDigest: Digest | undefined;
    if (isImageIndex(manifest)) {
      const entry = selectPlatform(manifest, options.platform ?? DEFAULT_PLATFORM);
      indexDigest = top.digest;
      const chosen = await this.#getManifest(endpoint, scope, ref, entry.digest, parseDigest(entry.digest), options.signal);
      if (chosen.size !== entry.size) {
        throw new IntegrityError('SHIFTER_DIGEST_MISMATCH', `platform manifest ${entry.digest} of ${ref.familiar} is ${chosen.size} bytes, the index says ${entry.size}`);
      }
      if (isImageIndex(chosen.manifest)) {
        throw new ManifestError('SHIFTER_MANIFEST_UNSUPPORTED', `index entry ${entry.digest} of ${ref.familiar} is itself an index; nested indexes are not supported`);
      }
      manifestDigest = chosen.digest;
      manifest = chosen.manifest;
    }
    const imageManifest = manifest as ImageManifest;
    checkImageManifest(imageManifest, this.#limits.maxLayerBytes);
    const configDigest = parseDigest(imageManifest.config.digest);
    if (imageManifest.config.size > this.#limits.maxConfigBytes) {
      throw new IntegrityError('SHIFTER_SIZE_LIMIT', `image config of ${ref.familiar} is ${imageManifest.config.size} bytes, over the limit of ${this.#limits.maxConfigBytes}`);
    }
    const configBytes = await readAllLimited(await this.openBlob(ref, imageManifest.config, { ...(options.signal ? { signal: options.signal } : {}) }), this.#limits.maxConfigBytes, `image config of ${ref.familiar}`);
    if (configBytes.length !== imageManifest.config.size || computeDigest(configBytes, digestAlgorithm(configDigest)) !== configDigest) {
      throw new IntegrityError('SHIFTER_DIGEST_MISMATCH', `image config of ${ref.familiar} does not match ${configDigest} (${imageManifest.config.size} bytes)`);
    }
    const config = parseImageConfig(configBytes, imageManifest.layers.length);
    return {
      reference: ref,
      manifestDigest,
      ...(indexDigest === undefined ? {} : { indexDigest }),
      id: digestHex(manifestDigest),
      manifestMediaType: imageManifest.mediaType,
      manifest: imageManifest,
      config,
      configDigest,
      layers: imageManifest.layers,
      usedCredentials: this.#auth.get(this.#authKey(endpoint, scope))?.withCredentials ?? false,
    };
  }

  /**
   * Download a blob into a store, unless the store has it. Digest and size are verified by the store while the
   * bytes stream in; a broken connection resumes with `Range` (the digest state is kept, not restarted). A blob the
   * store already has is used only after the registry proved it serves it ({@link BlobProofs}).
   *
   * Idempotent; concurrent calls for one digest share one download (the store's contract).
   *
   * @param reference - the image the blob belongs to (decides registry, auth scope)
   * @param descriptor - the blob's descriptor (digest, size)
   * @param store - destination
   * @param options - progress callback, abort signal
   * @throws {@link IntegrityError} `SHIFTER_DIGEST_MISMATCH`, `SHIFTER_SIZE_LIMIT`, `SHIFTER_BLOB_UNPROVEN`
   * @throws {@link RegistryError} as {@link RegistryClient.resolveImage}, plus `SHIFTER_REGISTRY_BLOB_UNKNOWN`
   */
  async fetchBlob(reference: ImageReference, descriptor: Pick<Descriptor, 'digest' | 'size'>, store: BlobStore, options: FetchBlobOptions = {}): Promise<FetchBlobResult> {
    const digest = parseDigest(descriptor.digest);
    if (descriptor.size > this.#limits.maxLayerBytes) {
      throw new IntegrityError('SHIFTER_SIZE_LIMIT', `blob ${digest} is ${descriptor.size} bytes, over the limit of ${this.#limits.maxLayerBytes}`);
    }
    const endpoint = this.endpointFor(reference);
    const proofScope = { origin: endpoint.origin, repository: reference.repository, login: await this.#lookupCredentials(endpoint) };
    if (!(await store.has(digest))) {
      const result = await store.put(digest, descriptor.size, () => this.openBlob(reference, descriptor, options), {
        ...(options.signal ? { signal: options.signal } : {}),
        what: `blob ${digest} of ${reference.familiar}`,
      });
      if (result.stored) {
        this.#blobProofs.remember(proofScope, digest);
        return { digest, size: descriptor.size, cached: false };
      }
    }
    // SECURITY: the cache is shared by every user's pulls. A blob already in it (or stored meanwhile by another pull)
    // is used only once this registry proved, to this login, that it serves those bytes (blob-proof.ts).
    await this.#blobProofs.prove(this, reference, descriptor, store, proofScope, options.signal);
    return { digest, size: descriptor.size, cached: true };
  }

  /**
   * `GET` one byte range of a blob (`Range: bytes=start-end`, inclusive), for {@link BlobProofs}. Answers 206 with
   * its `Content-Range`, or 200 with the whole blob when the registry ignores `Range`; other answers throw as
   * {@link RegistryClient.openBlob} does. The caller consumes or destroys the body.
   */
  async readBlobRange(reference: ImageReference, descriptor: Pick<Descriptor, 'digest' | 'size'>, start: number, end: number, options: { signal?: AbortSignal | undefined } = {}): Promise<BlobRangeAnswer> {
    const digest = parseDigest(descriptor.digest);
    const endpoint = this.endpointFor(reference);
    const response = await this.#send({
      endpoint,
      scope: `repository:${reference.repository}:pull`,
      url: `${endpoint.baseUrl}/v2/${reference.repository}/blobs/${digest}`,
      kind: 'blob',
      what: `bytes ${start}-${end} of blob ${digest} of ${reference.familiar}`,
      signal: options.signal,
      headers: { range: `bytes=${start}-${end}` },
    });
    return { status: response.statusCode, contentRange: headerValue(response.headers['content-range']), body: response.body };
  }

  /**
   * Open a blob as a stream of its bytes, resuming with `Range: bytes=N-` when the connection breaks (at most
   * `retry.maxResumes` times). The stream is NOT verified: pass it through a verifying stream or a {@link BlobStore}.
   * The caller owns the stream and destroys it when abandoning it.
   *
   * @param reference - the image the blob belongs to
   * @param descriptor - digest and size
   * @param options - progress callback, abort signal
   */
  async openBlob(reference: ImageReference, descriptor: Pick<Descriptor, 'digest' | 'size'>, options: FetchBlobOptions = {}): Promise<Readable> {
    const digest = parseDigest(descriptor.digest);
    const endpoint = this.endpointFor(reference);
    const scope = `repository:${reference.repository}:pull`;
    const url = `${endpoint.baseUrl}/v2/${reference.repository}/blobs/${digest}`;
    const what = `blob ${digest} of ${reference.familiar}`;
    // The first request happens before returning, so "no such blob" or auth failures reject here, not mid-stream.
    let response: ResponseData = await this.#send({ endpoint, scope, url, kind: 'blob', what, signal: options.signal });
    const client = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      let received = 0;
      let resumes = 0;
      for (;;) {
        let skip = 0;
        if (received > 0) {
          if (response.statusCode === 206) {
            const range = /^bytes (\d+)-/.exec(headerValue(response.headers['content-range']) ?? '');
            if (!range || Number(range[1]) !== received) {
              response.body.destroy();
              throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${what}: resumed at byte ${received} but the registry sent range ${headerValue(response.headers['content-range']) ?? '(none)'}`);
            }
          } else {
            // The registry ignored Range and restarted: drop what we already have.
            skip = received;
          }
        }
        try {
          for await (const raw of response.body) {
            let chunk = raw as Buffer;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            received += chunk.length;
            options.onProgress?.({ digest, receivedBytes: received, totalBytes: descriptor.size, resumes });
            yield chunk;
          }
          return;
        } catch (error) {
          response.body.destroy();
          if (options.signal?.aborted) throw options.signal.reason;
          if (ShifterError.isInstance(error)) throw error;
          if (resumes >= client.#retry.maxResumes || received >= descriptor.size) throw registryNetworkError(error, `${what} (after ${resumes} resumes)`);
          resumes += 1;
          await sleep(backoffDelay(client.#retry, resumes));
          response = await client.#send({
            endpoint,
            scope,
            url,
            kind: 'blob',
            what,
            signal: options.signal,
            headers: { range: `bytes=${received}-` },
          });
        }
      }
    }
    const generator = chunks();
    return Readable.from(generator, { objectMode: false, highWaterMark: 1024 * 1024 });
  }

  /** Close every connection this client opened. The client must not be used afterwards. */
  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    await Promise.all(agents.map((agent) => agent.close().catch(() => undefined)));
  }

  /** Parse the reference and fetch the manifest (or index) it names, checked against a digest in the reference. */
  async #topManifest(reference: ImageReference | string, signal: AbortSignal | undefined) {
    const ref = typeof reference === 'string' ? this.parseReference(reference) : reference;
    const endpoint = this.endpointFor(ref);
    const scope = `repository:${ref.repository}:pull`;
    const expected = ref.digest === undefined ? undefined : parseDigest(ref.digest);
    const top = await this.#getManifest(endpoint, scope, ref, referenceTarget(ref), expected, signal);
    return { ref, endpoint, scope, top };
  }

  async #getManifest(
    endpoint: RegistryEndpoint,
    scope: string,
    reference: ImageReference,
    target: string,
    expected: Digest | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ manifest: Manifest; digest: Digest; size: number }> {
    const what = `manifest ${reference.repository}${target.includes(':') ? '@' : ':'}${target} on ${endpoint.host}`;
    const response = await this.#send({
      endpoint,
      scope,
      url: `${endpoint.baseUrl}/v2/${reference.repository}/manifests/${target}`,
      kind: 'manifest',
      what,
      signal,
      headers: { accept: ACCEPTED_MANIFEST_TYPES.join(', ') },
    });
    const declared = Number(headerValue(response.headers['content-length']));
    if (Number.isFinite(declared) && declared > this.#limits.maxManifestBytes) {
      response.body.destroy();
      throw new IntegrityError('SHIFTER_SIZE_LIMIT', `${what} is ${declared} bytes, over the limit of ${this.#limits.maxManifestBytes}`);
    }
    const bytes = await readAllLimited(response.body, this.#limits.maxManifestBytes, what);
    // The digest is the hash of the bytes exactly as received; never re-serialise before hashing.
    const digest = computeDigest(bytes, expected ? digestAlgorithm(expected) : 'sha256');
    if (expected !== undefined && digest !== expected) {
      throw new IntegrityError('SHIFTER_DIGEST_MISMATCH', `${what}: received content has digest ${digest}, expected ${expected}`, { details: { expected, actual: digest } });
    }
    const manifest = parseManifest(bytes, headerValue(response.headers['content-type']));
    return { manifest, digest, size: bytes.length };
  }

  #authKey(endpoint: RegistryEndpoint, scope: string): string {
    return `${endpoint.origin} ${scope}`;
  }

  async #lookupCredentials(endpoint: RegistryEndpoint): Promise<RegistryCredentials | undefined> {
    if (!this.#credentials) return undefined;
    return (await this.#credentials(endpoint.host, endpoint.location)) ?? undefined;
  }

  /** The Authorization header for a request, refreshing an expiring token first. */
  async #authorization(endpoint: RegistryEndpoint, scope: string, signal: AbortSignal | undefined): Promise<string | undefined> {
    const key = this.#authKey(endpoint, scope);
    let state = this.#auth.get(key);
    if (state === undefined && endpoint.authMethod === 'basic') {
      const credentials = await this.#lookupCredentials(endpoint);
      if (credentials) {
        state = { scheme: 'basic', withCredentials: true };
        this.#auth.set(key, state);
      }
    }
    if (state === undefined) {
      // Another repository on this registry already told us how to get tokens: skip the 401 round trip.
      const known = this.#challenges.get(endpoint.origin);
      if (known && endpoint.authMethod !== 'basic') state = await this.#obtainToken(endpoint, scope, known, false, signal);
    }
    if (state === undefined) return undefined;
    if (state.scheme === 'basic') {
      const credentials = await this.#lookupCredentials(endpoint);
      return credentials ? basicHeader(credentials) : undefined;
    }
    if (state.expiresAt !== undefined && state.challenge !== undefined) {
      // Refresh a little before expiry so a request is not sent with a token that dies in flight.
      const margin = Math.min(5_000, (state.lifetimeMs ?? 60_000) / 4);
      if (Date.now() >= state.expiresAt - margin) state = await this.#obtainToken(endpoint, scope, state.challenge, state.withCredentials, signal);
    }
    return state.token ? `Bearer ${state.token}` : undefined;
  }

  /**
   * React to a 401: decide whether another attempt with (new or better) credentials can succeed.
   * @returns true to retry the request
   */
  async #handleChallenge(endpoint: RegistryEndpoint, scope: string, challenges: AuthChallenge[], previousRounds: number, signal: AbortSignal | undefined): Promise<boolean> {
    const key = this.#authKey(endpoint, scope);
    const state = this.#auth.get(key);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    const method = endpoint.authMethod ?? (bearer ? 'token' : basic ? 'basic' : undefined);
    if (method === undefined) return false;
    const credentials = await this.#lookupCredentials(endpoint);
    if (method === 'basic') {
      if (!credentials || state?.scheme === 'basic') return false;
      this.#auth.set(key, { scheme: 'basic', withCredentials: true });
      return true;
    }
    const challenge = bearer ?? state?.challenge ?? this.#challenges.get(endpoint.origin);
    if (!challenge?.params.realm) return false;
    this.#challenges.set(endpoint.origin, challenge);
    let withCredentials = false;
    if (state?.token !== undefined) {
      // We sent a token and it was refused. insufficient_scope on an anonymous token means the repository needs
      // credentials; anything else (invalid_token, or no reason given) is treated as an expired or revoked token
      // and refreshed in the same mode — unless this request already refreshed once, then credentials are tried.
      const lacksAccess = challenge.params.error === 'insufficient_scope' || previousRounds > 0;
      if (state.withCredentials) withCredentials = true;
      else if (lacksAccess) {
        if (credentials === undefined) return false;
        withCredentials = true;
      }
    }
    await this.#obtainToken(endpoint, scope, challenge, withCredentials, signal, true);
    return true;
  }

  /** Get a token for a scope, deduplicating concurrent requests for the same scope and mode. */
  async #obtainToken(
    endpoint: RegistryEndpoint,
    scope: string,
    challenge: AuthChallenge,
    withCredentials: boolean,
    signal: AbortSignal | undefined,
    force = false,
  ): Promise<AuthState> {
    const key = this.#authKey(endpoint, scope);
    const flightKey = `${key} ${withCredentials}`;
    const running = this.#tokenRequests.get(flightKey);
    if (running) return running;
    const current = this.#auth.get(key);
    if (!force && current?.token && current.withCredentials === withCredentials && current.expiresAt !== undefined && Date.now() < current.expiresAt - Math.min(5_000, (current.lifetimeMs ?? 60_000) / 4)) {
      return current;
    }
    const attempt = this.#requestToken(endpoint, scope, challenge, withCredentials, signal).then((state) => {
      this.#auth.set(key, state);
      return state;
    });
    this.#tokenRequests.set(flightKey, attempt);
    try {
      return await attempt;
    } finally {
      this.#tokenRequests.delete(flightKey);
    }
  }

  async #requestToken(endpoint: RegistryEndpoint, scope: string, challenge: AuthChallenge, withCredentials: boolean, signal: AbortSignal | undefined): Promise<AuthState> {
    let realm: URL;
    try {
      realm = new URL(challenge.params.realm!);
    } catch {
      throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${endpoint.host} sent an unusable token realm ${JSON.stringify(challenge.params.realm)}`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${endpoint.host} sent a token realm that is not http(s)`);
    }
    // SECURITY: credentials go to the realm; plain HTTP there is held to the same policy as the registry itself.
    if (realm.protocol === 'http:' && !endpoint.insecure && !isLoopbackHost(realm.host)) {
      throw new RegistryError('SHIFTER_REGISTRY_INSECURE_REFUSED', `refusing plain-HTTP token server ${realm.host} for ${endpoint.host}`);
    }
    if (challenge.params.service !== undefined) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', challenge.params.scope ?? scope);
    const credentials = withCredentials ? await this.#lookupCredentials(endpoint) : undefined;
    if (withCredentials && !credentials) {
      throw new RegistryError('SHIFTER_REGISTRY_AUTH_FAILED', `${endpoint.host} requires credentials for ${scope} and none are configured`, { registryStatus: 401 });
    }
    const what = `token for ${scope} from ${realm.origin}${realm.pathname}`;
    const response = await this.#send({
      endpoint,
      scope: undefined,
      url: realm.href,
      kind: 'token',
      what,
      anonymous: true,
      ...(credentials ? { basic: credentials } : {}),
      signal,
      headers: { accept: 'application/json' },
      acceptStatuses: new Set([401, 403]),
    });
    if (response.statusCode === 401 || response.statusCode === 403) {
      const body = await readErrorBody(response.body);
      if (!withCredentials && (await this.#lookupCredentials(endpoint)) !== undefined) {
        return this.#requestToken(endpoint, scope, challenge, true, signal);
      }
      throw registryResponseError({ status: response.statusCode, headers: response.headers, ...(body ? { body } : {}), kind: 'token', what });
    }
    const bytes = await readAllLimited(response.body, this.#limits.maxTokenBytes, what);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${what}: answer is not JSON`, { cause: error });
    }
    const token = typeof json.token === 'string' && json.token.length > 0 ? json.token : json.access_token;
    if (typeof token !== 'string' || token.length === 0) throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${what}: answer has no token`);
    const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : DEFAULT_TOKEN_LIFETIME_SECONDS;
    this.#tokensIssued += 1;
    return { scheme: 'bearer', token, lifetimeMs: expiresIn * 1000, expiresAt: Date.now() + expiresIn * 1000, withCredentials, challenge };
  }

  #dispatcherFor(url: URL, endpoint: RegistryEndpoint): Dispatcher {
    if (this.#dispatcher) return this.#dispatcher;
    // The site CA bundle and the insecure flag apply to the registry's own host only, never to redirect targets.
    const own = url.host === new URL(endpoint.baseUrl).host;
    const caFile = own ? endpoint.caFile : undefined;
    const insecure = own && endpoint.insecure;
    const proxy = proxyFor(url, this.#proxy);
    const key = `${proxy ?? 'direct'}|${caFile ?? ''}|${insecure}`;
    let agent = this.#agents.get(key);
    if (agent) return agent;
    let ca: Buffer | undefined;
    if (caFile) {
      try {
        ca = readFileSync(caFile);
      } catch (error) {
        throw new ConfigError('SHIFTER_CONFIG_INVALID', `cannot read the CA bundle ${caFile} of ${endpoint.host}: ${(error as Error).message}`, { cause: error });
      }
    }
    const tls = { ...(ca ? { ca } : {}), ...(insecure ? { rejectUnauthorized: false } : {}), timeout: this.#timeouts.connectMs };
    agent = proxy ? new ProxyAgent({ uri: proxy, requestTls: tls, proxyTls: { timeout: this.#timeouts.connectMs } }) : new Agent({ connect: tls });
    this.#agents.set(key, agent);
    return agent;
  }

  /**
   * Send one logical request: auth, retries with backoff, redirects. Returns 2xx answers (and `acceptStatuses`);
   * maps everything else through {@link registryResponseError}.
   */
  async #send(spec: RequestSpec): Promise<ResponseData> {
    let url = new URL(spec.url);
    let retries = 0;
    let authRounds = 0;
    let redirects = 0;
    for (;;) {
      spec.signal?.throwIfAborted();
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...spec.headers };
      // SECURITY: registry credentials only ever go to the registry's own origin; redirect targets get none.
      const toRegistry = url.origin === spec.endpoint.origin;
      if (spec.basic) headers.authorization = basicHeader(spec.basic);
      else if (!spec.anonymous && toRegistry && spec.scope !== undefined) {
        const authorization = await this.#authorization(spec.endpoint, spec.scope, spec.signal);
        if (authorization) headers.authorization = authorization;
      }
      let response: ResponseData;
      try {
        response = await request(url, {
          method: 'GET',
          headers,
          dispatcher: this.#dispatcherFor(url, spec.endpoint),
          headersTimeout: this.#timeouts.headersMs,
          bodyTimeout: this.#timeouts.bodyMs,
          ...(spec.signal ? { signal: spec.signal } : {}),
        });
      } catch (error) {
        if (spec.signal?.aborted) throw spec.signal.reason;
        if (ShifterError.isInstance(error)) throw error;
        if (isRetryableNetworkError(error) && retries + 1 < this.#retry.attempts) {
          retries += 1;
          await sleep(backoffDelay(this.#retry, retries), undefined, spec.signal ? { signal: spec.signal } : {});
          continue;
        }
        throw registryNetworkError(error, spec.what);
      }
      const status = response.statusCode;
      if ((status >= 200 && status < 300) || spec.acceptStatuses?.has(status)) return response;
      if ([301, 302, 303, 307, 308].includes(status)) {
        const location = headerValue(response.headers.location);
        await response.body.dump();
        if (!location || redirects >= MAX_REDIRECTS) {
          throw new RegistryError('SHIFTER_REGISTRY_PROTOCOL', `${spec.what}: ${location ? 'too many redirects' : `redirect ${status} without Location`}`, { registryStatus: status });
        }
        redirects += 1;
        const next = new URL(location, url);
        if (next.protocol === 'http:' && url.protocol === 'https:' && !isLoopbackHost(next.host)) {
          throw new RegistryError('SHIFTER_REGISTRY_INSECURE_REFUSED', `${spec.what}: refusing a redirect from https to plain http (${next.host})`);
        }
        url = next;
        continue;
      }
      if (status === 401 && !spec.anonymous && toRegistry && spec.scope !== undefined && authRounds < MAX_AUTH_ROUNDS) {
        const body = await readErrorBody(response.body);
        const challenges = parseWwwAuthenticate(response.headers['www-authenticate']);
        if (await this.#handleChallenge(spec.endpoint, spec.scope, challenges, authRounds, spec.signal)) {
          authRounds += 1;
          continue;
        }
        throw registryResponseError({ status, headers: response.headers, ...(body ? { body } : {}), kind: spec.kind, what: spec.what });
      }
      const body = await readErrorBody(response.body);
      if (RETRYABLE_STATUSES.has(status) && retries + 1 < this.#retry.attempts) {
        const retryAfter = parseRetryAfter(response.headers['retry-after']);
        if (retryAfter === undefined || retryAfter <= this.#retry.maxRetryAfterMs) {
          retries += 1;
          await sleep(retryAfter ?? backoffDelay(this.#retry, retries), undefined, spec.signal ? { signal: spec.signal } : {});
          continue;
        }
      }
      throw registryResponseError({ status, headers: response.headers, ...(body ? { body } : {}), kind: spec.kind, what: spec.what });
    }
  }
}
