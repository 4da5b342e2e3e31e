import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { type ShifterConfig, ShifterConfigSchema } from '../config/index.js';
import { ConfigError, ShifterError } from '../errors/index.js';
import { runTool } from './run-tool.js';
import { packTree } from './tree-tar.js';

/** The `conversion` section of {@link ShifterConfig} (declared with the image builder, which sits below convert/). */
export type ConversionConfig = ShifterConfig['conversion'];

/** Options of {@link buildSquashfs}. */
export interface BuildSquashfsOptions {
  /** The `conversion` config section (tool, compression, level, processors, memory, extraArgs, keepXattrs). */
  conversion?: Partial<ConversionConfig>;
  /**
   * Filesystem creation time written into the superblock, in seconds (default 0). Fixed so that the same tree
   * always gives the same bytes; pass SOURCE_DATE_EPOCH here if a site wants one.
   */
  mkfsTime?: number;
  /** Kills the tool when aborted. */
  signal?: AbortSignal;
}

/** What {@link buildSquashfs} produced. */
export interface BuildSquashfsResult {
  /** The output file. */
  path: string;
  /** Its size in bytes. */
  bytes: number;
  /** The tool that built it. */
  tool: 'mksquashfs' | 'tar2sqfs';
  /** Wall time in milliseconds. */
  durationMs: number;
}

/**
 * Fill a partial conversion section with the config schema's defaults.
 *
 * lz4 images are always built by mksquashfs: tar2sqfs 1.2 (squashfs-tools-ng, Debian 12) writes lz4 images that
 * the kernel mounts but unsquashfs 4.5 rejects ("failed to read id table block"), and admins inspect images with
 * unsquashfs.
 */
export function resolveConversionConfig(conversion: Partial<ConversionConfig> = {}): ConversionConfig {
  const defaults = ShifterConfigSchema.parse({}).conversion;
  const resolved: ConversionConfig = {
    ...defaults,
    ...Object.fromEntries(Object.entries(conversion).filter(([, v]) => v !== undefined)),
  };
  return resolved.compression === 'lz4' ? { ...resolved, tool: 'mksquashfs' } : resolved;
}

const LEVELS: Record<string, { min: number; max: number; default?: number } | undefined> = {
  zstd: { min: 1, max: 22, default: 3 },
  gzip: { min: 1, max: 9 },
  lzo: { min: 1, max: 9 },
  xz: undefined,
  lz4: undefined,
};

function compressionLevel(conversion: ConversionConfig): number | undefined {
  const range = LEVELS[conversion.compression];
  const level = conversion.compressionLevel ?? range?.default;
  if (level === undefined) return undefined;
  if (!range || level < range.min || level > range.max) {
    throw new ConfigError(
      'SHIFTER_CONFIG_INVALID',
      `compression level ${level} is not valid for ${conversion.compression}`,
      {
        details: { compression: conversion.compression, compressionLevel: level },
      },
    );
  }
  return level;
}

/**
 * The mksquashfs arguments for a tree (without the tool name). Exposed for docs and tests.
 *
 * `-all-root` (every file owned by root, as upstream), `-no-xattrs` unless keepXattrs, `-noappend`, a fixed
 * `-mkfs-time` (mksquashfs ≥ 4.4 is otherwise reproducible: sorted directories, deterministic fragment order),
 * `-processors` and `-mem` bounds, quiet output; extraArgs last so a site can override.
 */
export function mksquashfsArgs(rootDir: string, outFile: string, conversion: ConversionConfig, mkfsTime = 0): string[] {
  const level = compressionLevel(conversion);
  return [
    rootDir,
    outFile,
    '-noappend',
    '-all-root',
    ...(conversion.keepXattrs ? [] : ['-no-xattrs']),
    '-comp',
    conversion.compression,
    ...(level === undefined ? [] : ['-Xcompression-level', String(level)]),
    '-processors',
    String(conversion.processors ?? availableParallelism()),
    '-mem',
    conversion.memory,
    '-mkfs-time',
    String(mkfsTime),
    '-quiet',
    '-no-progress',
    ...conversion.extraArgs,
  ];
}

/** The tar2sqfs arguments (tar on stdin). */
export function tar2sqfsArgs(outFile: string, conversion: ConversionConfig): string[] {
  const level = compressionLevel(conversion);
  return [
    '--quiet',
    '--force',
    '--no-skip',
    ...(conversion.keepXattrs ? [] : ['--no-xattr']),
    '--compressor',
    conversion.compression,
    ...(level === undefined ? [] : ['--comp-extra', `level=${level}`]),
    '--num-jobs',
    String(conversion.processors ?? availableParallelism()),
    '--defaults',
    'uid=0,gid=0,mode=0755,mtime=0',
    ...conversion.extraArgs,
    outFile,
  ];
}

