import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { BlobStore, LiveBlobWrite } from '../blob-store/index.js';
import {
  computeDigest,
  DEFAULT_SIZE_LIMITS,
  digestAlgorithm,
  digestHex,
  parseDigest,
  readAllLimited,
  type Digest,
  type SizeLimits,
} from '../digest/index.js';
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
import {
  parseReference,
  referenceTarget,
  type ImageReference,
  type ParseReferenceOptions,
} from '../reference/index.js';
import { registryNetworkError } from './registry-errors.js';
import {
  resolveRegistryEndpoint,
  type ProxyOptions,
  type RegistryEndpoint,
  type RegistryEndpointConfig,
} from './registry-endpoint.js';
import {
  DEFAULT_REGISTRY_TIMEOUTS,
  DEFAULT_USER_AGENT,
  headerValue,
  RegistryTransport,
  type RegistryTimeouts,
  type RequestSpec,
  type ResponseData,
} from './registry-transport.js';
import { DEFAULT_RETRY_POLICY, backoffDelay, type RetryPolicy } from './retry-policy.js';
import { RegistryAuth, type CredentialsLookup } from './token-auth.js';
import { BlobProofs, type BlobRangeAnswer } from './blob-proof.js';
import { parseWwwAuthenticate, type AuthChallenge } from './www-authenticate.js';

