import { Transform, type TransformCallback, type Readable } from 'node:stream';
import { IntegrityError } from '../errors/index.js';
import { createDigester, digestAlgorithm, type Digest } from './digest.js';

/** What a {@link VerifyingStream} checks. */
export interface VerifyingStreamOptions {
  /** Expected digest of the whole stream. */
  digest: Digest;
  /** Expected byte count; more bytes fail as soon as they arrive, fewer fail at EOF. */
  size: number;
  /** Short description for error messages (e.g. `layer sha256:… of test/busybox`). */
  what?: string;
}

/**
 * A pass-through stream that hashes and counts every byte and fails when the content is not what was promised.
 *
 * Contract: bytes are passed on as they arrive, so a consumer must treat its output as untrusted until the stream
 * ends without error (write to a temp file, publish on `finish`). Overlong input fails immediately
 * (`SHIFTER_DIGEST_MISMATCH`, nothing past the declared size is passed on); a short stream or a wrong hash fails
 * at EOF with `SHIFTER_DIGEST_MISMATCH`.
 */
export class VerifyingStream extends Transform {
  readonly #hash;
  readonly #options: VerifyingStreamOptions;
  #received = 0;

  constructor(options: VerifyingStreamOptions) {
    super();
    if (!Number.isSafeInteger(options.size) || options.size < 0) {
      throw new IntegrityError('SHIFTER_DIGEST_MISMATCH', `invalid declared size ${String(options.size)}`);
    }
    this.#options = options;
    this.#hash = createDigester(digestAlgorithm(options.digest));
  }

  /** Bytes seen so far. */
  get bytesReceived(): number {
    return this.#received;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#received += chunk.length;
    if (this.#received > this.#options.size) {
      callback(this.#mismatch(`more than the declared ${this.#options.size} bytes`));
      return;
    }
    this.#hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#received !== this.#options.size) {
      callback(this.#mismatch(`${this.#received} bytes, declared ${this.#options.size}`));
      return;
    }
    const actual = `${digestAlgorithm(this.#options.digest)}:${this.#hash.digest('hex')}`;
    if (actual !== this.#options.digest) {
      callback(this.#mismatch(`digest ${actual}`));
      return;
    }
    callback();
  }

  #mismatch(problem: string): IntegrityError {
    const what = this.#options.what ?? `content ${this.#options.digest}`;
    return new IntegrityError(
      'SHIFTER_DIGEST_MISMATCH',
      `${what}: got ${problem}, expected ${this.#options.digest} (${this.#options.size} bytes)`,
      {
        details: { digest: this.#options.digest, size: this.#options.size, received: this.#received },
      },
    );
  }
}

/**
 * Create a {@link VerifyingStream}.
 * @param options - expected digest and size
 */
export function createVerifyingStream(options: VerifyingStreamOptions): VerifyingStream {
  return new VerifyingStream(options);
}

/**
 * Read a whole stream into memory, refusing more than `maxBytes`.
 *
 * The source is destroyed when the cap is crossed, so the remaining bytes are never buffered.
 * @param source - stream to drain; always consumed or destroyed
 * @param maxBytes - cap
 * @param what - description used in the error
 * @throws {@link IntegrityError} `SHIFTER_SIZE_LIMIT` when the cap is crossed
 */
export async function readAllLimited(source: Readable, maxBytes: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of source) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      total += buffer.length;
      if (total > maxBytes) {
        throw new IntegrityError('SHIFTER_SIZE_LIMIT', `${what} is larger than the limit of ${maxBytes} bytes`, {
          details: { limit: maxBytes },
        });
      }
      chunks.push(buffer);
    }
  } catch (error) {
    source.destroy();
    throw error;
  }
  return Buffer.concat(chunks, total);
}