/**
 * Build a squashfs file from a flattened tree with mksquashfs (default) or tar2sqfs (fed one merged tar of the
 * tree). The file is built under a temporary name next to `outFile` and renamed into place, so `outFile` is either
 * absent, the previous file, or complete; the temporary file is removed on failure.
 *
 * Reproducible: the same tree (names, contents, modes, mtimes) gives byte-identical output.
 *
 * @param rootDir - the flattened tree (read only)
 * @param outFile - destination; replaced atomically when it exists
 * @param options - conversion settings, mkfs time, abort signal
 * @returns path, size, tool and time
 * @throws {@link ConversionError} `SHIFTER_TOOL_NOT_FOUND`, `SHIFTER_CONVERSION_FAILED` (stderr in details)
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` for a compression level the compressor does not take
 */
export async function buildSquashfs(
  rootDir: string,
  outFile: string,
  options: BuildSquashfsOptions = {},
): Promise<BuildSquashfsResult> {
  const conversion = resolveConversionConfig(options.conversion);
  if (conversion.tool === 'tar2sqfs')
    return buildSquashfsFromTar(() => packTree(rootDir) as unknown as Readable, outFile, options);
  return publishAtomically(outFile, conversion.tool, (temp) =>
    runTool(conversion.mksquashfsPath, mksquashfsArgs(rootDir, temp, conversion, options.mkfsTime ?? 0), {
      signal: options.signal,
    }).then(() => undefined),
  );
}

/**
 * Build a squashfs file with `tar2sqfs` from ONE tar stream (e.g. {@link mergedImageTar} of merged layers, or
 * {@link packTree} of a tree). Like {@link buildSquashfs}, the file is built under a temporary name next to
 * `outFile` and renamed into place; the temporary file is removed on failure. When the stream fails, tar2sqfs is
 * killed and the stream's own error is thrown (not the tool's "killed").
 *
 * Reproducible: the same tar bytes give byte-identical output.
 *
 * @param openTar - makes the tar stream (called once); the stream is destroyed when the build ends
 * @param outFile - destination; replaced atomically when it exists
 * @param options - conversion settings (the tool setting is ignored: this is always tar2sqfs), abort signal
 * @throws {@link ConversionError} `SHIFTER_TOOL_NOT_FOUND`, `SHIFTER_CONVERSION_FAILED` (stderr in details);
 *   whatever the tar stream fails with
 */
export async function buildSquashfsFromTar(
  openTar: () => Readable,
  outFile: string,
  options: BuildSquashfsOptions = {},
): Promise<BuildSquashfsResult> {
  const conversion = resolveConversionConfig(options.conversion);
  return publishAtomically(outFile, 'tar2sqfs', async (temp) => {
    const args = tar2sqfsArgs(temp, conversion);
    const tar = openTar();
    let streamError: unknown;
    tar.once('error', (error) => {
      streamError ??= error;
    });
    const flusher = flushWhileWriting(temp);
    try {
      await runTool(conversion.tar2sqfsPath, args, { stdin: tar, signal: options.signal });
    } catch (error) {
      throw streamError === undefined ? error : inputError(streamError);
    } finally {
      tar.destroy();
      await flusher.stop();
    }
    if (streamError !== undefined) throw inputError(streamError);
  });
}

/** How often {@link flushWhileWriting} flushes the file tar2sqfs is writing. */
const FLUSH_INTERVAL_MS = 500;

/**
 * While tar2sqfs writes `path` (for as long as the top layer streams, on a slow network), flush what it wrote so
 * far in the background (fdatasync, at most one at a time), so that whoever fsyncs the finished file (the transfer
 * into the image directory) finds little left to write. Best effort: errors are ignored (the final fsync reports
 * them).
 */
function flushWhileWriting(path: string): { stop(): Promise<void> } {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let busy: Promise<void> | undefined;
  let stopped = false;
  const tick = (): void => {
    if (busy || stopped) return;
    busy = (async () => {
      handle ??= await open(path, 'r').catch(() => undefined);
      if (handle && !stopped) await handle.datasync();
    })()
      .catch(() => undefined)
      .finally(() => (busy = undefined));
  };
  const timer = setInterval(tick, FLUSH_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await busy;
      await handle?.close().catch(() => undefined);
    },
  };
}

/** A failure of the tar stream feeding tar2sqfs: its own ShifterError, or a local I/O failure. */
function inputError(error: unknown): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  return new ShifterError('SHIFTER_IO_FAILED', `cannot read the squashfs input: ${(error as Error).message}`, {
    cause: error,
    details: { errno: (error as NodeJS.ErrnoException).code },
  });
}

async function publishAtomically(
  outFile: string,
  tool: BuildSquashfsResult['tool'],
  build: (temp: string) => Promise<void>,
): Promise<BuildSquashfsResult> {
  const temp = join(dirname(outFile), `.${basename(outFile)}.${randomBytes(6).toString('hex')}.partial`);
  const started = performance.now();
  try {
    await build(temp);
    renameSync(temp, outFile);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  return { path: outFile, bytes: statSync(outFile).size, tool, durationMs: performance.now() - started };
}
