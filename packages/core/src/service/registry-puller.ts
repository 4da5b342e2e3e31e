/**
 * The default {@link ImagePuller}: the registry client resolves; the pull pipeline (the one `pullImage` runs)
 * downloads into the shared blob cache, at most `limits.concurrentDownloads` layers at once, while the converter
 * follows the downloads and builds the squashfs and the `.meta`.
 *
 * @packageDocumentation
 */
import { FsBlobStore, collectBlobCache } from '../blob-store/index.js';
import type { ShifterConfig } from '../config/index.js';
import { parsePlatform } from '../manifest/select-platform.js';
import { BlobProofs, RegistryClient } from '../registry/index.js';
import type { ImagePuller, PullTarget } from './image-puller.js';
import { runPullPipeline } from './pull-pipeline.js';

/**
 * Create the registry-backed puller for a config. Each pull gets its own registry client (its login is the
 * caller's, and tokens must not be shared between callers); blobs are shared through `storage.cacheDir`.
 * @param config - validated config (registries, limits, storage, conversion)
 */
export function createRegistryPuller(config: ShifterConfig): ImagePuller {
  const blobs = new FsBlobStore(config.storage.cacheDir);
  // Proofs that registries serve cached blobs, kept per registry, repository and login (never shared across logins).
  const blobProofs = new BlobProofs();
  const clientFor = (target: PullTarget): RegistryClient =>
    new RegistryClient({
      registries: config.registries,
      ...(config.defaultRegistry ? { defaultLocation: config.defaultRegistry } : {}),
      ...(target.login
        ? { credentials: () => ({ username: target.login!.username, password: target.login!.password }) }
        : {}),
      limits: config.limits,
      retry: { attempts: config.limits.retries + 1 },
      blobProofs,
    });
  return {
    async resolve(target) {
      const client = clientFor(target);
      try {
        // One manifest request (two for an index): no config blob, no layers.
        const resolved = await client.resolveDigest(target.reference, {
          platform: parsePlatform(target.platform),
          ...(target.signal ? { signal: target.signal } : {}),
        });
        return { digest: resolved.manifestDigest, private: resolved.usedCredentials };
      } finally {
        await client.close();
      }
    },
    async prove(target) {
      const client = clientFor(target);
      try {
        // The manifest by digest and the config are fetched from this registry and verified; each layer is proved
        // (or downloaded and verified) by fetchBlob.
        const resolved = await client.resolveImage(
          { ...target.reference, digest: target.digest },
          { platform: parsePlatform(target.platform), ...(target.signal ? { signal: target.signal } : {}) },
        );
        // Bounded like a pull's downloads: a layer the cache lacks is downloaded here.
        const queue = [...resolved.layers];
        const worker = async (): Promise<void> => {
          for (let layer = queue.shift(); layer; layer = queue.shift()) {
            try {
              await client.fetchBlob(target.reference, layer, blobs, target.signal ? { signal: target.signal } : {});
            } catch (error) {
              queue.length = 0; // one failure decides: start no further downloads
              throw error;
            }
          }
        };
        await Promise.all(
          Array.from({ length: Math.min(config.limits.concurrentDownloads, queue.length) }, () => worker()),
        );
      } finally {
        await client.close();
      }
    },
    async fetch(target, onProgress) {
      const client = clientFor(target);
      try {
        // Pinned to the digest `resolve` answered: the id the service already recorded is the image converted here,
        // even when the tag moved in between.
        const resolved = await client.resolveImage(
          { ...target.reference, digest: target.digest },
          { platform: parsePlatform(target.platform), ...(target.signal ? { signal: target.signal } : {}) },
        );
        const count = resolved.layers.length;
        // The one pull pipeline (as pullImage): bounded downloads, the converter following them, one .meta.
        const { converted } = await runPullPipeline({
          client,
          store: blobs,
          image: resolved,
          outDir: target.outDir,
          expandDir: target.scratchDir,
          concurrency: config.limits.concurrentDownloads,
          conversion: config.conversion,
          maxUnpackedBytes: config.limits.maxUnpackedBytes,
          maxEntries: config.limits.maxEntries,
          examine: target.examine,
          access: target.access,
          signal: target.signal,
          onProgress: (event) => {
            if (event.phase === 'download')
              onProgress({
                phase: 'download',
                layer: event.digest,
                index: event.index,
                count,
                bytesDone: event.receivedBytes,
                bytesTotal: event.totalBytes,
              });
            else if (event.phase === 'convert' && event.event.phase === 'layer')
              onProgress({
                phase: 'convert',
                step: 'Extracting layer',
                layer: event.event.digest,
                index: event.event.index,
                count: event.event.count,
              });
            else if (event.phase === 'convert' && event.event.phase === 'squashfs')
              onProgress({ phase: 'convert', step: `Building squashfs (${event.event.tool})` });
          },
        });
        // Keep the cache under storage.cacheMaxBytes; this pull's blobs are the most recently used.
        await collectBlobCache(config.storage.cacheDir, {
          maxBytes: config.storage.cacheMaxBytes,
          keep: resolved.layers.map((layer) => layer.digest),
        }).catch(() => undefined);
        return { squashfsPath: converted.squashfsPath, metaPath: converted.metaPath, metadata: converted.metadata };
      } finally {
        await client.close();
      }
    },
  };
}
