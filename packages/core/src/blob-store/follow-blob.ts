import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { ShifterError } from '../errors/index.js';
import type { LiveBlobWrite } from './blob-store.js';

/** Largest read a follower makes at once (the page cache answers it; the consumer's backpressure paces it). */
const FOLLOW_CHUNK = 1024 * 1024;

/** Options of {@link followBlobWrite}. */
export interface FollowBlobOptions {
  /**
   * Settles when the download is trusted: the `put` that wrote the blob verified digest and size and published it,
   * and whatever else the caller requires (a blob proof). The stream ends only after it resolved, and fails with
   * its reason when it rejects.
   */
  verified: Promise<unknown>;
  /** Opens the published blob; used when the temporary file was already renamed before the follower opened it. */
  reopen: () => Promise<Readable>;
  /** Stops following (the stream then fails with the reason). */
  signal?: AbortSignal;
}

function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

/**
 * Read a blob WHILE it downloads: the bytes of a {@link LiveBlobWrite} as they reach its temporary file (from the
 * page cache, not the network), so that a converter can decompress and parse a layer during its download.
 *
 * SECURITY: the bytes are not verified while they flow. The stream therefore delivers its last byte and then waits
 * for `options.verified` before it ENDS, and fails when that rejects (a digest or size mismatch, a broken download,
 * an unproven blob): a consumer that publishes only after its input ended (the converter renames its output only
 * after every layer stream ended) never publishes anything derived from unverified bytes, and a mismatch discards
 * its work. Never more than the declared size is delivered; bytes are read by file offset, so a download that resumed
 * (`Range`) cannot feed a byte twice. Memory: one chunk of at most 1 MiB at a time; the consumer paces the reads.
 *
 * @param write - the write to follow, from {@link BlobPutOptions.onWriting}
 * @param options - the verification to wait for, a fallback opener, a signal
 * @returns a stream of the blob's bytes from byte 0; the caller destroys it when abandoning it
 */
export function followBlobWrite(write: LiveBlobWrite, options: FollowBlobOptions): Readable {
  const { verified, reopen, signal } = options;
  // The stream may fail before anyone awaits `verified`: no unhandled rejection from here.
  verified.catch(() => undefined);
  async function* follow(): AsyncGenerator<Buffer> {
    let handle;
    try {
      handle = await open(write.path, 'r');
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
      // Already renamed into place (or removed): the published blob is the same bytes, once trusted.
      await verified;
      const stream = await reopen();
      try {
        for await (const chunk of stream) yield chunk as Buffer;
      } finally {
        stream.destroy();
      }
      return;
    }
    try {
      let position = 0;
      for (;;) {
        signal?.throwIfAborted();
        const available = Math.min(write.written(), write.size);
        if (position < available) {
          const length = Math.min(FOLLOW_CHUNK, available - position);
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await handle.read(buffer, 0, length, position);
          if (bytesRead === 0) {
            throw new ShifterError('SHIFTER_IO_FAILED', `blob ${write.digest}: ${write.path} is shorter than written`);
          }
          position += bytesRead;
          yield bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
          continue;
        }
        if (write.state() !== 'writing') break;
        await write.changed(signal);
      }
      // Every byte the write made is delivered; the stream ends only once the download is trusted.
      await verified;
      if (position !== write.size) {
        throw new ShifterError(
          'SHIFTER_INTERNAL',
          `blob ${write.digest}: followed ${position} of ${write.size} bytes of a verified download`,
        );
      }
    } finally {
      await handle.close();
    }
  }
  return Readable.from(follow(), { objectMode: false, highWaterMark: FOLLOW_CHUNK });
}
