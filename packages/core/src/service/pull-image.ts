import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { FsBlobStore, type BlobStore } from '../blob-store/index.js';
import type { ConversionConfig, ConvertImageResult } from '../convert/index.js';
import { DEFAULT_SIZE_LIMITS, type Digest, type SizeLimits } from '../digest/index.js';
import { ShifterError } from '../errors/index.js';
import { DEFAULT_PLATFORM, parsePlatform, type PlatformSelector } from '../manifest/index.js';
import type { ImageMetadata } from '../meta/index.js';
import type { ImageReference } from '../reference/index.js';
import {
  RegistryClient,
  type CredentialsLookup,
  type ProxyOptions,
  type RegistryEndpointConfig,
  type RegistryTimeouts,
  type RetryPolicy,
} from '../registry/index.js';
import { runPullPipeline, type PullImageProgress } from './pull-pipeline.js';

/** Layers downloaded at the same time by default: enough to fill a link, few enough not to thrash a registry. */
export const DEFAULT_PULL_CONCURRENCY = 3;

/** Caps applied by a pull: remote byte caps plus the converter's unpacked-size and entry caps. */
export interface PullLimits extends SizeLimits {
  /** Largest total unpacked image (`SHIFTER_LAYER_LIMIT`). */
  maxUnpackedBytes: number;
  /** Most tar entries in one image (`SHIFTER_LAYER_LIMIT`). */
  maxEntries: number;
}

/** Default {@link PullLimits}, equal to the configuration schema's defaults. */
export const DEFAULT_PULL_LIMITS: Readonly<PullLimits> = Object.freeze({
  ...DEFAULT_SIZE_LIMITS,
  maxUnpackedBytes: 64 * 1024 ** 3,
  maxEntries: 5_000_000,
});

export type { PullImageProgress } from './pull-pipeline.js';

/** Options of {@link pullImage}. */
export interface PullImageOptions {
  /** Blob cache directory (content-addressed, shared by all pulls). */
  cacheDir: string;
  /** Directory receiving `<id>.squashfs` and `<id>.meta`. */
  outDir: string;
  /** Scratch directory for unpacking; `<os tmpdir>/shifter-expand` by default (same file system as outDir is faster). */
  expandDir?: string;
  /** Target platform (`linux/arm64/v8` or a selector); linux/amd64 by default. */
  platform?: PlatformSelector | string;
  /** Registries by location name (url, insecure, caFile, authMethod). */
  registries?: Record<string, RegistryEndpointConfig>;
  /** Location used when the reference names no registry (upstream `DefaultImageLocation`). */
  defaultLocation?: string;
  /** Credentials lookup, called only when a registry asks. */
  credentials?: CredentialsLookup;
  /** squashfs build settings (compressor, level, tool, -mem…); schema defaults otherwise. */
  conversion?: Partial<ConversionConfig>;
  /** Byte and entry caps. */
  limits?: Partial<PullLimits>;
  /** Parallel layer downloads (1..64); {@link DEFAULT_PULL_CONCURRENCY} by default (config: `limits.concurrentDownloads`). */
  concurrency?: number;
  /**
   * Let the converter read a layer while it downloads (default true); the layer's stream still ends only after its
   * digest verified. False opens each layer only once its download finished.
   */
  followDownloads?: boolean;
  /** Network timeouts of the registry client. */
  timeouts?: Partial<RegistryTimeouts>;
  /** Retry policy of the registry client. */
  retry?: Partial<RetryPolicy>;
  /** Proxies (pass the config loader's values; nothing reads the environment here). */
  proxy?: ProxyOptions;
  /** Registry `User-Agent`. */
  userAgent?: string;
  /** Uids allowed to use the image when it is private (written to `.meta` as USERACL). */
  userACL?: number[];
  /** Gids allowed to use the image when it is private (written to `.meta` as GROUPACL). */
  groupACL?: number[];
  /** Called as the pull advances; must not throw. */
  onProgress?: (event: PullImageProgress) => void;
  /** Cancels the pull. */
  signal?: AbortSignal;
  /** Use this registry client instead of creating one (shared connections and token cache); not closed by the pull. */
  registryClient?: RegistryClient;
  /** Use this blob store instead of `new FsBlobStore(cacheDir)`. */
  blobStore?: BlobStore;
  /** undici dispatcher for a client created by the pull (tests). */
  dispatcher?: Dispatcher;
}

