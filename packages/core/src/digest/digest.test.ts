import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  computeDigest,
  digestAlgorithm,
  digestHex,
  isDigest,
  parseDigest,
  verifyDigest,
  type Digest,
} from './digest.js';
import { createVerifyingStream, readAllLimited } from './verifying-stream.js';

const data = Buffer.from('hello shifter\n');
const sha256 = `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
const sha512 = `sha512:${createHash('sha512').update(data).digest('hex')}` as Digest;

async function drain(chunks: Buffer[], options: { digest: Digest; size: number }): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    createVerifyingStream(options),
    new Writable({
      write(chunk: Buffer, _e, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('parseDigest', () => {
  it.each([sha256, sha512])('accepts %s', (value) => {
    expect(parseDigest(value)).toBe(value);
    expect(isDigest(value)).toBe(true);
  });
  it.each([
    ['empty', ''],
    ['no algorithm', 'a'.repeat(64)],
    ['md5', `md5:${'a'.repeat(32)}`],
    ['uppercase hex', `sha256:${'A'.repeat(64)}`],
    ['short', 'sha256:abc'],
    ['trailing newline', `${sha256}\n`],
    ['number', 42],
    ['path traversal', 'sha256:../../etc/passwd'],
  ])('refuses %s with SHIFTER_DIGEST_INVALID', (_name, value) => {
    expect(() => parseDigest(value)).toThrow(expect.objectContaining({ code: 'SHIFTER_DIGEST_INVALID' }));
    expect(isDigest(value)).toBe(false);
  });
  it('splits algorithm and hex', () => {
    expect(digestAlgorithm(sha512)).toBe('sha512');
    expect(digestHex(sha256)).toHaveLength(64);
  });
});

describe('computeDigest / verifyDigest', () => {
  it('hashes with the expected algorithm', () => {
    expect(computeDigest(data)).toBe(sha256);
    expect(computeDigest(data, 'sha512')).toBe(sha512);
    expect(() => verifyDigest(data, sha512, 'x')).not.toThrow();
  });
  it('reports a mismatch', () => {
    expect(() => verifyDigest(Buffer.from('other'), sha256, 'manifest')).toThrow(
      expect.objectContaining({
        code: 'SHIFTER_DIGEST_MISMATCH',
        message: expect.stringMatching(/^manifest: digest sha256:/),
      }),
    );
  });
});

describe('VerifyingStream', () => {
  it('passes verified content through unchanged, across chunk boundaries', async () => {
    expect(await drain([data.subarray(0, 3), data.subarray(3)], { digest: sha256, size: data.length })).toEqual(data);
    expect(await drain([data], { digest: sha512, size: data.length })).toEqual(data);
  });
  it('fails on wrong content of the right size', async () => {
    const wrong = Buffer.from(data);
    wrong[0] = 0x48;
    await expect(drain([wrong], { digest: sha256, size: data.length })).rejects.toMatchObject({
      code: 'SHIFTER_DIGEST_MISMATCH',
    });
  });
  it('fails on short content at EOF', async () => {
    await expect(drain([data.subarray(0, 5)], { digest: sha256, size: data.length })).rejects.toMatchObject({
      code: 'SHIFTER_DIGEST_MISMATCH',
      details: { received: 5 },
    });
  });
  it('fails as soon as content exceeds the declared size and passes nothing beyond it', async () => {
    const out: Buffer[] = [];
    const stream = createVerifyingStream({ digest: sha256, size: 4 });
    stream.on('data', (chunk: Buffer) => out.push(chunk));
    const done = new Promise((_resolve, reject) => stream.on('error', reject));
    stream.write(data.subarray(0, 4));
    stream.write(data.subarray(4));
    await expect(done).rejects.toMatchObject({ code: 'SHIFTER_DIGEST_MISMATCH' });
    expect(Buffer.concat(out).length).toBeLessThanOrEqual(4);
  });
  it('refuses a nonsensical declared size', () => {
    expect(() => createVerifyingStream({ digest: sha256, size: -1 })).toThrow(/invalid declared size/);
  });
});

describe('readAllLimited', () => {
  it('reads up to the limit', async () => {
    expect(await readAllLimited(Readable.from([data]), data.length, 'x')).toEqual(data);
  });
  it('refuses beyond the limit with SHIFTER_SIZE_LIMIT and destroys the source', async () => {
    const source = Readable.from([data, data, data]);
    await expect(readAllLimited(source, data.length + 1, 'token answer')).rejects.toMatchObject({
      code: 'SHIFTER_SIZE_LIMIT',
      message: expect.stringMatching(/^token answer/),
    });
    expect(source.destroyed).toBe(true);
  });
});
