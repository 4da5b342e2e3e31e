import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LayerSource } from './layer-source.js';
import { LayerError } from '../errors/index.js';
import { openLayerTar } from './decompress.js';
import {
  type DroppedEntry,
  type LayerSummary,
  RootTree,
  type RootTreeOptions,
  createUnpackBudget,
} from './root-tree.js';

/** Options of {@link applyLayer}. */
export interface ApplyLayerOptions extends RootTreeOptions {
  /** Layer digest (or any name) for error details; default `layer`. */
  layer?: string;
  /** Layer media type; only checked to be a layer type. Compression is detected from the bytes. */
  mediaType?: string;
  /** The zstd executable (default `zstd` on PATH). */
  zstdPath?: string;
}

/**
 * Apply one layer (gzip, zstd or plain tar, detected from its bytes) onto `rootDir` and set directory metadata.
 * For several layers use {@link flattenLayers}: it defers directory modes and mtimes to the very end.
 *
 * Policy (docs/security-layers.md): device nodes dropped unless `keepDevices`, xattrs dropped, ownership ignored
 * (the squashfs is built all-root), setuid/setgid and sticky bits kept, FIFOs kept, mtimes kept.
 *
 * @param rootDir - existing directory to unpack into (normally empty, private to this conversion)
 * @param tarStream - the layer blob; consumed fully; destroyed on failure
 * @param options - limits and policy
 * @returns counts and dropped entries
 * @throws {@link LayerError} `SHIFTER_LAYER_UNSAFE_PATH`, `SHIFTER_LAYER_UNSAFE_LINK`, `SHIFTER_LAYER_INVALID_WHITEOUT`,
 *   `SHIFTER_LAYER_CORRUPT`, `SHIFTER_LAYER_UNSUPPORTED`, `SHIFTER_LAYER_LIMIT`, all with `details.layer` and `details.entry`
 * @throws {@link ConversionError} `SHIFTER_TOOL_NOT_FOUND` for a zstd layer without the `zstd` tool
 */
export async function applyLayer(
  rootDir: string,
  tarStream: Readable,
  options: ApplyLayerOptions = {},
): Promise<LayerSummary> {
  const tree = new RootTree(rootDir, options);
  const summary = await applyLayerTo(tree, tarStream, options.layer ?? 'layer', options);
  tree.finish();
  return summary;
}

async function applyLayerTo(
  tree: RootTree,
  blob: Readable,
  layer: string,
  options: ApplyLayerOptions,
): Promise<LayerSummary> {
  const opened = await openLayerTar(blob, { layer, mediaType: options.mediaType ?? '', zstdPath: options.zstdPath });
  try {
    const summary = await tree.applyTar(opened.tar, layer);
    await opened.done;
    return summary;
  } catch (error) {
    if ((error as { code?: string }).code === 'SHIFTER_LAYER_CORRUPT') {
      // A broken tar is often a broken compressed stream: stop reading (the decompressor then ends by itself, with
      // an error or EPIPE) and prefer its explanation ("unexpected end of file") to the tar parser's.
      opened.tar.destroy();
      await opened.done;
    } else {
      opened.destroy();
      await opened.done.catch(() => undefined);
    }
    throw error;
  }
}

/** Options of {@link flattenLayers}. */
export interface FlattenLayersOptions extends RootTreeOptions {
  /** The zstd executable (default `zstd` on PATH). */
  zstdPath?: string;
  /** Called after each layer. */
  onLayer?: (summary: LayerSummary, index: number, count: number) => void;
  /**
   * A private directory OUTSIDE `rootDir` where the next layer is decompressed while the current one is applied
   * (gunzip is single-threaded, so two layers decompress on two cores). Costs disk space for one uncompressed
   * layer. Without it, layers are decompressed one after the other.
   */
  spoolDir?: string;
}

/** A layer being decompressed ahead of its turn into a spool file. */
interface Prefetch {
  /** Resolves with the spool file's path once the whole layer is decompressed and verified. */
  done: Promise<string>;
  cancel(): void;
}

