/**
 * The default {@link ImagePuller}: the registry client resolves and downloads into the shared blob cache, then
 * `convertImage` flattens and builds the squashfs.
 *
 * @packageDocumentation
 */
import { FsBlobStore, collectBlobCache } from '../blob-store/index.js';
import type { ShifterConfig } from '../config/index.js';
import { convertImage, type LayerSource } from '../convert/index.js';
import { parsePlatform } from '../manifest/select-platform.js';
import { BlobProofs, RegistryClient } from '../registry/index.js';
import type { ImagePuller, PullTarget } from './image-puller.js';

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
        await Promise.all(
          resolved.layers.map((layer) =>
            client.fetchBlob(target.reference, layer, blobs, target.signal ? { signal: target.signal } : {}),
          ),
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
        // Downloads run in parallel (the blob store makes concurrent fetches of one digest a single download).
        await Promise.all(
          resolved.layers.map((layer, index) =>
            client.fetchBlob(target.reference, layer, blobs, {
              ...(target.signal ? { signal: target.signal } : {}),
              onProgress: (progress) =>
                onProgress({
                  phase: 'download',
                  layer: layer.digest,
                  index,
                  count,
                  bytesDone: progress.receivedBytes,
                  bytesTotal: progress.totalBytes,
                }),
            }),
          ),
        );
        const layers: LayerSource[] = resolved.layers.map((layer) => ({
          digest: layer.digest,
          mediaType: layer.mediaType,
          size: layer.size,
          open: () => blobs.open(layer.digest),
        }));
        const result = await convertImage(layers, resolved.config, target.outDir, {
          id: resolved.id,
          expandDir: target.scratchDir,
          conversion: config.conversion,
          maxUnpackedBytes: config.limits.maxUnpackedBytes,
          maxEntries: config.limits.maxEntries,
          ...(target.examine ? { examine: target.examine } : {}),
          ...(target.signal ? { signal: target.signal } : {}),
          onProgress: (event) => {
            if (event.phase === 'layer')
              onProgress({
                phase: 'convert',
                step: 'Extracting layer',
                layer: event.digest,
                index: event.index,
                count: event.count,
              });
            else if (event.phase === 'squashfs')
              onProgress({ phase: 'convert', step: `Building squashfs (${event.tool})` });
          },
        });
        // Keep the cache under storage.cacheMaxBytes; this pull's blobs are the most recently used.
        await collectBlobCache(config.storage.cacheDir, {
          maxBytes: config.storage.cacheMaxBytes,
          keep: resolved.layers.map((layer) => layer.digest),
        }).catch(() => undefined);
        return { squashfsPath: result.squashfsPath, metadata: result.metadata };
      } finally {
        await client.close();
      }
    },
  };
}
