import type { Readable } from 'node:stream';
import type { LayerSource } from '../convert/convert-types.js';
import { openLayerTar } from './decompress.js';
import { type DroppedEntry, type LayerSummary, RootTree, type RootTreeOptions, createUnpackBudget } from './root-tree.js';

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
export async function applyLayer(rootDir: string, tarStream: Readable, options: ApplyLayerOptions = {}): Promise<LayerSummary> {
  const tree = new RootTree(rootDir, options);
  const summary = await applyLayerTo(tree, tarStream, options.layer ?? 'layer', options);
  tree.finish();
  return summary;
}

async function applyLayerTo(tree: RootTree, blob: Readable, layer: string, options: ApplyLayerOptions): Promise<LayerSummary> {
  const opened = await openLayerTar(blob, { layer, mediaType: options.mediaType ?? '', zstdPath: options.zstdPath });
  try {
    const summary = await tree.applyTar(opened.tar, layer);
    await opened.done;
    return summary;
  } catch (error) {
    opened.destroy();
    // A decompressor failure explains a truncated tar better than the tar parser's complaint.
    await opened.done.catch((doneError: unknown) => {
      throw doneError;
    });
    throw error;
  }
}

/** Options of {@link flattenLayers}. */
export interface FlattenLayersOptions extends RootTreeOptions {
  /** The zstd executable (default `zstd` on PATH). */
  zstdPath?: string;
  /** Called after each layer. */
  onLayer?: (summary: LayerSummary, index: number, count: number) => void;
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
export async function flattenLayers(rootDir: string, layers: LayerSource[], options: FlattenLayersOptions = {}): Promise<FlattenSummary> {
  const budget = options.budget ?? createUnpackBudget(options);
  const tree = new RootTree(rootDir, { ...options, budget });
  const summaries: LayerSummary[] = [];
  for (const [index, source] of layers.entries()) {
    if (options.signal?.aborted) break;
    const blob = await source.open();
    try {
      const summary = await applyLayerTo(tree, blob, source.digest, { ...options, mediaType: source.mediaType });
      summaries.push(summary);
      options.onLayer?.(summary, index, layers.length);
    } finally {
      blob.destroy();
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
