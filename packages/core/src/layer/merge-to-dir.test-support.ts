import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
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
 * {@link mergeIntoDir} with the top layer streamed. The top layer is opened a little late so that the lower
 * layers are merged before it is read and all of it streams (small test layers are read in no time otherwise).
 */
export const mergeStreamingIntoDir = (rootDir: string, layers: LayerSource[], options: Omit<MergeLayersOptions, 'spoolDir' | 'tar'> = {}) => {
  const top = layers.at(-1);
  const late = top ? [...layers.slice(0, -1), { ...top, open: async () => (await sleep(20), top.open()) }] : layers;
  return mergeIntoDir(rootDir, late, options, true);
};

async function mergeOnce(rootDir: string, layers: LayerSource[], options: Omit<MergeLayersOptions, 'spoolDir' | 'tar'>, stream: boolean) {
  const spoolDir = mkdtempSync(join(tmpdir(), 'shifter-merge-spool-'));
  const output = new PassThrough({ highWaterMark: 64 * 1024 });
  const writer = new TarWriter(output);
  const child = spawn('sh', ['-c', 'mkdir -p "$1" && exec tar -x -p --no-same-owner -C "$1" -f -', 'sh', rootDir], { stdio: ['pipe', 'ignore', 'pipe'] });
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
