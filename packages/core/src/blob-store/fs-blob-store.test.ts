import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rename, rm, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeBlobStoreContract } from '../testing/contracts/blob-store-contract.js';
import { FsBlobStore } from './fs-blob-store.js';

describeBlobStoreContract('FsBlobStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shifter-blobs-'));
  return {
    store: new FsBlobStore(dir, { fsync: false }),
    peer: new FsBlobStore(dir, { fsync: false }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('FsBlobStore', () => {
  let dir: string;
  const bytes = Buffer.from('fs blob store');
  const hex = createHash('sha256').update(bytes).digest('hex');
  const digest = `sha256:${hex}`;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shifter-blobs-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lays blobs out as <algorithm>/<hex>, private to the owner, with no temp or lock files left', async () => {
    const store = new FsBlobStore(dir);
    await store.put(digest, bytes.length, Readable.from([bytes]));
    expect(store.path(digest)).toBe(join(dir, 'sha256', hex));
    expect((await stat(join(dir, 'sha256', hex))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'sha256'))).mode & 0o777).toBe(0o700);
    expect(await readdir(join(dir, 'sha256'))).toEqual([hex]);
  });

  it('leaves no temp file after a failed write', async () => {
    const store = new FsBlobStore(dir, { fsync: false });
    await expect(store.put(digest, bytes.length, Readable.from([Buffer.from('nope')]))).rejects.toMatchObject({
      code: 'SHIFTER_DIGEST_MISMATCH',
    });
    expect(await readdir(join(dir, 'sha256'))).toEqual([]);
  });

  it('breaks a lock whose writer process is dead', async () => {
    await mkdir(join(dir, 'sha256'), { recursive: true });
    // PID 2^22+1 is above Linux's pid_max limit, so it cannot be alive.
    await writeFile(join(dir, 'sha256', `${hex}.lock`), `${hostname()} ${2 ** 22 + 1}\n`);
    const store = new FsBlobStore(dir, { fsync: false });
    expect(await store.put(digest, bytes.length, Readable.from([bytes]))).toEqual({ stored: true });
  });

  it('breaks a lock that stopped being refreshed, even from another host', async () => {
    await mkdir(join(dir, 'sha256'), { recursive: true });
    const lock = join(dir, 'sha256', `${hex}.lock`);
    await writeFile(lock, `other-host.example 1234\n`);
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const store = new FsBlobStore(dir, { fsync: false, lockStaleMs: 10_000 });
    expect(await store.put(digest, bytes.length, Readable.from([bytes]))).toEqual({ stored: true });
  });

  it('waits for a live lock holder and then reports the blob as already stored', async () => {
    await mkdir(join(dir, 'sha256'), { recursive: true });
    const lock = join(dir, 'sha256', `${hex}.lock`);
    await writeFile(lock, `${hostname()} ${process.pid}\n`);
    // The "other process" finishes while we wait, as FsBlobStore does: publishes the blob (rename), then drops its
    // lock. It happens in the waiter's first poll interval, so the waiter has seen the lock and is waiting.
    const waits: number[] = [];
    const waiter = new FsBlobStore(dir, {
      fsync: false,
      sleep: async (ms) => {
        waits.push(ms);
        if (waits.length > 1) return;
        await writeFile(join(dir, 'sha256', `.${hex}.other.tmp`), bytes);
        await rename(join(dir, 'sha256', `.${hex}.other.tmp`), join(dir, 'sha256', hex));
        await rm(lock);
      },
    });
    let opened = 0;
    const pending = waiter.put(digest, bytes.length, () => {
      opened += 1;
      return Readable.from([bytes]);
    });
    expect(await pending).toEqual({ stored: false });
    expect(waits).toEqual([50]);
    expect(opened).toBe(0);
  });

  it('stops waiting when aborted', async () => {
    await mkdir(join(dir, 'sha256'), { recursive: true });
    await writeFile(join(dir, 'sha256', `${hex}.lock`), `${hostname()} ${process.pid}\n`);
    const controller = new AbortController();
    // The caller gives up while the store waits for the lock holder (during its first poll interval).
    const store = new FsBlobStore(dir, {
      fsync: false,
      sleep: (ms, signal) => {
        controller.abort(new Error('cancelled by test'));
        return new Promise((_, reject) =>
          signal?.aborted
            ? reject(signal.reason as Error)
            : setImmediate(() => reject(new Error(`not aborted after ${ms} ms`))),
        );
      },
    });
    const pending = store.put(digest, bytes.length, () => Readable.from([bytes]), { signal: controller.signal });
    await expect(pending).rejects.toThrow(/cancelled by test/);
  });
});
