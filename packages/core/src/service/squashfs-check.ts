/**
 * Validation of squashfs files offered for import: a real squashfs 4 superblock and no device nodes.
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ShifterError } from '../errors/index.js';

const execFileAsync = promisify(execFile);

/** squashfs magic `hsqs` read as a little-endian 32-bit number. */
const SQUASHFS_MAGIC = 0x73717368;
const SUPERBLOCK_BYTES = 96;

const invalid = (message: string, details: Record<string, unknown> = {}): ShifterError =>
  new ShifterError('SHIFTER_IMPORT_INVALID', message, { details });

/**
 * Check a squashfs file: superblock magic, version 4.0, sane block size and a `bytes_used` that fits the file, then
 * list it with `unsquashfs -lls` and refuse device nodes.
 *
 * @param path - local file to check
 * @param options - `unsquashfsPath` (default `unsquashfs`)
 * @throws {@link ShifterError} `SHIFTER_IMPORT_INVALID` naming the problem; `SHIFTER_TOOL_NOT_FOUND` when unsquashfs
 *   is missing
 */
export async function checkSquashfs(path: string, options: { unsquashfsPath?: string } = {}): Promise<void> {
  const handle = await open(path, 'r');
  let size: number;
  const superblock = Buffer.alloc(SUPERBLOCK_BYTES);
  try {
    size = (await handle.stat()).size;
    const { bytesRead } = await handle.read(superblock, 0, SUPERBLOCK_BYTES, 0);
    if (bytesRead < SUPERBLOCK_BYTES) throw invalid('the file is too small to be a squashfs image', { size });
  } finally {
    await handle.close();
  }
  if (superblock.readUInt32LE(0) !== SQUASHFS_MAGIC) throw invalid('the file is not a squashfs image (bad magic)');
  const blockSize = superblock.readUInt32LE(12);
  const major = superblock.readUInt16LE(28);
  const minor = superblock.readUInt16LE(30);
  const bytesUsed = Number(superblock.readBigUInt64LE(40));
  if (major !== 4 || minor !== 0) throw invalid(`unsupported squashfs version ${major}.${minor}`);
  if (blockSize < 4096 || blockSize > 1024 * 1024 || (blockSize & (blockSize - 1)) !== 0) {
    throw invalid(`implausible squashfs block size ${blockSize}`);
  }
  if (bytesUsed > size) throw invalid('the squashfs image is truncated', { bytesUsed, size });

  let listing: string;
  try {
    listing = (
      await execFileAsync(options.unsquashfsPath ?? 'unsquashfs', ['-lls', '-no-progress', path], {
        maxBuffer: 512 * 1024 * 1024,
      })
    ).stdout;
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    if (failure.code === 'ENOENT')
      throw new ShifterError('SHIFTER_TOOL_NOT_FOUND', 'unsquashfs is not installed', { cause: error });
    throw invalid('unsquashfs cannot read the image', { stderr: String(failure.stderr ?? '').slice(0, 2000) });
  }
  for (const line of listing.split('\n')) {
    if (line.startsWith('c') || line.startsWith('b')) {
      throw invalid('the image contains device nodes', { entry: line.slice(0, 300) });
    }
  }
}

/**
 * sha256 hex of a file's full content (the id of an imported image).
 * @param path - the file
 */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
