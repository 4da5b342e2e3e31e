import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../blob-store/index.js';

/** What a {@link describeBlobStoreContract} factory returns. */
export interface BlobStoreContractSubject {
  /** The store under test, empty. */
  store: BlobStore;
  /** A second handle on the SAME storage, as another process would open it (for cross-instance deduplication). */
  peer?: BlobStore;
  /** Removes whatever the store created. */
  cleanup?: () => Promise<void>;
}

function blob(text: string): { bytes: Buffer; digest: string } {
  const bytes = Buffer.from(text);
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A source that yields `bytes` in small pieces, one per turn of the event loop (so a download stays in progress
 * while concurrent callers arrive, without waiting for wall-clock time), counting how often it was opened.
 */
function countingSource(bytes: Buffer, counter: { opened: number }): () => Readable {
  return () => {
    counter.opened += 1;
    return Readable.from(
      (async function* () {
        for (let offset = 0; offset < bytes.length; offset += 7) {
          await new Promise((resolve) => setImmediate(resolve));
          yield bytes.subarray(offset, offset + 7);
        }
      })(),
    );
  };
}

/**
 * The conformance suite every {@link BlobStore} implementation must pass (containers/image's habit of one shared
 * suite per pluggable backend). Call it from a test file of the implementation.
 *
 * @param name - shown in the test names
 * @param factory - creates an empty store (and optionally a peer on the same storage) for each test
 *
 * @example
 * ```ts
 * describeBlobStoreContract('FsBlobStore', async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'blobs-'));
 *   return { store: new FsBlobStore(dir), peer: new FsBlobStore(dir), cleanup: () => rm(dir, { recursive: true }) };
 * });
 * ```
 */
export function describeBlobStoreContract(name: string, factory: () => Promise<BlobStoreContractSubject>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let subject: BlobStoreContractSubject;
    beforeEach(async () => {
      subject = await factory();
    });
    afterEach(async () => {
      await subject.cleanup?.();
    });

    it('stores a verified blob and reads it back', async () => {
      const { bytes, digest } = blob('layer bytes');
      expect(await subject.store.has(digest)).toBe(false);
      expect(await subject.store.stat(digest)).toBeUndefined();
      expect(await subject.store.put(digest, bytes.length, Readable.from([bytes]))).toEqual({ stored: true });
      expect(await subject.store.has(digest)).toBe(true);
      expect((await subject.store.stat(digest))?.size).toBe(bytes.length);
      expect(await readAll(await subject.store.open(digest))).toEqual(bytes);
      expect(subject.store.path(digest)).toContain(digest.slice('sha256:'.length));
    });

    it('is idempotent and does not open the source of a stored blob', async () => {
      const { bytes, digest } = blob('same twice');
      const counter = { opened: 0 };
      await subject.store.put(digest, bytes.length, countingSource(bytes, counter));
      expect(await subject.store.put(digest, bytes.length, countingSource(bytes, counter))).toEqual({ stored: false });
      expect(counter.opened).toBe(1);
      const stream = Readable.from([bytes]);
      expect(await subject.store.put(digest, bytes.length, stream)).toEqual({ stored: false });
      expect(stream.destroyed).toBe(true);
    });

    it('refuses content that does not match its digest and keeps nothing', async () => {
      const { bytes, digest } = blob('expected');
      await expect(
        subject.store.put(digest, bytes.length, Readable.from([Buffer.from('tampered')])),
      ).rejects.toMatchObject({
        code: 'SHIFTER_DIGEST_MISMATCH',
      });
      expect(await subject.store.has(digest)).toBe(false);
    });

    it('refuses content of the wrong size and keeps nothing', async () => {
      const { bytes, digest } = blob('sized');
      await expect(subject.store.put(digest, bytes.length + 1, Readable.from([bytes]))).rejects.toMatchObject({
        code: 'SHIFTER_DIGEST_MISMATCH',
      });
      await expect(subject.store.put(digest, bytes.length - 1, Readable.from([bytes]))).rejects.toMatchObject({
        code: 'SHIFTER_DIGEST_MISMATCH',
      });
      expect(await subject.store.has(digest)).toBe(false);
    });

    it('keeps nothing when the source fails midway, and a later put succeeds', async () => {
      const { bytes, digest } = blob('will fail the first time');
      const failing = Readable.from(
        (async function* () {
          yield bytes.subarray(0, 5);
          throw new Error('connection reset');
        })(),
      );
      await expect(subject.store.put(digest, bytes.length, failing)).rejects.toThrow(/connection reset/);
      expect(await subject.store.has(digest)).toBe(false);
      expect(await subject.store.put(digest, bytes.length, Readable.from([bytes]))).toEqual({ stored: true });
    });

    it('downloads once when the same digest is put concurrently', async () => {
      const { bytes, digest } = blob('x'.repeat(200));
      const counter = { opened: 0 };
      const results = await Promise.all(
        Array.from({ length: 5 }, () => subject.store.put(digest, bytes.length, countingSource(bytes, counter))),
      );
      expect(counter.opened).toBe(1);
      expect(results.filter((r) => r.stored)).toHaveLength(1);
      expect(await readAll(await subject.store.open(digest))).toEqual(bytes);
    });

    it('downloads once when two instances on the same storage put concurrently', async (context) => {
      if (!subject.peer) {
        context.skip();
        return;
      }
      const { bytes, digest } = blob('y'.repeat(300));
      const counter = { opened: 0 };
      const results = await Promise.all([
        subject.store.put(digest, bytes.length, countingSource(bytes, counter)),
        subject.peer.put(digest, bytes.length, countingSource(bytes, counter)),
      ]);
      expect(counter.opened).toBe(1);
      expect(results.map((r) => r.stored).sort()).toEqual([false, true]);
      expect(await subject.peer.has(digest)).toBe(true);
    });

    it('stores different digests in parallel', async () => {
      const blobs = ['a', 'b', 'c', 'd'].map((text) => blob(text.repeat(50)));
      await Promise.all(blobs.map((b) => subject.store.put(b.digest, b.bytes.length, Readable.from([b.bytes]))));
      for (const b of blobs) expect(await readAll(await subject.store.open(b.digest))).toEqual(b.bytes);
    });

    it('deletes idempotently', async () => {
      const { bytes, digest } = blob('delete me');
      await subject.store.put(digest, bytes.length, Readable.from([bytes]));
      expect(await subject.store.delete(digest)).toBe(true);
      expect(await subject.store.delete(digest)).toBe(false);
      expect(await subject.store.has(digest)).toBe(false);
    });

    it('reports a missing blob with SHIFTER_BLOB_NOT_FOUND', async () => {
      await expect(subject.store.open(blob('absent').digest)).rejects.toMatchObject({ code: 'SHIFTER_BLOB_NOT_FOUND' });
    });

    it('refuses malformed digests before touching storage', async () => {
      for (const bad of ['sha256:../../etc/passwd', 'md5:abc', '', `sha256:${'A'.repeat(64)}`]) {
        await expect(subject.store.has(bad)).rejects.toMatchObject({ code: 'SHIFTER_DIGEST_INVALID' });
        await expect(subject.store.put(bad, 1, Readable.from([Buffer.from('x')]))).rejects.toMatchObject({
          code: 'SHIFTER_DIGEST_INVALID',
        });
        expect(() => subject.store.path(bad)).toThrow(expect.objectContaining({ code: 'SHIFTER_DIGEST_INVALID' }));
      }
    });
  });
}
