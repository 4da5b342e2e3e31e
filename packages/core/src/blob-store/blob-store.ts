import type { Readable } from 'node:stream';

/** Size and location of a stored blob. */
export interface BlobStat {
  /** Size in bytes. */
  size: number;
  /** Where the blob lives, for tools that read files by path (may be a URL-like string for remote stores). */
  path: string;
}

/**
 * Where {@link BlobStore.put} gets the bytes from: a stream, or a function opening one. Prefer the function: the
 * store calls it only when it really needs the bytes (not already stored, not being stored by another caller), so
 * deduplicated pulls never even open a download.
 */
export type BlobSource = Readable | (() => Readable | Promise<Readable>);

/** Result of {@link BlobStore.put}. */
export interface BlobPutResult {
  /** True when this call wrote the blob; false when it was already there or another caller stored it. */
  stored: boolean;
}

/** Options of {@link BlobStore.put}. */
export interface BlobPutOptions {
  /** Abort a write or a wait for another writer. */
  signal?: AbortSignal;
  /** Description used in error messages (e.g. `layer 2 of test/busybox:latest`). */
  what?: string;
  /**
   * Called once when THIS call starts writing the blob (not when the blob was already stored or another caller
   * stores it), with a handle on the bytes written so far, so that a reader can follow the download
   * (`followBlobWrite` in `@shifter/core/internal`). Must not throw. Stores that cannot expose a write never call it.
   */
  onWriting?: (write: LiveBlobWrite) => void;
}

/**
 * A blob write in progress, as {@link BlobPutOptions.onWriting} hands it out. The bytes it exposes are NOT verified:
 * they become trustworthy only when the `put` that wrote them resolved. Bytes are only ever appended, in order.
 */
export interface LiveBlobWrite {
  /** The blob's digest. */
  readonly digest: string;
  /** Declared size; never more than this many bytes are written. */
  readonly size: number;
  /** Temporary file holding the bytes written so far (renamed into place or removed when the write settles). */
  readonly path: string;
  /** Bytes written to `path` so far (each is in the file and readable). */
  written(): number;
  /** `writing`, then `published` (verified and renamed into place) or `failed` (removed). */
  state(): 'writing' | 'published' | 'failed';
  /** Resolves at the next change: more bytes written, or the write settled (at once when settled). */
  changed(signal?: AbortSignal): Promise<void>;
}

/**
 * A content-addressed blob cache, shared by all images.
 *
 * Contract for every implementation (checked by `describeBlobStoreContract` from `@shifter/core/testing`):
 * - `put` is idempotent and verifies digest AND size while streaming; nothing is visible under the digest until the
 *   whole content verified (write to a temporary name, then publish atomically). A failed `put` leaves nothing.
 * - Concurrent `put`s of the same digest download it once: later callers wait for the first and report
 *   `stored: false`.
 * - `put` consumes or destroys a stream source in every case; a function source is called at most once.
 * - `open` returns a fresh stream over verified content; the caller owns and destroys it.
 * - Digests are validated (`SHIFTER_DIGEST_INVALID`) before any file system access, so they never name paths.
 */
export interface BlobStore {
  /** Whether the blob is stored. */
  has(digest: string): Promise<boolean>;
  /** Size and path of a stored blob, or undefined. */
  stat(digest: string): Promise<BlobStat | undefined>;
  /**
   * Open a stored blob.
   * @throws `SHIFTER_BLOB_NOT_FOUND` when absent
   */
  open(digest: string): Promise<Readable>;
  /**
   * Store a blob, verifying it.
   * @throws `SHIFTER_DIGEST_MISMATCH` when the content does not match digest and size; errors of the source as they are
   */
  put(digest: string, size: number, source: BlobSource, options?: BlobPutOptions): Promise<BlobPutResult>;
  /** Remove a blob; true when something was removed. Idempotent. */
  delete(digest: string): Promise<boolean>;
  /** The path the blob has (or would have) in this store. */
  path(digest: string): string;
}