function prefetchLayer(source: LayerSource, index: number, spoolDir: string, options: FlattenLayersOptions): Prefetch {
  const path = join(spoolDir, `layer-${index}.tar`);
  let cancelled = false;
  // pipeline() does not always settle when its source is destroyed from outside; aborting it through its own signal
  // does (and destroys both ends).
  const abort = new AbortController();
  let blob: Readable | undefined;
  let opened: Awaited<ReturnType<typeof openLayerTar>> | undefined;
  const done = (async () => {
    blob = await source.open();
    try {
      if (cancelled) throw new Error('cancelled');
      opened = await openLayerTar(blob, {
        layer: source.digest,
        mediaType: source.mediaType,
        zstdPath: options.zstdPath,
      });
      if (cancelled) throw new Error('cancelled');
      try {
        await pipeline(opened.tar, createWriteStream(path, { flags: 'wx', mode: 0o600 }), { signal: abort.signal });
      } catch (error) {
        opened.destroy();
        if (cancelled) throw error;
        // A decompressor failure explains the broken pipe better than the pipe does.
        await opened.done;
        throw new LayerError('SHIFTER_LAYER_CORRUPT', `cannot decompress layer: ${(error as Error).message}`, {
          cause: error,
          details: { layer: source.digest },
        });
      }
      await opened.done;
      return path;
    } catch (error) {
      rmSync(path, { force: true });
      throw error;
    } finally {
      blob.destroy();
    }
  })();
  done.catch(() => undefined);
  return {
    done,
    cancel: () => {
      cancelled = true;
      abort.abort();
      opened?.destroy();
      blob?.destroy();
    },
  };
}

/** What {@link flattenLayers} did. */
export interface FlattenSummary {
  /** One summary per layer, lowest first. */
  layers: LayerSummary[];
  /** Entries across all layers. */
  entries: number;
  /** Regular-file bytes across all layers. */
  unpackedBytes: number;
  /** Entries dropped by policy across all layers. */
  dropped: DroppedEntry[];
}

/**
 * Apply layers in order (lowest first) into `rootDir`, with one shared entry/size budget, then set every
 * directory's final mode and mtime. Streams everything: memory does not grow with layer size.
 *
 * Each layer's stream is opened with `LayerSource.open()` just before it is applied and destroyed after.
 *
 * @param rootDir - existing empty directory private to this conversion
 * @param layers - layer sources, lowest first
 * @param options - limits, policy, progress
 * @throws the errors of {@link applyLayer}; `rootDir` is left half-filled (the caller removes its scratch)
 */
export async function flattenLayers(
  rootDir: string,
  layers: LayerSource[],
  options: FlattenLayersOptions = {},
): Promise<FlattenSummary> {
  const budget = options.budget ?? createUnpackBudget(options);
  const tree = new RootTree(rootDir, { ...options, budget });
  const summaries: LayerSummary[] = [];
  let next: Prefetch | undefined;
  try {
    for (const [index, source] of layers.entries()) {
      if (options.signal?.aborted) break;
      const spooled = next ? await next.done : undefined;
      next =
        options.spoolDir && index + 1 < layers.length
          ? prefetchLayer(layers[index + 1] as LayerSource, index + 1, options.spoolDir, options)
          : undefined;
      const blob = spooled ? createReadStream(spooled, { highWaterMark: 1024 * 1024 }) : await source.open();
      try {
        // A spooled layer is already a plain tar: never sniff it (a tar whose first name starts with gzip's magic
        // bytes would be misread).
        const summary = spooled
          ? await tree.applyTar(blob, source.digest)
          : await applyLayerTo(tree, blob, source.digest, { ...options, mediaType: source.mediaType });
        summaries.push(summary);
        options.onLayer?.(summary, index, layers.length);
      } finally {
        blob.destroy();
        if (spooled) rmSync(spooled, { force: true });
      }
    }
  } finally {
    // Only set here when we stop early (failure or abort): stop the read-ahead and drop its spool file.
    if (next) {
      next.cancel();
      const leftover = await next.done.catch(() => undefined);
      if (leftover) rmSync(leftover, { force: true });
    }
  }
  options.signal?.throwIfAborted();
  tree.finish();
  return {
    layers: summaries,
    entries: budget.entries,
    unpackedBytes: budget.unpackedBytes,
    dropped: summaries.flatMap((s) => s.dropped),
  };
}
