import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { LayerSource } from './layer-source.js';
import { TarWriter, writeMergedTree } from '../image-builder/merged-tar.js';
import { type MergeLayersOptions, SpeculationConflict, mergeLayers } from './layer-merge.js';

/**
 * Test support: flatten layers the in-memory way (mergeLayers → one tar) and extract the tar into `rootDir` with
 * GNU tar, an independent reader, so tests written for flattenLayers check the merge, the tar it emits and the
 * tree it describes. With `stream`, the top layer is streamed while it is read (as convertImage does), and a
 * {@link SpeculationConflict} merges again without streaming. Returns the merge summary (flattenLayers' shape).
 */
export async function mergeIntoDir(
  rootDir: string,
  layers: LayerSource[],
  options: Omit<MergeLayersOptions, 'spoolDir' | 'tar'> = {},
  stream = false,
) {
  try {
    return await mergeOnce(rootDir, layers, options, stream);
  } catch (error) {
    if (!(error instanceof SpeculationConflict)) throw error;
    rmSync(rootDir, { recursive: true, force: true });
    return await mergeOnce(rootDir, layers, options, false);
  }
}

/**
 * The layers with the top one opened only once every lower layer is merged (told by `mergeLayers`' `onLayer`), so
 * all of it streams: small test layers are read in no time otherwise, and in production a big top layer is still
 * being read when the lower ones are done. No wall-clock wait: the order is an event, not a delay.
 */
export function topOpensAfterLowerMerged(layers: LayerSource[]): {
  layers: LayerSource[];
  onLayer: NonNullable<MergeLayersOptions['onLayer']>;
} {
  const top = layers.at(-1);
  let release: () => void = () => undefined;
  const lowerMerged = new Promise<void>((resolve) => {
    release = resolve;
  });
  if (layers.length <= 1) release();
  return {
    layers: top ? [...layers.slice(0, -1), { ...top, open: async () => (await lowerMerged, top.open()) }] : layers,
    onLayer: (_summary, index, count) => {
      if (index === count - 2) release();
    },
  };
}

/** {@link mergeIntoDir} with the top layer streamed, opened once the lower layers are merged. */
export const mergeStreamingIntoDir = (
  rootDir: string,
  layers: LayerSource[],
  options: Omit<MergeLayersOptions, 'spoolDir' | 'tar'> = {},
) => {
  const late = topOpensAfterLowerMerged(layers);
  const onLayer: MergeLayersOptions['onLayer'] = (summary, index, count) => {
    late.onLayer(summary, index, count);
    options.onLayer?.(summary, index, count);
  };
  return mergeIntoDir(rootDir, late.layers, { ...options, onLayer }, true);
};

async function mergeOnce(
  rootDir: string,
  layers: LayerSource[],
  options: Omit<MergeLayersOptions, 'spoolDir' | 'tar'>,
  stream: boolean,
) {
  const spoolDir = mkdtempSync(join(tmpdir(), 'shifter-merge-spool-'));
  const output = new PassThrough({ highWaterMark: 64 * 1024 });
  const writer = new TarWriter(output);
  const child = spawn('sh', ['-c', 'mkdir -p "$1" && exec tar -x -p --no-same-owner -C "$1" -f -', 'sh', rootDir], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  output.pipe(child.stdin);
  try {
    const merged = await mergeLayers(layers, { ...options, spoolDir, ...(stream ? { tar: writer } : {}) });
    await writeMergedTree(merged, writer);
    await writer.end();
    const code = await exited;
    if (code !== 0) throw new Error(`tar -x failed (${code}): ${stderr}`);
    return merged;
  } catch (error) {
    writer.close();
    output.destroy();
    child.kill('SIGKILL');
    await exited;
    throw error;
  } finally {
    rmSync(spoolDir, { recursive: true, force: true });
  }
}
