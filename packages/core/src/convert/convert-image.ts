import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ShifterError } from '../errors/index.js';
import { type BuildSquashfsResult, buildSquashfs, resolveConversionConfig } from '../image-builder/squashfs-builder.js';
import { type DroppedEntry, createUnpackBudget } from '../layer/root-tree.js';
import { flattenLayers } from '../layer/apply-layer.js';
import { mergeAndBuild } from './merge-build.js';
import { imageMetadataFromConfig } from '../meta/image-metadata.js';
import { writeMetaFile } from '../meta/meta-format.js';
import type { ConvertImageOptions, ConvertImageResult, LayerSource } from './convert-types.js';

const ID_PATTERN = /^[0-9a-f]{12,128}$/;

function toConversionError(error: unknown): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  const errno = error as NodeJS.ErrnoException;
  if (typeof errno?.syscall === 'string') {
    return new ShifterError('SHIFTER_IO_FAILED', `conversion I/O failed: ${errno.message}`, {
      cause: error,
      details: { errno: errno.code, path: errno.path },
    });
  }
  return new ShifterError('SHIFTER_INTERNAL', error instanceof Error ? error.message : String(error), { cause: error });
}

/**
 * Turn an image's layers and config into `<outDir>/<id>.squashfs` and `<outDir>/<id>.meta`.
 *
 * Steps: read the metadata from the config (fails fast on a malformed config); then, with tar2sqfs (the default)
 * and no `examine` hook, merge the layers in memory and stream one tar of the final tree into tar2sqfs, the top
 * layer while it is still being read (no tree on disk; see the in-memory layer merge); otherwise — mksquashfs, an
 * `examine` hook, or more names than `conversion.maxInMemoryNames` — flatten the layers into a private scratch
 * directory under `expandDir` (docs/security-layers.md), run `examine`, and build from the tree. The squashfs is
 * built under a temporary name in `outDir` and renamed, then the `.meta` is written the same way. The `.meta` is
 * written last, so a present `.meta` means a complete pair. The scratch directory is removed on success and on
 * failure; if the `.meta` cannot be written, a squashfs this call created is removed again.
 *
 * Idempotent: converting the same layers with the same options again gives byte-identical files.
 * Streams every layer's contents: memory grows with the number of names only (merged path), never with the
 * image's size, and `conversion.maxInMemoryNames` caps it.
 *
 * @param layers - the platform manifest's layers, lowest first; each is opened once (again when a streamed merge
 *   must be redone, or an image past maxInMemoryNames is unpacked on disk) and destroyed after use
 * @param imageConfig - the parsed image config JSON
 * @param outDir - existing directory that receives the two files
 * @param options - id, scratch directory, conversion settings, limits, ACLs, hooks
 * @returns paths, metadata and a summary
 * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` (bad id or ACL), `SHIFTER_MANIFEST_INVALID` (config),
 *   the `SHIFTER_LAYER_*` codes of the layer flattener, `SHIFTER_TOOL_NOT_FOUND` / `SHIFTER_CONVERSION_FAILED`
 *   (squashfs tool), `SHIFTER_CONFIG_INVALID` (compression level), `SHIFTER_IO_FAILED` (local files), whatever
 *   `examine` throws, and `SHIFTER_CONVERSION_FAILED` when aborted
 *
 * @example
 * ```ts
 * const result = await convertImage(layers, config, '/images', { id, expandDir: '/var/tmp/shifter/expand' });
 * console.log(result.squashfsPath, result.metadata.cmd);
 * ```
 */
