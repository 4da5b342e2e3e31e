/**
 * Proof that a registry serves a blob before a cached copy of it is used for a pull.
 *
 * The blob cache is shared by every pull of the gateway, so it holds layers of private images. A manifest is just a
 * list of digests: anyone who learns a private layer's digest can serve a manifest naming it from a registry of their
 * own. Had the cache been trusted because the digest matched, that registry would never need to hold the layer, and
 * the pull would build an image with another user's private files. So a cached blob is used for a pull only when the
 * pull's registry, asked with the pull's login, proved that it serves those very bytes:
 *
 * - The registry answers a few byte ranges of the blob, at random offsets in equal strata of it (the whole blob when
 *   it is small), and each range must equal the cached bytes at that offset. A `HEAD`, or a `200` alone, proves
 *   nothing: a hostile registry answers `200` to everything.
 * - A registry that ignores `Range` and sends the whole blob proves it by the digest and size of what it sent.
 * - A blob this pull downloaded and verified itself is proved by that download.
 * - The manifest's size of the blob must equal the cached blob's size.
 *
 * Proofs are remembered for a while (see {@link DEFAULT_BLOB_PROOF_OPTIONS}) per registry origin, repository, login
 * (user name and a hash of the password, or anonymous) and digest: they never carry over from one login to another,
 * nor from one repository to another.
 *
 * Residual risk (documented in docs/gateway-security-access.md): sampling proves that the registry holds the sampled
 * bytes; an attacker who already knows every byte of a blob except a few outside the samples could pass. Such an
 * attacker learns at most those few bytes, and each try costs a pull that fails on a miss.
 *
 * @packageDocumentation
 */
import { createHash, randomInt } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../blob-store/index.js';
import { createDigester, digestAlgorithm, parseDigest, type Digest } from '../digest/index.js';
import { IntegrityError, RegistryError } from '../errors/index.js';
import type { Descriptor } from '../manifest/index.js';
import type { ImageReference } from '../reference/index.js';

/** Who asked which registry: the scope of one proof. */
export interface BlobProofScope {
  /** Origin of the registry (`https://reg.example.org`). */
  readonly origin: string;
  /** Repository (`team/app`). */
  readonly repository: string;
  /** The login the registry client sends to it, if any. */
  readonly login?: { readonly username: string; readonly password: string } | undefined;
}

/** One answer to a ranged blob request (see {@link BlobRangeSource}). */
export interface BlobRangeAnswer {
  /** 206 for the range, 200 when the registry ignored `Range` and sent the whole blob. */
  readonly status: number;
  /** The `Content-Range` header of a 206. */
  readonly contentRange: string | undefined;
  /** The body; the reader consumes or destroys it. */
  readonly body: Readable;
}

/** What the proof needs from a registry client: ranged blob reads (errors of the registry are thrown as they are). */
export interface BlobRangeSource {
  /** `GET` the blob with `Range: bytes=start-end` (inclusive). */
  readBlobRange(
    reference: ImageReference,
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    start: number,
    end: number,
    options: { signal?: AbortSignal | undefined },
  ): Promise<BlobRangeAnswer>;
}

/** Tuning of {@link BlobProofs}. */
export interface BlobProofOptions {
  /** Ranges compared per blob (in as many equal strata of it). */
  readonly samples: number;
  /** Bytes per range. A blob of at most `samples × sampleBytes` bytes is compared whole. */
  readonly sampleBytes: number;
  /** How long a proof is remembered, ms. */
  readonly ttlMs: number;
  /** Most proofs remembered (the oldest are forgotten first). */
  readonly maxEntries: number;
}

/** Defaults of {@link BlobProofOptions}: 4 ranges of 16 KiB, remembered 10 minutes, at most 10,000 proofs. */
export const DEFAULT_BLOB_PROOF_OPTIONS: Readonly<BlobProofOptions> = Object.freeze({
  samples: 4,
  sampleBytes: 16 * 1024,
  ttlMs: 10 * 60_000,
  maxEntries: 10_000,
});

/** How a blob was proved (for tests and logs). */
export type BlobProofKind = 'remembered' | 'sampled' | 'downloaded' | 'empty';

