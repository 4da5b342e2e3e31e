import { createHash, type Hash } from 'node:crypto';
import { IntegrityError } from '../errors/index.js';

/** A validated content digest (`sha256:<64 hex>` or `sha512:<128 hex>`). Obtain one from {@link parseDigest}. */
export type Digest = string & { readonly __brand: 'Digest' };

/** Digest algorithms Shifter verifies. */
export type DigestAlgorithm = 'sha256' | 'sha512';

/** Hex length of each supported algorithm. */
export const DIGEST_HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha512: 128 };

const DIGEST_PATTERN = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/**
 * Validate a digest string.
 * @param value - e.g. `sha256:2c26b4…`
 * @returns the same string, branded
 * @throws {@link IntegrityError} `SHIFTER_DIGEST_INVALID` when malformed or not sha256/sha512 (other algorithms
 *   would make content unverifiable, so they are refused rather than trusted)
 */
export function parseDigest(value: unknown): Digest {
  if (typeof value === 'string' && DIGEST_PATTERN.test(value)) return value as Digest;
  const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 150)) : typeof value;
  throw new IntegrityError(
    'SHIFTER_DIGEST_INVALID',
    `malformed or unsupported digest ${shown} (want sha256:<64 hex> or sha512:<128 hex>)`,
    {
      details: { digest: typeof value === 'string' ? value.slice(0, 150) : undefined },
    },
  );
}

/** Whether a value is a well-formed supported digest. */
export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST_PATTERN.test(value);
}

/** The algorithm part of a digest. */
export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

/** The hex part of a digest (the image id when the digest is a platform manifest's). */
export function digestHex(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** A streaming hasher for the given algorithm. */
export function createDigester(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

/**
 * Digest of a buffer.
 * @param bytes - the exact bytes (never re-serialised JSON)
 * @param algorithm - sha256 by default
 */
export function computeDigest(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
}

/**
 * Check a buffer against an expected digest (same algorithm as the expected one).
 * @param bytes - content as received
 * @param expected - the digest it must have
 * @param what - description used in the error (e.g. `manifest of test/busybox:latest`)
 * @throws {@link IntegrityError} `SHIFTER_DIGEST_MISMATCH`
 */
export function verifyDigest(bytes: Uint8Array, expected: Digest, what: string): void {
  const actual = computeDigest(bytes, digestAlgorithm(expected));
  if (actual !== expected) {
    throw new IntegrityError(
      'SHIFTER_DIGEST_MISMATCH',
      `${what}: digest ${actual} does not match expected ${expected}`,
      {
        details: { expected, actual },
      },
    );
  }
}