/** {@link PullImageOptions} with every default filled in. */
export interface ResolvedPullImageOptions extends Omit<
  PullImageOptions,
  'platform' | 'limits' | 'concurrency' | 'expandDir' | 'registries'
> {
  expandDir: string;
  platform: PlatformSelector;
  limits: PullLimits;
  concurrency: number;
  registries: Record<string, RegistryEndpointConfig>;
}

/** Result of {@link pullImage}. */
export interface PullImageResult {
  /** Image id: hex of the platform manifest digest; names the two files. */
  id: string;
  /** The parsed reference. */
  reference: ImageReference;
  /** Digest of the platform manifest. */
  manifestDigest: Digest;
  /** Digest of the index the tag pointed to, if it pointed to one. */
  indexDigest?: Digest;
  /** `<outDir>/<id>.squashfs`. */
  squashfsPath: string;
  /** `<outDir>/<id>.meta`. */
  metaPath: string;
  /** Env, entrypoint, cmd, workdir, labels, user from the image config. */
  metadata: ImageMetadata;
  /** Whether the registry required credentials (the image is private). */
  usedCredentials: boolean;
  /** Layers downloaded by this pull and layers found in the cache. */
  layers: { downloaded: number; cached: number; bytes: number };
  /** The converter's summary. */
  conversion: ConvertImageResult['summary'];
}

/**
 * Fill in the defaults of {@link PullImageOptions} and validate them.
 * @param options - caller options
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` for a missing cacheDir/outDir, a bad platform or concurrency
 */
export function resolvePullImageOptions(options: PullImageOptions): ResolvedPullImageOptions {
  for (const key of ['cacheDir', 'outDir'] as const) {
    if (typeof options[key] !== 'string' || options[key].length === 0) {
      throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `pullImage needs options.${key}`);
    }
  }
  const platform =
    typeof options.platform === 'string'
      ? parsePlatform(options.platform)
      : (options.platform ?? { ...DEFAULT_PLATFORM });
  const concurrency = options.concurrency ?? DEFAULT_PULL_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      `pullImage concurrency must be an integer from 1 to 64, got ${concurrency}`,
    );
  }
  return {
    ...options,
    expandDir: options.expandDir ?? join(tmpdir(), 'shifter-expand'),
    platform,
    limits: { ...DEFAULT_PULL_LIMITS, ...options.limits },
    concurrency,
    registries: options.registries ?? {},
  };
}

/**
 * Pull an image from its registry and build `<outDir>/<id>.squashfs` and `<outDir>/<id>.meta`: the entry point of
 * site scripts (and of the gateway's workers).
 *
 * Steps: parse the reference → resolve the platform manifest and config → run the pull pipeline (the one the
 * gateway's workers run): download layers into the blob cache (at most `concurrency` at once, one download per digest
 * even across concurrent pulls and processes) while the converter reads each layer as it downloads, flattens and
 * builds the squashfs → write `.meta`.
 *
 * Contracts: idempotent (a cached layer is not downloaded again; an existing output is rebuilt atomically);
 * everything downloaded is digest- and size-verified before anything derived from it is published (a layer that
 * fails verification aborts the conversion); the outputs appear atomically or not at all.
 *
 * @param reference - image reference (`ubuntu:22.04`, `127.0.0.1:5000/test/busybox:latest`, `site/app@sha256:…`)
 * @param options - cache and output directories, platform, registries, credentials, conversion, limits, progress
 * @returns id, digests, output paths, image metadata and whether credentials were needed
 * @throws {@link InvalidReferenceError} `SHIFTER_REF_INVALID`
 * @throws {@link RegistryError} `SHIFTER_REGISTRY_*` (see docs/registry.md)
 * @throws {@link ManifestError} `SHIFTER_MANIFEST_*`, `SHIFTER_PLATFORM_NOT_FOUND`
 * @throws {@link IntegrityError} `SHIFTER_DIGEST_MISMATCH`, `SHIFTER_SIZE_LIMIT`
 * @throws {@link LayerError} `SHIFTER_LAYER_*` and {@link ConversionError} `SHIFTER_CONVERSION_FAILED`, `SHIFTER_TOOL_NOT_FOUND`
 *
 * @example
 * ```ts
 * const result = await pullImage('127.0.0.1:5000/test/busybox:latest', { cacheDir: '/var/cache/shifter/blobs', outDir: '/images' });
 * console.log(result.id, result.squashfsPath);
 * ```
 */
