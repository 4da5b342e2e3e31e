import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { FsBlobStore, type BlobStore } from '../blob-store/index.js';
import {
  convertImage,
  type ConversionConfig,
  type ConvertImageResult,
  type ConvertProgress,
  type LayerSource,
} from '../convert/index.js';
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

/** Progress of {@link pullImage}. */
export type PullImageProgress =
  | { phase: 'resolve'; reference: string }
  | { phase: 'resolved'; id: string; manifestDigest: string; layers: number; totalBytes: number }
  | { phase: 'download'; digest: string; index: number; receivedBytes: number; totalBytes: number; resumes: number }
  | { phase: 'downloaded'; digest: string; index: number; cached: boolean }
  | { phase: 'convert'; event: ConvertProgress }
  | { phase: 'done'; id: string };

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
  /** Parallel layer downloads; {@link DEFAULT_PULL_CONCURRENCY} by default. */
  concurrency?: number;
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

/** Run `tasks` with at most `limit` running at once; each promise settles with its task. */
function boundedParallel<T>(tasks: Array<() => Promise<T>>, limit: number): Array<Promise<T>> {
  let running = 0;
  const queue: Array<() => void> = [];
  const release = (): void => {
    running -= 1;
    queue.shift()?.();
  };
  return tasks.map(
    (task) =>
      new Promise<T>((resolve, reject) => {
        const start = (): void => {
          running += 1;
          task().then(resolve, reject).finally(release);
        };
        if (running < limit) start();
        else queue.push(start);
      }),
  );
}

/**
 * Pull an image from its registry and build `<outDir>/<id>.squashfs` and `<outDir>/<id>.meta`: the entry point of
 * site scripts (and of the gateway's workers).
 *
 * Steps: parse the reference → resolve the platform manifest and config → download layers into the blob cache
 * (in parallel, bounded, one download per digest even across concurrent pulls and processes) → flatten and build
 * the squashfs (the converter starts on layer 1 while later layers still download) → write `.meta`.
 *
 * Contracts: idempotent (a cached layer is not downloaded again; an existing output is rebuilt atomically);
 * everything downloaded is digest- and size-verified before use; the outputs appear atomically or not at all.
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
  // One controller cancels downloads and conversion together: a failed download must stop the converter waiting
  // for it, and a failed conversion must not leave downloads running.
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(resolved.signal?.reason);
  resolved.signal?.addEventListener('abort', onAbort, { once: true });
  try {
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
    const image = await client.resolveImage(reference, { platform: resolved.platform, signal: controller.signal });
    const totalBytes = image.layers.reduce((sum, layer) => sum + layer.size, 0);
    progress({
      phase: 'resolved',
      id: image.id,
      manifestDigest: image.manifestDigest,
      layers: image.layers.length,
      totalBytes,
    });

    let downloaded = 0;
    let cached = 0;
    let bytes = 0;
    let firstError: unknown;
    const downloads = boundedParallel(
      image.layers.map((layer, index) => async () => {
        const result = await client.fetchBlob(image.reference, layer, store, {
          signal: controller.signal,
          onProgress: (p) =>
            progress({
              phase: 'download',
              digest: layer.digest,
              index,
              receivedBytes: p.receivedBytes,
              totalBytes: p.totalBytes,
              resumes: p.resumes,
            }),
        });
        if (result.cached) cached += 1;
        else {
          downloaded += 1;
          bytes += layer.size;
        }
        progress({ phase: 'downloaded', digest: layer.digest, index, cached: result.cached });
        return result;
      }),
      resolved.concurrency,
    );
    for (const download of downloads) {
      download.catch((error: unknown) => {
        firstError ??= error;
        controller.abort(error);
      });
    }
    const sources: LayerSource[] = image.layers.map((layer, index) => ({
      digest: layer.digest,
      mediaType: layer.mediaType,
      size: layer.size,
      // Waiting here lets the converter apply layer i while layers > i still download.
      open: async (): Promise<Readable> => {
        await downloads[index];
        return store.open(layer.digest);
      },
    }));
    let converted: ConvertImageResult;
    try {
      converted = await convertImage(sources, image.config, resolved.outDir, {
        id: image.id,
        expandDir: resolved.expandDir,
        ...(resolved.conversion ? { conversion: resolved.conversion } : {}),
        maxUnpackedBytes: resolved.limits.maxUnpackedBytes,
        maxEntries: resolved.limits.maxEntries,
        ...(image.usedCredentials && resolved.userACL ? { userACL: resolved.userACL } : {}),
        ...(image.usedCredentials && resolved.groupACL ? { groupACL: resolved.groupACL } : {}),
        onProgress: (event) => progress({ phase: 'convert', event }),
        signal: controller.signal,
      });
      await Promise.all(downloads);
    } catch (error) {
      controller.abort(error);
      await Promise.allSettled(downloads);
      // The download error is the cause; the converter only saw its consequence (an aborted open).
      throw firstError ?? error;
    }
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
      layers: { downloaded, cached, bytes },
      conversion: converted.summary,
    };
  } finally {
    resolved.signal?.removeEventListener('abort', onAbort);
    if (!resolved.registryClient) await client.close();
  }
}