/**
 * The byte ranges (inclusive) compared for a blob of `size` bytes: the whole blob when small, else one range of
 * `sampleBytes` at a random offset in each of `samples` equal strata.
 * @param size - blob size
 * @param options - samples and bytes per sample
 * @param random - `random(n)` gives an integer in [0, n) (default: crypto)
 */
export function proofRanges(
  size: number,
  options: Pick<BlobProofOptions, 'samples' | 'sampleBytes'>,
  random: (n: number) => number = randomInt,
): [number, number][] {
  if (size <= 0) return [];
  if (size <= options.samples * options.sampleBytes) return [[0, size - 1]];
  const ranges: [number, number][] = [];
  for (let i = 0; i < options.samples; i++) {
    const from = Math.floor((i * size) / options.samples);
    const to = Math.floor(((i + 1) * size) / options.samples);
    const start = from + random(Math.max(1, to - from - options.sampleBytes + 1));
    ranges.push([start, Math.min(size, start + options.sampleBytes) - 1]);
  }
  return ranges;
}

/**
 * Proofs that registries serve cached blobs, remembered per registry, repository, login and digest. One instance is
 * shared by the pulls of a gateway (the registry puller makes it); each {@link RegistryClient} without one makes its own.
 */
export class BlobProofs {
  readonly #options: BlobProofOptions;
  readonly #random: (n: number) => number;
  readonly #now: () => number;
  /** Proof key → epoch ms it expires. Insertion order is age order. */
  readonly #proved = new Map<string, number>();

  /**
   * @param options - see {@link DEFAULT_BLOB_PROOF_OPTIONS}
   * @param hooks - clock and randomness (tests)
   */
  constructor(
    options: Partial<BlobProofOptions> = {},
    hooks: { now?: () => number; random?: (n: number) => number } = {},
  ) {
    this.#options = { ...DEFAULT_BLOB_PROOF_OPTIONS, ...options };
    this.#random = hooks.random ?? randomInt;
    this.#now = hooks.now ?? Date.now;
  }

