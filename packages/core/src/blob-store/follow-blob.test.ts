import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LiveBlobWrite } from './blob-store.js';
import { followBlobWrite } from './follow-blob.js';
import { FsBlobStore } from './fs-blob-store.js';

const sha = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Read `count` bytes from a stream (or fewer, when it ends first). */
async function readBytes(stream: Readable, count: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  while (length < count) {
    const chunk = stream.read() as Buffer | null;
    if (chunk) {
      chunks.push(chunk);
      length += chunk.length;
      continue;
    }
    if (stream.readableEnded) break;
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        stream.off('readable', done);
        stream.off('end', done);
        stream.off('error', fail);
        resolve();
      };
      const fail = (error: Error): void => {
        stream.off('readable', done);
        stream.off('end', done);
        reject(error);
      };
      stream.once('readable', done);
      stream.once('end', done);
      stream.once('error', fail);
    });
  }
  return Buffer.concat(chunks);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('followBlobWrite', () => {
  let dir: string;
  let store: FsBlobStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shifter-follow-'));
    store = new FsBlobStore(dir, { fsync: false });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Start a put fed by a PassThrough; resolves the live write once the store starts writing. */
  function startPut(digest: string, size: number, signal?: AbortSignal) {
    const source = new PassThrough();
    let onWriting!: (write: LiveBlobWrite) => void;
    const writing = new Promise<LiveBlobWrite>((resolve) => (onWriting = resolve));
    const put = store.put(digest, size, source, { onWriting, ...(signal ? { signal } : {}) });
    put.catch(() => undefined);
    return { source, writing, put };
  }

  it('delivers bytes while the download runs and ends only once the download verified', async () => {
    const blob = randomBytes(3 * 1024 * 1024 + 17);
    const { source, writing, put } = startPut(sha(blob), blob.length);
    source.write(blob.subarray(0, 1024 * 1024));
    const live = await writing;
    const follower = followBlobWrite(live, { verified: put, reopen: () => store.open(sha(blob)) });
    // The first MiB arrives before the rest was even sent.
    const head = await readBytes(follower, 1024 * 1024);
    expect(head.equals(blob.subarray(0, 1024 * 1024))).toBe(true);
    expect(live.state()).toBe('writing');
    expect(await store.has(sha(blob))).toBe(false);
    source.end(blob.subarray(1024 * 1024));
    const rest = await readAll(follower);
    expect(Buffer.concat([head, rest]).equals(blob)).toBe(true);
    expect(await put).toEqual({ stored: true });
    expect(live.state()).toBe('published');
  });

  it('fails instead of ending when the digest does not match, and the store keeps nothing', async () => {
    const blob = randomBytes(2 * 1024 * 1024);
    const served = Buffer.from(blob);
    served[served.length - 1] = served[served.length - 1]! ^ 0xff; // the last byte differs: everything before it looks right
    const { source, writing, put } = startPut(sha(blob), blob.length);
    source.write(served.subarray(0, 1024 * 1024));
    const live = await writing;
    const follower = followBlobWrite(live, { verified: put, reopen: () => store.open(sha(blob)) });
    const head = await readBytes(follower, 1024 * 1024);
    expect(head.length).toBe(1024 * 1024);
    source.end(served.subarray(1024 * 1024));
    await expect(readAll(follower)).rejects.toMatchObject({ code: 'SHIFTER_DIGEST_MISMATCH' });
    expect(live.state()).toBe('failed');
    expect(await store.has(sha(blob))).toBe(false);
    expect(readdirSync(join(dir, 'sha256')).filter((name) => !name.endsWith('.lock'))).toEqual([]);
  });

  it('never delivers more than the declared size', async () => {
    const blob = randomBytes(4096);
    const { source, writing, put } = startPut(sha(blob), blob.length);
    source.write(blob);
    const live = await writing;
    const follower = followBlobWrite(live, { verified: put, reopen: () => store.open(sha(blob)) });
    source.end(randomBytes(100)); // more than declared: the store refuses, the follower fails
    const read = readAll(follower);
    await expect(read).rejects.toMatchObject({ code: expect.stringMatching(/SHIFTER_(DIGEST_MISMATCH|SIZE_LIMIT)/) });
    expect(live.written()).toBeLessThanOrEqual(blob.length);
  });

  it('stops when its signal aborts, and the download can go on without it', async () => {
    const blob = randomBytes(1024 * 1024);
    const { source, writing, put } = startPut(sha(blob), blob.length);
    source.write(blob.subarray(0, 1000));
    const live = await writing;
    const controller = new AbortController();
    const follower = followBlobWrite(live, {
      verified: put,
      reopen: () => store.open(sha(blob)),
      signal: controller.signal,
    });
    expect((await readBytes(follower, 1000)).length).toBe(1000);
    const rest = readAll(follower);
    controller.abort(new Error('job cancelled'));
    await expect(rest).rejects.toThrow(/job cancelled/);
    source.end(blob.subarray(1000));
    expect(await put).toEqual({ stored: true });
  });

  it('reads the published blob when the download finished before the follower opened it', async () => {
    const blob = randomBytes(10_000);
    const { source, writing, put } = startPut(sha(blob), blob.length);
    source.end(blob);
    const live = await writing;
    await put;
    expect(existsSync(live.path)).toBe(false);
    const follower = followBlobWrite(live, { verified: put, reopen: () => store.open(sha(blob)) });
    expect((await readAll(follower)).equals(blob)).toBe(true);
  });

  it('is told about the write only by the put that writes: a concurrent put of the same digest waits', async () => {
    const blob = randomBytes(100_000);
    const first = startPut(sha(blob), blob.length);
    first.source.write(blob.subarray(0, 50_000));
    await first.writing;
    let secondWriting = false;
    const second = store.put(sha(blob), blob.length, () => Readable.from([blob]), {
      onWriting: () => (secondWriting = true),
    });
    first.source.end(blob.subarray(50_000));
    expect(await first.put).toEqual({ stored: true });
    expect(await second).toEqual({ stored: false });
    expect(secondWriting).toBe(false);
  });

  it('stores a blob larger than the background-sync step with fsync on, and a follower reads all of it', async () => {
    const synced = new FsBlobStore(join(dir, 'synced'));
    const blob = randomBytes(40 * 1024 * 1024);
    let onWriting!: (write: LiveBlobWrite) => void;
    const writing = new Promise<LiveBlobWrite>((resolve) => (onWriting = resolve));
    const source = new PassThrough();
    const put = synced.put(sha(blob), blob.length, source, { onWriting });
    for (let at = 0; at < blob.length; at += 4 * 1024 * 1024) source.write(blob.subarray(at, at + 4 * 1024 * 1024));
    source.end();
    const follower = followBlobWrite(await writing, { verified: put, reopen: () => synced.open(sha(blob)) });
    expect((await readAll(follower)).equals(blob)).toBe(true);
    expect(await put).toEqual({ stored: true });
    expect((await readAll(await synced.open(sha(blob)))).equals(blob)).toBe(true);
  });
});
