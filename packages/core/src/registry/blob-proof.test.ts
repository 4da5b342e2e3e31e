import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../blob-store/index.js';
import { parseReference } from '../reference/index.js';
import { BlobProofs, proofRanges, type BlobRangeAnswer, type BlobRangeSource } from './blob-proof.js';

const reference = parseReference('127.0.0.1:5999/attacker/app:1');
const scope = { origin: 'http://127.0.0.1:5999', repository: 'attacker/app' };

/** A registry as a function of the requested range; records what it was asked. */
function registry(
  answer: (start: number, end: number) => BlobRangeAnswer,
): BlobRangeSource & { asked: [number, number][] } {
  const asked: [number, number][] = [];
  return {
    asked,
    async readBlobRange(_reference, _descriptor, start, end) {
      asked.push([start, end]);
      return answer(start, end);
    },
  };
}

const partial = (bytes: Buffer, start: number, end: number): BlobRangeAnswer => ({
  status: 206,
  contentRange: `bytes ${start}-${end}/${bytes.length}`,
  body: Readable.from([bytes.subarray(start, end + 1)]),
});

describe('BlobProofs', () => {
  let dir: string;
  let store: FsBlobStore;
  const secret = randomBytes(200_000);
  const digest = `sha256:${createHash('sha256').update(secret).digest('hex')}`;
  const descriptor = { digest, size: secret.length };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'shifter-proof-'));
    store = new FsBlobStore(dir, { fsync: false });
    await store.put(digest, secret.length, Readable.from([secret]));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('samples a range in each stratum of a large blob, or the whole of a small one', () => {
    const ranges = proofRanges(1_000_000, { samples: 4, sampleBytes: 1000 }, (n) => n - 1);
    expect(ranges).toHaveLength(4);
    ranges.forEach(([start, end], i) => {
      expect(end - start + 1).toBe(1000);
      expect(start).toBeGreaterThanOrEqual(i * 250_000);
      expect(end).toBeLessThan((i + 1) * 250_000);
    });
    expect(proofRanges(3000, { samples: 4, sampleBytes: 1000 })).toEqual([[0, 2999]]);
    expect(proofRanges(0, { samples: 4, sampleBytes: 1000 })).toEqual([]);
  });

  it('accepts a registry that serves the cached bytes, and remembers it for that scope only', async () => {
    const proofs = new BlobProofs();
    const honest = registry((start, end) => partial(secret, start, end));
    expect(await proofs.prove(honest, reference, descriptor, store, scope)).toBe('sampled');
    expect(honest.asked).toHaveLength(4);
    expect(await proofs.prove(honest, reference, descriptor, store, scope)).toBe('remembered');
    expect(honest.asked).toHaveLength(4);
    // Another login, another repository, another registry: each proves again.
    expect(proofs.has({ ...scope, login: { username: 'alice', password: 'x' } }, digest)).toBe(false);
    expect(proofs.has({ ...scope, repository: 'attacker/other' }, digest)).toBe(false);
    expect(proofs.has({ ...scope, origin: 'http://127.0.0.1:5998' }, digest)).toBe(false);
    proofs.remember({ ...scope, login: { username: 'alice', password: 'right' } }, digest);
    expect(proofs.has({ ...scope, login: { username: 'alice', password: 'wrong' } }, digest)).toBe(false);
  });

  it('refuses a registry that names the digest but serves other bytes, or a 200 of anything', async () => {
    const proofs = new BlobProofs();
    const liar = registry((start, end) => partial(randomBytes(secret.length), start, end));
    await expect(proofs.prove(liar, reference, descriptor, store, scope)).rejects.toMatchObject({
      code: 'SHIFTER_BLOB_UNPROVEN',
    });
    const yesMan = registry(() => ({ status: 200, contentRange: undefined, body: Readable.from([Buffer.from('{}')]) }));
    await expect(proofs.prove(yesMan, reference, descriptor, store, scope)).rejects.toMatchObject({
      code: 'SHIFTER_BLOB_UNPROVEN',
    });
    const wrongRange = registry((start, end) => partial(secret, start + 1, end + 1));
    await expect(proofs.prove(wrongRange, reference, descriptor, store, scope)).rejects.toMatchObject({
      code: 'SHIFTER_REGISTRY_PROTOCOL',
    });
    const short = registry((start, end) => ({
      ...partial(secret, start, end - 1),
      contentRange: `bytes ${start}-${end}/*`,
    }));
    await expect(proofs.prove(short, reference, descriptor, store, scope)).rejects.toMatchObject({
      code: 'SHIFTER_BLOB_UNPROVEN',
    });
    expect(proofs.has(scope, digest)).toBe(false);
  });

  it('accepts the whole blob from a registry that ignores Range, by its digest', async () => {
    const proofs = new BlobProofs();
    const whole = registry(() => ({
      status: 200,
      contentRange: undefined,
      body: Readable.from([secret.subarray(0, 1000), secret.subarray(1000)]),
    }));
    expect(await proofs.prove(whole, reference, descriptor, store, scope)).toBe('downloaded');
    expect(whole.asked).toHaveLength(1);
  });

  it('refuses a manifest whose size differs from the cached blob', async () => {
    const proofs = new BlobProofs();
    const honest = registry((start, end) => partial(secret, start, end));
    await expect(
      proofs.prove(honest, reference, { digest, size: secret.length + 1 }, store, scope),
    ).rejects.toMatchObject({ code: 'SHIFTER_DIGEST_MISMATCH' });
    expect(honest.asked).toHaveLength(0);
  });

  it('forgets proofs after their time and beyond its capacity', async () => {
    let clock = 0;
    const proofs = new BlobProofs({ ttlMs: 1000, maxEntries: 2 }, { now: () => clock });
    proofs.remember(scope, digest);
    clock = 999;
    expect(proofs.has(scope, digest)).toBe(true);
    clock = 1000;
    expect(proofs.has(scope, digest)).toBe(false);
    proofs.remember({ ...scope, repository: 'a' }, digest);
    proofs.remember({ ...scope, repository: 'b' }, digest);
    proofs.remember({ ...scope, repository: 'c' }, digest);
    expect(proofs.has({ ...scope, repository: 'a' }, digest)).toBe(false);
    expect(proofs.has({ ...scope, repository: 'c' }, digest)).toBe(true);
  });
});