  /** The key of a proof: a hash, so no password is kept in memory as text longer than the pull needs it. */
  #key(scope: BlobProofScope, digest: Digest): string {
    const login = scope.login
      ? ['login', scope.login.username, createHash('sha256').update(scope.login.password).digest('hex')]
      : ['anonymous'];
    return createHash('sha256')
      .update(JSON.stringify([scope.origin, scope.repository, ...login, digest]))
      .digest('hex');
  }

  /** Remember that `scope` proved `digest` (after this pull downloaded and verified it from there). */
  remember(scope: BlobProofScope, digest: string): void {
    const key = this.#key(scope, parseDigest(digest));
    this.#proved.delete(key);
    this.#proved.set(key, this.#now() + this.#options.ttlMs);
    while (this.#proved.size > this.#options.maxEntries) this.#proved.delete(this.#proved.keys().next().value!);
  }

  /** Whether `scope` proved `digest` within the last `ttlMs`. */
  has(scope: BlobProofScope, digest: string): boolean {
    const key = this.#key(scope, parseDigest(digest));
    const until = this.#proved.get(key);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#proved.delete(key);
    return false;
  }

  /**
   * Make sure the registry of `reference`, asked as `scope`, serves the bytes `store` holds for `descriptor`.
   *
   * @returns how it was proved
   * @throws {@link IntegrityError} `SHIFTER_DIGEST_MISMATCH` when the manifest's size differs from the cached blob's;
   *   `SHIFTER_BLOB_UNPROVEN` when the registry served other bytes (or sent the whole blob and it did not verify)
   * @throws {@link RegistryError} as the registry answered (`SHIFTER_REGISTRY_BLOB_UNKNOWN` for a blob it does not
   *   serve, auth errors, …); `SHIFTER_REGISTRY_PROTOCOL` for a 206 of another range
   */
  async prove(
    source: BlobRangeSource,
    reference: ImageReference,
    descriptor: Pick<Descriptor, 'digest' | 'size'>,
    store: BlobStore,
    scope: BlobProofScope,
    signal?: AbortSignal,
  ): Promise<BlobProofKind> {
    const digest = parseDigest(descriptor.digest);
    const what = `blob ${digest} of ${reference.familiar}`;
    const cached = await store.stat(digest);
    if (!cached) throw new IntegrityError('SHIFTER_BLOB_UNPROVEN', `${what} is not in the cache to compare with`);
    if (cached.size !== descriptor.size) {
      throw new IntegrityError(
        'SHIFTER_DIGEST_MISMATCH',
        `${what}: the manifest says ${descriptor.size} bytes, the blob with that digest has ${cached.size}`,
        {
          details: { expected: descriptor.size, actual: cached.size },
        },
      );
    }
    if (this.has(scope, digest)) return 'remembered';
    const ranges = proofRanges(descriptor.size, this.#options, this.#random);
    if (ranges.length === 0) {
      // An empty blob has no content to keep private.
      this.remember(scope, digest);
      return 'empty';
    }
    let kind: BlobProofKind = 'sampled';
    for (const [start, end] of ranges) {
      const answer = await source.readBlobRange(reference, descriptor, start, end, { signal });
      if (answer.status === 200) {
        // The registry ignored Range: what it sent is the whole blob, proved by its digest.
        await verifyWhole(answer.body, digest, descriptor.size, what);
        kind = 'downloaded';
        break;
      }
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(answer.contentRange?.trim() ?? '');
      if (answer.status !== 206 || !range || Number(range[1]) !== start || Number(range[2]) !== end) {
        answer.body.destroy();
        throw new RegistryError(
          'SHIFTER_REGISTRY_PROTOCOL',
          `${what}: asked for bytes ${start}-${end}, the registry answered ${answer.status} ${answer.contentRange ?? '(no Content-Range)'}`,
        );
      }
      const served = await readExactly(answer.body, end - start + 1);
      const held = await readCached(store, cached.path, digest, start, end - start + 1);
      if (served === null || !served.equals(held)) {
        throw new IntegrityError(
          'SHIFTER_BLOB_UNPROVEN',
          `${what}: the registry does not serve the bytes the cache holds under this digest (bytes ${start}-${end} differ)`,
        );
      }
    }
    this.remember(scope, digest);
    return kind;
  }
}

/** Read exactly `length` bytes; null when the stream has fewer or more. */
async function readExactly(body: Readable, length: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    for await (const chunk of body) {
      received += (chunk as Buffer).length;
      if (received > length) return null;
      chunks.push(chunk as Buffer);
    }
  } finally {
    body.destroy();
  }
  return received === length ? Buffer.concat(chunks) : null;
}

async function verifyWhole(body: Readable, digest: Digest, size: number, what: string): Promise<void> {
  const hash = createDigester(digestAlgorithm(digest));
  let received = 0;
  try {
    for await (const chunk of body) {
      received += (chunk as Buffer).length;
      if (received > size) break;
      hash.update(chunk as Buffer);
    }
  } finally {
    body.destroy();
  }
  if (received !== size || `${digestAlgorithm(digest)}:${hash.digest('hex')}` !== digest) {
    throw new IntegrityError('SHIFTER_BLOB_UNPROVEN', `${what}: the registry sent content that is not this blob`);
  }
}

/** The cached bytes [start, start + length): read at an offset from the file, else by streaming the blob. */
async function readCached(
  store: BlobStore,
  path: string,
  digest: Digest,
  start: number,
  length: number,
): Promise<Buffer> {
  try {
    const handle = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buffer, done, length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return buffer.subarray(0, done);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && (error as NodeJS.ErrnoException).code !== 'ENOTDIR')
      throw error;
  }
  // A store whose path is not a local file: stream up to the range.
  const stream = await store.open(digest);
  const chunks: Buffer[] = [];
  let position = 0;
  try {
    for await (const raw of stream) {
      const chunk = raw as Buffer;
      const from = Math.max(0, start - position);
      const to = Math.min(chunk.length, start + length - position);
      if (to > from) chunks.push(chunk.subarray(from, to));
      position += chunk.length;
      if (position >= start + length) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks);
}
