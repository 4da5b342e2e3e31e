/**
 * The one pull pipeline: from a resolved image to `<id>.squashfs` + `<id>.meta`. `pullImage` and the gateway's
 * puller (`createRegistryPuller`) both run it.
 *
 * @packageDocumentation
 */
import type { Readable } from 'node:stream';
import { followBlobWrite, type BlobStore, type LiveBlobWrite } from '../blob-store/index.js';
import {
  convertImage,
  type ConversionConfig,
  type ConvertImageResult,
  type ConvertProgress,
  type LayerSource,
  type MetaAccess,
} from '../convert/index.js';
import type { RegistryClient, ResolvedRegistryImage } from '../registry/index.js';

/** Progress of `pullImage` and of the pull pipeline. */
export type PullImageProgress =
  | { phase: 'resolve'; reference: string }
  | { phase: 'resolved'; id: string; manifestDigest: string; layers: number; totalBytes: number }
  | { phase: 'download'; digest: string; index: number; receivedBytes: number; totalBytes: number; resumes: number }
  | { phase: 'downloaded'; digest: string; index: number; cached: boolean }
  | { phase: 'convert'; event: ConvertProgress }
  | { phase: 'done'; id: string };

/** Options of {@link runPullPipeline}. */
export interface PullPipelineOptions {
  /** Client that resolved `image` (its login and connections are used for the blobs). */
  client: RegistryClient;
  /** Blob cache shared by all pulls. */
  store: BlobStore;
  /** The resolved image (platform manifest, config, layers). */
  image: ResolvedRegistryImage;
  /** Directory receiving `<id>.squashfs` and `<id>.meta`. */
  outDir: string;
  /** Scratch directory of the converter. */
  expandDir: string;
  /** Layers downloaded at the same time (1..64). */
  concurrency: number;
  /** squashfs build settings. */
  conversion?: Partial<ConversionConfig> | undefined;
  /** Largest total unpacked image. */
  maxUnpackedBytes?: number | undefined;
  /** Most tar entries in one image. */
  maxEntries?: number | undefined;
  /** Called with the flattened tree before the squashfs is built (the site examiner); throw to refuse. */
  examine?: ((rootDir: string) => Promise<void>) | undefined;
  /**
   * The ACL of the `.meta`, asked for once, when the `.meta` is written (after the squashfs is built), so that a
   * caller can merge in state that changed during the pull.
   */
  access?: (() => MetaAccess | Promise<MetaAccess>) | undefined;
  /**
   * Let the converter read a layer while it downloads ({@link followBlobWrite}); default true. When false, the
   * converter opens a layer once its download finished and was verified.
   */
  followDownloads?: boolean | undefined;
  /** Called as the pull advances; must not throw. */
  onProgress?: ((event: PullImageProgress) => void) | undefined;
  /** Cancels downloads and conversion. */
  signal?: AbortSignal | undefined;
}

/** Result of {@link runPullPipeline}. */
export interface PullPipelineResult {
  /** What the converter built. */
  converted: ConvertImageResult;
  /** Layers downloaded by this pull, layers found in the cache (proved), and the bytes downloaded. */
  layers: { downloaded: number; cached: number; bytes: number };
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

/** A promise with its resolver. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Download the layers of a resolved image into the blob cache and convert them into `<outDir>/<id>.squashfs` and
 * `<outDir>/<id>.meta`.
 *
 * - Downloads run at most `concurrency` at once, in layer order; one download per digest even across concurrent
 *   pulls (the blob store's contract); a cached blob is used only after the registry proved it serves it.
 * - The converter starts at once and reads layer i WHILE it downloads ({@link followBlobWrite}): the stream it reads
 *   ends only after the download's digest and size verified, and fails when they do not, so the converter (which
 *   publishes its output only after every layer stream ended) never publishes anything derived from unverified
 *   bytes. A layer another pull is downloading, or a cached one, is opened once this pull's `fetchBlob` resolved.
 * - One controller cancels downloads and conversion together: a failed download aborts the conversion (the download
 *   error is reported), a failed conversion stops the downloads; `signal` cancels both.
 * - The `.meta` is written once, by the converter, with the ACL `access` answers at that moment.
 *
 * @param options - client, store, image, directories, limits, hooks
 * @returns the converter's result and download counts
 * @throws the errors of `RegistryClient.fetchBlob` (the first failing download) and of `convertImage`
 */
export async function runPullPipeline(options: PullPipelineOptions): Promise<PullPipelineResult> {
  const { client, store, image } = options;
  const progress = (event: PullImageProgress): void => {
    try {
      options.onProgress?.(event);
    } catch {
      // A progress callback must not break a pull.
    }
  };
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let downloaded = 0;
    let cached = 0;
    let bytes = 0;
    let firstError: unknown;
    const follow = options.followDownloads !== false;
    // Per layer: resolves with this pull's live write of the blob when it starts one (never when the blob was
    // cached or another pull downloads it).
    const writing = image.layers.map(() => deferred<LiveBlobWrite>());
    const downloads = boundedParallel(
      image.layers.map((layer, index) => async () => {
        const result = await client.fetchBlob(image.reference, layer, store, {
          signal: controller.signal,
          ...(follow ? { onWriting: (write: LiveBlobWrite) => writing[index]!.resolve(write) } : {}),
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
      options.concurrency,
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
      open: async (): Promise<Readable> => {
        const done = downloads[index]!;
        // Whichever comes first: this pull starts writing the blob (follow it), or the download settled (cached,
        // stored by another pull, or already complete: open the verified blob).
        const live = await Promise.race([writing[index]!.promise, done.then(() => undefined)]);
        if (live === undefined) return store.open(layer.digest);
        return followBlobWrite(live, {
          verified: done,
          reopen: () => store.open(layer.digest),
          signal: controller.signal,
        });
      },
    }));
    let converted: ConvertImageResult;
    try {
      converted = await convertImage(sources, image.config, options.outDir, {
        id: image.id,
        expandDir: options.expandDir,
        ...(options.conversion ? { conversion: options.conversion } : {}),
        ...(options.maxUnpackedBytes !== undefined ? { maxUnpackedBytes: options.maxUnpackedBytes } : {}),
        ...(options.maxEntries !== undefined ? { maxEntries: options.maxEntries } : {}),
        ...(options.examine ? { examine: options.examine } : {}),
        ...(options.access ? { access: options.access } : {}),
        onProgress: (event) => progress({ phase: 'convert', event }),
        signal: controller.signal,
      });
      await Promise.all(downloads);
    } catch (error) {
      // A download that failed before the conversion did is the cause (the converter only saw its consequence: an
      // aborted or failed layer). Downloads that fail from here on fail because of the abort below.
      const cause = firstError;
      controller.abort(error);
      await Promise.allSettled(downloads);
      throw cause ?? error;
    }
    return { converted, layers: { downloaded, cached, bytes } };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}