// The client is three parts: the transport (registry-transport.ts: send, retries, redirects, TLS, proxies), the
// authentication (token-auth.ts: Basic and the token flow, with an injected clock) and the manifest/blob API below.
// Their public types are re-exported here, where they always were.
export {
  DEFAULT_REGISTRY_TIMEOUTS,
  DEFAULT_USER_AGENT,
  type RegistryCredentials,
  type RegistryTimeouts,
} from './registry-transport.js';
export { DEFAULT_TOKEN_LIFETIME_SECONDS, type CredentialsLookup } from './token-auth.js';

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
  /** The clock token expiry and an HTTP-date `Retry-After` are measured with (ms since the epoch; default `Date.now`). */
  now?: () => number;
  /** How retry backoff and `Retry-After` waits are spent (default: a timer); tests inject one that records. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
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
  /**
   * {@link RegistryClient.fetchBlob} only: called when this call starts writing the blob into the store, with the
   * live write a reader may follow (`followBlobWrite`); see `BlobPutOptions.onWriting`.
   */
  onWriting?: (write: LiveBlobWrite) => void;
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
  readonly #limits: SizeLimits;
  readonly #retry: RetryPolicy;
  readonly #transport: RegistryTransport;
  readonly #auth: RegistryAuth;
  readonly #blobProofs: BlobProofs;

  /**
   * @param options - registries, credentials, limits, timeouts, retries, proxy, user agent
   * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` for nonsensical limits or retry settings
   */
  constructor(options: RegistryClientOptions = {}) {
    this.#registries = options.registries ?? {};
    const locations = Object.fromEntries(
      Object.entries(this.#registries).map(([name, config]) => [name, { url: config.url }]),
    );
    this.#referenceOptions = {
      locations,
      ...(options.defaultLocation !== undefined ? { defaultLocation: options.defaultLocation } : {}),
    };
    this.#limits = { ...DEFAULT_SIZE_LIMITS, ...options.limits };
    const timeouts: RegistryTimeouts = { ...DEFAULT_REGISTRY_TIMEOUTS, ...options.timeouts };
    this.#retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.#blobProofs = options.blobProofs ?? new BlobProofs();
    for (const [name, value] of Object.entries({ ...this.#limits, ...timeouts })) {
      if (!Number.isFinite(value) || value <= 0)
        throw new ConfigError(
          'SHIFTER_CONFIG_INVALID',
          `registry client option ${name} must be a positive number, got ${value}`,
        );
    }
    if (!Number.isInteger(this.#retry.attempts) || this.#retry.attempts < 1) {
      throw new ConfigError(
        'SHIFTER_CONFIG_INVALID',
        `registry client retry.attempts must be an integer ≥ 1, got ${this.#retry.attempts}`,
      );
    }
    this.#transport = new RegistryTransport({
      dispatcher: options.dispatcher,
      timeouts,
      retry: this.#retry,
      proxy: options.proxy,
      userAgent: options.userAgent ?? DEFAULT_USER_AGENT,
      sleep: options.sleep,
      now: options.now,
    });
    this.#auth = new RegistryAuth({
      transport: this.#transport,
      credentials: options.credentials,
      maxTokenBytes: this.#limits.maxTokenBytes,
      now: options.now,
    });
  }

  /** Number of tokens this client obtained from token servers (for tests and metrics). */
  get tokensIssued(): number {
    return this.#auth.tokensIssued;
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
    // Anonymous: the probe carries no registry auth.
    const response = await this.#transport.send({
      endpoint,
      scope: undefined,
      url: `${endpoint.baseUrl}/v2/`,
      kind: 'probe',
      what: `API probe of ${endpoint.baseUrl}`,
      signal: options.signal,
      acceptStatuses: new Set([401]),
    });
    const challenges = parseWwwAuthenticate(response.headers['www-authenticate']);
    await response.body.dump();
    for (const challenge of challenges)
      if (challenge.scheme === 'bearer') this.#auth.rememberChallenge(endpoint.origin, challenge);
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
  ): Promise<{
    reference: ImageReference;
    manifestDigest: Digest;
    id: string;
    indexDigest?: Digest;
    usedCredentials: boolean;
  }> {
    const { ref, endpoint, scope, top } = await this.#topManifest(reference, options.signal);
    let manifestDigest = top.digest;
    let indexDigest: Digest | undefined;
    if (isImageIndex(top.manifest)) {
      indexDigest = top.digest;
      manifestDigest = parseDigest(selectPlatform(top.manifest, options.platform ?? DEFAULT_PLATFORM).digest);
    }
    const usedCredentials = this.#auth.usedCredentials(endpoint, scope);
    return {
      reference: ref,
      manifestDigest,
      id: digestHex(manifestDigest),
      ...(indexDigest ? { indexDigest } : {}),
      usedCredentials,
    };
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
  async resolveImage(
    reference: ImageReference | string,
    options: ResolveImageOptions = {},
  ): Promise<ResolvedRegistryImage> {
    const { ref, endpoint, scope, top } = await this.#topManifest(reference, options.signal);
    let manifestDigest = top.digest;
    let manifest: Manifest = top.manifest;
    let indexDigest: Digest | undefined;
    if (isImageIndex(manifest)) {
      const entry = selectPlatform(manifest, options.platform ?? DEFAULT_PLATFORM);
      indexDigest = top.digest;
      const chosen = await this.#getManifest(
        endpoint,
        scope,
        ref,
        entry.digest,
        parseDigest(entry.digest),
        options.signal,
      );
      if (chosen.size !== entry.size) {
        throw new IntegrityError(
          'SHIFTER_DIGEST_MISMATCH',
          `platform manifest ${entry.digest} of ${ref.familiar} is ${chosen.size} bytes, the index says ${entry.size}`,
        );
      }
      if (isImageIndex(chosen.manifest)) {
        throw new ManifestError(
          'SHIFTER_MANIFEST_UNSUPPORTED',
          `index entry ${entry.digest} of ${ref.familiar} is itself an index; nested indexes are not supported`,
        );
      }
      manifestDigest = chosen.digest;
      manifest = chosen.manifest;
    }
    const imageManifest = manifest as ImageManifest;
    checkImageManifest(imageManifest, this.#limits.maxLayerBytes);
    const configDigest = parseDigest(imageManifest.config.digest);
    if (imageManifest.config.size > this.#limits.maxConfigBytes) {
      throw new IntegrityError(
        'SHIFTER_SIZE_LIMIT',
        `image config of ${ref.familiar} is ${imageManifest.config.size} bytes, over the limit of ${this.#limits.maxConfigBytes}`,
      );
    }
    const configBytes = await readAllLimited(
      await this.openBlob(ref, imageManifest.config, { ...(options.signal ? { signal: options.signal } : {}) }),
      this.#limits.maxConfigBytes,
      `image config of ${ref.familiar}`,
    );
    if (
      configBytes.length !== imageManifest.config.size ||
      computeDigest(configBytes, digestAlgorithm(configDigest)) !== configDigest
    ) {
      throw new IntegrityError(
        'SHIFTER_DIGEST_MISMATCH',
        `image config of ${ref.familiar} does not match ${configDigest} (${imageManifest.config.size} bytes)`,
      );
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
      usedCredentials: this.#auth.usedCredentials(endpoint, scope),
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
  async fetchBlob(
    reference: ImageReference,
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    store: BlobStore,
    options: FetchBlobOptions = {},
  ): Promise<FetchBlobResult> {
    const digest = parseDigest(descriptor.digest);
    if (descriptor.size > this.#limits.maxLayerBytes) {
      throw new IntegrityError(
        'SHIFTER_SIZE_LIMIT',
        `blob ${digest} is ${descriptor.size} bytes, over the limit of ${this.#limits.maxLayerBytes}`,
      );
    }
    const endpoint = this.endpointFor(reference);
    const proofScope = {
      origin: endpoint.origin,
      repository: reference.repository,
      login: await this.#auth.lookupCredentials(endpoint),
    };
    if (!(await store.has(digest))) {
      const result = await store.put(digest, descriptor.size, () => this.openBlob(reference, descriptor, options), {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onWriting ? { onWriting: options.onWriting } : {}),
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
  async readBlobRange(
    reference: ImageReference,
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    start: number,
    end: number,
    options: { signal?: AbortSignal | undefined } = {},
  ): Promise<BlobRangeAnswer> {
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
    return {
      status: response.statusCode,
      contentRange: headerValue(response.headers['content-range']),
      body: response.body,
    };
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
  async openBlob(
    reference: ImageReference,
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    options: FetchBlobOptions = {},
  ): Promise<Readable> {
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
              throw new RegistryError(
                'SHIFTER_REGISTRY_PROTOCOL',
                `${what}: resumed at byte ${received} but the registry sent range ${headerValue(response.headers['content-range']) ?? '(none)'}`,
              );
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
          if (resumes >= client.#retry.maxResumes || received >= descriptor.size)
            throw registryNetworkError(error, `${what} (after ${resumes} resumes)`);
          resumes += 1;
          await client.#transport.sleep(backoffDelay(client.#retry, resumes));
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
    await this.#transport.close();
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
      throw new IntegrityError(
        'SHIFTER_SIZE_LIMIT',
        `${what} is ${declared} bytes, over the limit of ${this.#limits.maxManifestBytes}`,
      );
    }
    const bytes = await readAllLimited(response.body, this.#limits.maxManifestBytes, what);
    // The digest is the hash of the bytes exactly as received; never re-serialise before hashing.
    const digest = computeDigest(bytes, expected ? digestAlgorithm(expected) : 'sha256');
    if (expected !== undefined && digest !== expected) {
      throw new IntegrityError(
        'SHIFTER_DIGEST_MISMATCH',
        `${what}: received content has digest ${digest}, expected ${expected}`,
        { details: { expected, actual: digest } },
      );
    }
    const manifest = parseManifest(bytes, headerValue(response.headers['content-type']));
    return { manifest, digest, size: bytes.length };
  }

  /** Send a request with this client's registry auth (see {@link RegistryTransport.send}). */
  #send(spec: Omit<RequestSpec, 'auth'>): Promise<ResponseData> {
    return this.#transport.send({ ...spec, auth: this.#auth });
  }
}
