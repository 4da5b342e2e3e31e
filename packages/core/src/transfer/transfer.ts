/**
 * Transfer: deliver an image file and its `.meta` into a system's image directory, where the runtime finds them as
 * `<imageDir>/<id>.<format>` and `<imageDir>/<id>.meta`.
 *
 * The protocol every implementation follows (the runtime relies on it):
 * - Each file is written to a temp name **in the target directory** (`.<id>.<ext>.shifter-tmp-<random>`), fsynced,
 *   given its final mode, then renamed over the final name — a reader never sees a partial file.
 * - The image is renamed into place **first**, the `.meta` **last**: a `.meta` means "ready".
 * - {@link Transfer.remove} deletes the `.meta` **first**, then the image.
 * - Public images are mode 0644; private images 0600 (only root, i.e. the runtime after its ACL check, opens them).
 *   The `.meta` gets the same mode as its image: a private image's environment and ACL are not for everyone.
 * - Temp files left by a crash match {@link TRANSFER_TEMP_PATTERN}; {@link Transfer.cleanStale} removes them.
 *
 * @packageDocumentation
 */
// Imported for TSDoc links only.
import type { NotFoundError, ShifterError, TransferError } from '../errors/index.js';

/** Options of {@link Transfer.put} and {@link Transfer.putMeta}. */
export interface TransferPutOptions {
  /** Image file format, the image file's extension (default `squashfs`). */
  readonly format?: string;
  /** Private image: mode 0600 instead of 0644. */
  readonly private?: boolean;
  /** Cancels the copy; temp files are removed. */
  readonly signal?: AbortSignal;
  /**
   * The caller gives the local files up: a transfer may move (rename) them into place instead of copying when they
   * are on the image directory's file system (instant), and they may be gone afterwards. Transfers that cannot
   * move copy as usual.
   */
  readonly move?: boolean;
}

/** Options of {@link Transfer.exists} and {@link Transfer.remove}. */
export interface TransferFileOptions {
  /** Image file format (default `squashfs`). */
  readonly format?: string;
  /** Cancels the operation. */
  readonly signal?: AbortSignal;
}

/** Delivers images to one system's image directory. */
export interface Transfer {
  /** Where images land on the target (absolute path on the target host). */
  readonly imageDir: string;

  /**
   * Copy `localImage` to `<id>.<format>` and then `localMeta` to `<id>.meta`, each via temp file + fsync + rename,
   * image first. Idempotent: putting the same files again replaces them atomically. The local files are only read.
   * @param localImage - path of the built image file on this host
   * @param localMeta - path of the `.meta` file on this host
   * @param id - image id, lower-case hex (64 chars for sha256); anything else is refused before any I/O
   * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT` for a bad id or format;
   *   {@link TransferError} `SHIFTER_TRANSFER_FAILED` (retryable) when copying fails — no temp file is left behind
   *   and the final names are untouched unless the image rename already happened (then the old `.meta`, if any,
   *   still describes the previous content, which has the same id and therefore the same bytes).
   */
  put(localImage: string, localMeta: string, id: string, options?: TransferPutOptions): Promise<void>;

  /**
   * Metadata-only transfer: replace `<id>.meta` (e.g. new ACLs) for an image already on the system; also re-applies
   * the image file's mode (0600/0644) so a change of privacy takes effect.
   * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT`; {@link NotFoundError} `SHIFTER_IMAGE_NOT_FOUND`
   *   when the image file is not there; {@link TransferError} `SHIFTER_TRANSFER_FAILED`.
   */
  putMeta(localMeta: string, id: string, options?: TransferPutOptions): Promise<void>;

  /**
   * Remove `<id>.meta` first, then `<id>.<format>`. Idempotent: missing files are fine.
   * @returns whether anything was removed.
   * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT`; {@link TransferError} `SHIFTER_TRANSFER_FAILED`.
   */
  remove(id: string, options?: TransferFileOptions): Promise<boolean>;

  /**
   * Whether both `<id>.<format>` and `<id>.meta` exist (the image is ready on the system).
   * @throws {@link ShifterError} `SHIFTER_USAGE_INVALID_ARGUMENT`; {@link TransferError} `SHIFTER_TRANSFER_FAILED`
   *   when the target cannot be asked.
   */
  exists(id: string, options?: TransferFileOptions): Promise<boolean>;

  /**
   * Remove this product's temp files (names matching {@link TRANSFER_TEMP_PATTERN}) from the image directory — left
   * there by a crash. Call when a worker starts, before it takes jobs (a temp file of a live transfer by another
   * worker on the same directory would be removed too: one worker per system).
   * @returns how many files were removed.
   */
  cleanStale(): Promise<number>;
}

/** Temp file names this product writes into image directories. */
export const TRANSFER_TEMP_PATTERN = /^\.[0-9a-f]+\.[A-Za-z0-9]+\.shifter-tmp-[A-Za-z0-9]+$/;

/** Image ids: lower-case hex, 8 to 128 characters (sha256 gives 64). */
export const IMAGE_ID_PATTERN = /^[0-9a-f]{8,128}$/;

/** Image formats: a short lower-case word (it becomes the file extension). */
export const IMAGE_FORMAT_PATTERN = /^[a-z0-9]{1,16}$/;
