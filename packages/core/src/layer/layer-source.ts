import type { Readable } from 'node:stream';

/**
 * One layer blob as the converter sees it: its descriptor plus a way to read its (compressed) bytes.
 *
 * Contract: `open()` may be called more than once (each call returns a fresh stream from the start); the caller of
 * `open()` owns the returned stream and destroys it when done or on failure. The converter does NOT verify the
 * digest — the blob cache already did while storing it — but it checks the compression by magic bytes.
 */
export interface LayerSource {
  /** `sha256:<hex>` of the compressed blob; used in error details and progress. */
  digest: string;
  /** Layer media type from the manifest (OCI or Docker). */
  mediaType: string;
  /** Compressed size in bytes, from the manifest. */
  size: number;
  /** Open the compressed bytes; the caller closes the stream. */
  open(): Promise<Readable>;
}