export async function convertImage(
  layers: LayerSource[],
  imageConfig: unknown,
  outDir: string,
  options: ConvertImageOptions,
): Promise<ConvertImageResult> {
  const started = performance.now();
  if (!ID_PATTERN.test(options.id)) {
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      `image id ${JSON.stringify(options.id)} is not lower-case hex`,
      {
        details: { id: options.id },
      },
    );
  }
  const metadata = imageMetadataFromConfig(imageConfig);
  const conversion = resolveConversionConfig(options.conversion);
  const progress = (event: Parameters<NonNullable<ConvertImageOptions['onProgress']>>[0]) => {
    try {
      options.onProgress?.(event);
    } catch {
      // progress callbacks must not break a conversion
    }
  };
  const squashfsPath = join(outDir, `${options.id}.squashfs`);
  const metaPath = join(outDir, `${options.id}.meta`);
  let scratch: string | undefined;
  let createdSquashfs = false;
  try {
    options.signal?.throwIfAborted();
    mkdirSync(options.expandDir, { recursive: true });
    scratch = mkdtempSync(join(options.expandDir, `${options.id.slice(0, 16)}-`));
    const rootDir = join(scratch, 'rootfs');
    const spoolDir = join(scratch, 'spool');
    mkdirSync(rootDir, { mode: 0o700 });
    mkdirSync(spoolDir, { mode: 0o700 });

    const onLayer = (summary: { layer: string; entries: number; bytes: number }, index: number, count: number) =>
      progress({ phase: 'layer', index, count, digest: summary.layer, entries: summary.entries, bytes: summary.bytes });
    const flattenStarted = performance.now();
    let flattened: { layers: unknown[]; entries: number; unpackedBytes: number; dropped: DroppedEntry[] };
    let flattenMs: number;
    let built: BuildSquashfsResult | undefined;
    const existedBefore = existsSync(squashfsPath);
    // tar2sqfs without an examiner: merge the layers in memory and stream one tar of the final tree into tar2sqfs,
    // which compresses while the top layer is still being read; no tree is ever written. Past maxInMemoryNames (or
    // with an examiner, which needs a tree), unpack on disk.
    const streamed =
      conversion.tool === 'tar2sqfs' && !options.examine
        ? await mergeAndBuild(layers, squashfsPath, spoolDir, conversion, {
            keepDevices: options.keepDevices,
            maxUnpackedBytes: options.maxUnpackedBytes,
            maxEntries: options.maxEntries,
            signal: options.signal,
            onLayer,
          })
        : undefined;
    if (streamed) {
      createdSquashfs = !existedBefore;
      flattened = streamed.merged;
      flattenMs = streamed.mergeMs;
      built = streamed.built;
      progress({ phase: 'squashfs', tool: conversion.tool });
    } else {
      flattened = await flattenLayers(rootDir, layers, {
        budget: createUnpackBudget({ maxUnpackedBytes: options.maxUnpackedBytes, maxEntries: options.maxEntries }),
        keepDevices: options.keepDevices,
        signal: options.signal,
        spoolDir,
        onLayer,
      });
      flattenMs = performance.now() - flattenStarted;
      if (options.examine) {
        progress({ phase: 'examine' });
        await options.examine(rootDir);
      }
      options.signal?.throwIfAborted();
      progress({ phase: 'squashfs', tool: conversion.tool });
      built = await buildSquashfs(rootDir, squashfsPath, {
        conversion,
        signal: options.signal,
        mkfsTime: options.mkfsTime,
      });
      createdSquashfs = !existedBefore;
    }

    progress({ phase: 'meta' });
    const access = options.access ? await options.access() : { userACL: options.userACL, groupACL: options.groupACL };
    options.signal?.throwIfAborted();
    writeMetaFile(metaPath, {
      format: 'squashfs',
      entrypoint: metadata.entrypoint,
      cmd: metadata.cmd,
      workdir: metadata.workdir,
      env: metadata.env,
      userACL: access.userACL,
      groupACL: access.groupACL,
    });
    progress({ phase: 'done', id: options.id });
    return {
      id: options.id,
      squashfsPath,
      metaPath,
      metadata,
      summary: {
        layers: flattened.layers.length,
        entries: flattened.entries,
        unpackedBytes: flattened.unpackedBytes,
        dropped: flattened.dropped,
        squashfsBytes: built.bytes,
        tool: built.tool,
        method: streamed ? 'merged' : 'unpacked',
        timings: { flattenMs, squashfsMs: built.durationMs, totalMs: performance.now() - started },
      },
    };
  } catch (error) {
    if (createdSquashfs) rmSync(squashfsPath, { force: true });
    if (options.signal?.aborted && !ShifterError.isInstance(error)) {
      throw new ShifterError('SHIFTER_CONVERSION_FAILED', 'conversion aborted', { cause: options.signal.reason });
    }
    throw toConversionError(error);
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}
