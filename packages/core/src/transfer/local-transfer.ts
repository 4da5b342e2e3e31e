/**
 * Transfer into an image directory on this host (upstream `accesstype: local`).
 *
 * @packageDocumentation
 */
import { constants } from 'node:fs';
import { chmod, copyFile, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError, ShifterError, TransferError } from '../errors/index.js';
import { checkIdAndFormat, checkImageDir, imageFileNames, imageMode, tempFileName } from './transfer-names.js';
import { TRANSFER_TEMP_PATTERN, type Transfer, type TransferFileOptions, type TransferPutOptions } from './transfer.js';

/** Options of {@link LocalTransfer}. */
export interface LocalTransferOptions {
  /** The system's image directory (created with mode 0755 if missing). */
  readonly imageDir: string;
}

/**
 * {@link Transfer} to a local directory: copy to a temp file in the directory (or, with `move`, rename the file
 * there when it is on the same file system), fsync, chmod, rename, fsync the directory.
 *
 * @example
 * ```ts
 * const transfer = new LocalTransfer({ imageDir: '/var/lib/shifter/images' });
 * await transfer.cleanStale();
 * await transfer.put('/scratch/abc.squashfs', '/scratch/abc.meta', imageId, { private: false });
 * ```
 */
export class LocalTransfer implements Transfer {
  readonly imageDir: string;

  /** @throws ShifterError `SHIFTER_CONFIG_INVALID` for an unusable `imageDir`. */
  constructor(options: LocalTransferOptions) {
    this.imageDir = checkImageDir(options.imageDir);
  }

  async put(localImage: string, localMeta: string, id: string, options: TransferPutOptions = {}): Promise<void> {
    const format = options.format ?? 'squashfs';
    checkIdAndFormat(id, format);
    const names = imageFileNames(id, format);
    const mode = imageMode(options.private);
    await this.#ensureDir();
    // Image first, meta last: a .meta means the image next to it is complete.
    await this.#install(localImage, names.image, id, format, mode, options.signal, options.move);
    await this.#install(localMeta, names.meta, id, 'meta', mode, options.signal, options.move);
    await this.#syncDir();
  }

  async putMeta(localMeta: string, id: string, options: TransferPutOptions = {}): Promise<void> {
    const format = options.format ?? 'squashfs';
    checkIdAndFormat(id, format);
    const names = imageFileNames(id, format);
    const mode = imageMode(options.private);
    const imagePath = join(this.imageDir, names.image);
    try {
      await stat(imagePath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new NotFoundError('SHIFTER_IMAGE_NOT_FOUND', `${names.image} is not in ${this.imageDir}`, {
          details: { id },
        });
      }
      throw transferFailed(`stat ${imagePath}`, error);
    }
    try {
      await chmod(imagePath, mode);
    } catch (error) {
      throw transferFailed(`chmod ${imagePath}`, error);
    }
    await this.#install(localMeta, names.meta, id, 'meta', mode, options.signal);
    await this.#syncDir();
  }

  async remove(id: string, options: TransferFileOptions = {}): Promise<boolean> {
    const format = options.format ?? 'squashfs';
    checkIdAndFormat(id, format);
    const names = imageFileNames(id, format);
    let removed = false;
    // Meta first: once it is gone, the runtime no longer considers the image ready.
    for (const name of [names.meta, names.image]) {
      try {
        await unlink(join(this.imageDir, name));
        removed = true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw transferFailed(`remove ${name}`, error);
      }
    }
    if (removed) await this.#syncDir();
    return removed;
  }

  async exists(id: string, options: TransferFileOptions = {}): Promise<boolean> {
    const format = options.format ?? 'squashfs';
    checkIdAndFormat(id, format);
    const names = imageFileNames(id, format);
    const present = await Promise.all([names.image, names.meta].map((name) => isFile(join(this.imageDir, name))));
    return present.every(Boolean);
  }

  async cleanStale(): Promise<number> {
    let entries: string[];
    try {
      entries = await readdir(this.imageDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw transferFailed(`list ${this.imageDir}`, error);
    }
    let removed = 0;
    for (const name of entries.filter((n) => TRANSFER_TEMP_PATTERN.test(n))) {
      try {
        await unlink(join(this.imageDir, name));
        removed++;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw transferFailed(`remove ${name}`, error);
      }
    }
    return removed;
  }

  async #ensureDir(): Promise<void> {
    try {
      await mkdir(this.imageDir, { recursive: true, mode: 0o755 });
    } catch (error) {
      throw transferFailed(`create ${this.imageDir}`, error);
    }
  }

  /** Copy `source` to `finalName` in the image dir through a temp file; the temp file never survives a failure. */
  async #install(
    source: string,
    finalName: string,
    id: string,
    ext: string,
    mode: number,
    signal?: AbortSignal,
    move = false,
  ): Promise<void> {
    signal?.throwIfAborted();
    const temp = join(this.imageDir, tempFileName(id, ext));
    try {
      // A file the caller gave up is renamed to the temp name when both are on one file system (no copy, instant);
      // otherwise (EXDEV, or not given up) it is copied. COPYFILE_EXCL: the temp name is fresh; never follow
      // something planted there (rename onto a fresh random name cannot meet a planted file either).
      const moved = move && (await moveFile(source, temp));
      if (!moved) await copyFile(source, temp, constants.COPYFILE_EXCL);
      await chmod(temp, mode);
      const handle = await open(temp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      signal?.throwIfAborted();
      await rename(temp, join(this.imageDir, finalName));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      if (ShifterError.isInstance(error)) throw error;
      if ((error as Error).name === 'AbortError')
        throw new TransferError('SHIFTER_TRANSFER_FAILED', `copy of ${finalName} cancelled`, {
          cause: error,
          retryable: true,
        });
      throw transferFailed(`copy ${source} to ${finalName}`, error);
    }
  }

  async #syncDir(): Promise<void> {
    // The renames are durable only once the directory itself is on disk.
    try {
      const handle = await open(this.imageDir, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw transferFailed(`sync ${this.imageDir}`, error);
    }
  }
}

/** Rename `source` to `target`; false when they are on different file systems (the caller then copies). */
async function moveFile(source: string, target: string): Promise<boolean> {
  try {
    await rename(source, target);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EXDEV') return false;
    throw error;
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw transferFailed(`stat ${path}`, error);
  }
}

function transferFailed(what: string, error: unknown): TransferError {
  const code = (error as NodeJS.ErrnoException)?.code;
  return new TransferError('SHIFTER_TRANSFER_FAILED', `${what} failed: ${(error as Error)?.message ?? String(error)}`, {
    cause: error,
    details: code ? { errno: code } : {},
  });
}
