import { mkdirSync, rmSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { TarWriter, writeMergedTree } from '../image-builder/merged-tar.js';
import { type BuildSquashfsResult, buildSquashfsFromTar } from '../image-builder/squashfs-builder.js';
import {
  MergeIndexFull,
  type MergeLayersOptions,
  type MergedImage,
  SpeculationConflict,
  mergeLayers,
} from '../layer/layer-merge.js';
import { createUnpackBudget } from '../layer/root-tree.js';
import type { ConversionConfig, LayerSource } from './convert-types.js';

/** What {@link mergeAndBuild} did. */
export interface MergeAndBuildResult {
  merged: MergedImage;
  built: BuildSquashfsResult;
  /** Milliseconds until every layer was merged (the build runs alongside). */
  mergeMs: number;
}

/**
 * The tar2sqfs conversion without a tree on disk: tar2sqfs starts at once and reads one tar stream; the layers are
 * merged in memory (mergeLayers) and the top layer is streamed into tar2sqfs while it is still being decompressed,
 * then the rest of the final tree follows from the spool files (writeMergedTree). If the top layer changes
 * something it already streamed (SpeculationConflict, rare), the build is thrown away and redone without streaming.
 *
 * @returns the result, or `undefined` when the image has more names than `conversion.maxInMemoryNames` (the caller
 *   then unpacks on disk); the spool directory is emptied in that case
 * @throws the errors of mergeLayers and buildSquashfsFromTar; when tar2sqfs fails first, its error
 */
export async function mergeAndBuild(
  layers: LayerSource[],
  squashfsPath: string,
  spoolDir: string,
  conversion: ConversionConfig,
  options: BuildOptions,
): Promise<MergeAndBuildResult | undefined> {
  try {
    return await buildOnce(layers, squashfsPath, spoolDir, conversion, options, true);
  } catch (error) {
    if (error instanceof SpeculationConflict)
      return await buildOnce(layers, squashfsPath, spoolDir, conversion, options, false);
    throw error;
  }
}

type BuildOptions = Pick<MergeLayersOptions, 'keepDevices' | 'signal' | 'onLayer'> & {
  maxUnpackedBytes?: number;
  maxEntries?: number;
};

/** One attempt: tar2sqfs fed by one merge, the top layer streamed when `stream`. Cleans the spool directory on failure. */
async function buildOnce(
  layers: LayerSource[],
  squashfsPath: string,
  spoolDir: string,
  conversion: ConversionConfig,
  options: BuildOptions,
  stream: boolean,
): Promise<MergeAndBuildResult | undefined> {
  const started = performance.now();
  const output = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  const writer = new TarWriter(output);
  let buildError: unknown;
  const building = buildSquashfsFromTar(() => output, squashfsPath, {
    conversion,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // When tar2sqfs fails (or is missing), stop the merge that feeds it: its writes then fail instead of waiting.
  building.catch((error: unknown) => {
    buildError ??= error;
    output.destroy(error as Error);
  });
  try {
    const merged = await mergeLayers(layers, {
      spoolDir,
      budget: createUnpackBudget({ maxUnpackedBytes: options.maxUnpackedBytes, maxEntries: options.maxEntries }),
      maxNodes: conversion.maxInMemoryNames,
      ...(options.keepDevices !== undefined ? { keepDevices: options.keepDevices } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onLayer ? { onLayer: options.onLayer } : {}),
      ...(stream ? { tar: writer } : {}),
    });
    const mergeMs = performance.now() - started;
    await writeMergedTree(merged, writer);
    await writer.end();
    return { merged, built: await building, mergeMs };
  } catch (error) {
    writer.close();
    const failedFirst = buildError;
    output.destroy(error as Error);
    await building.catch(() => undefined);
    rmSync(spoolDir, { recursive: true, force: true });
    mkdirSync(spoolDir, { mode: 0o700 });
    if (error instanceof SpeculationConflict) throw error;
    if (error instanceof MergeIndexFull) return undefined;
    throw failedFirst ?? error;
  }
}