export async function pullImage(
  reference: string | ImageReference,
  options: PullImageOptions,
): Promise<PullImageResult> {
  const resolved = resolvePullImageOptions(options);
  const progress = (event: PullImageProgress): void => {
    try {
      resolved.onProgress?.(event);
    } catch {
      // A progress callback must not break a pull.
    }
  };
  const client =
    resolved.registryClient ??
    new RegistryClient({
      registries: resolved.registries,
      ...(resolved.defaultLocation !== undefined ? { defaultLocation: resolved.defaultLocation } : {}),
      ...(resolved.credentials ? { credentials: resolved.credentials } : {}),
      ...(resolved.dispatcher ? { dispatcher: resolved.dispatcher } : {}),
      limits: resolved.limits,
      ...(resolved.timeouts ? { timeouts: resolved.timeouts } : {}),
      ...(resolved.retry ? { retry: resolved.retry } : {}),
      ...(resolved.proxy ? { proxy: resolved.proxy } : {}),
      ...(resolved.userAgent ? { userAgent: resolved.userAgent } : {}),
    });
  const store = resolved.blobStore ?? new FsBlobStore(resolved.cacheDir);
  try {
    resolved.signal?.throwIfAborted();
    progress({ phase: 'resolve', reference: typeof reference === 'string' ? reference : reference.canonical });
    await Promise.all([
      mkdir(resolved.outDir, { recursive: true }),
      mkdir(resolved.expandDir, { recursive: true, mode: 0o700 }),
    ]).catch((error: unknown) => {
      throw new ShifterError(
        'SHIFTER_IO_FAILED',
        `cannot create the output or scratch directory: ${(error as Error).message}`,
        { cause: error },
      );
    });
    const image = await client.resolveImage(reference, {
      platform: resolved.platform,
      ...(resolved.signal ? { signal: resolved.signal } : {}),
    });
    const totalBytes = image.layers.reduce((sum, layer) => sum + layer.size, 0);
    progress({
      phase: 'resolved',
      id: image.id,
      manifestDigest: image.manifestDigest,
      layers: image.layers.length,
      totalBytes,
    });
    const { converted, layers } = await runPullPipeline({
      client,
      store,
      image,
      outDir: resolved.outDir,
      expandDir: resolved.expandDir,
      concurrency: resolved.concurrency,
      conversion: resolved.conversion,
      maxUnpackedBytes: resolved.limits.maxUnpackedBytes,
      maxEntries: resolved.limits.maxEntries,
      access: () => ({
        ...(image.usedCredentials && resolved.userACL ? { userACL: resolved.userACL } : {}),
        ...(image.usedCredentials && resolved.groupACL ? { groupACL: resolved.groupACL } : {}),
      }),
      ...(resolved.followDownloads !== undefined ? { followDownloads: resolved.followDownloads } : {}),
      onProgress: progress,
      signal: resolved.signal,
    });
    progress({ phase: 'done', id: image.id });
    return {
      id: image.id,
      reference: image.reference,
      manifestDigest: image.manifestDigest,
      ...(image.indexDigest ? { indexDigest: image.indexDigest } : {}),
      squashfsPath: converted.squashfsPath,
      metaPath: converted.metaPath,
      metadata: converted.metadata,
      usedCredentials: image.usedCredentials,
      layers,
      conversion: converted.summary,
    };
  } finally {
    if (!resolved.registryClient) await client.close();
  }
}
