import { randomBytes } from 'node:crypto';
import { constants as fsConstants, createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShifterError, StoreError, NotFoundError } from '../errors/index.js';
import { createVerifyingStream, digestAlgorithm, digestHex, parseDigest, type Digest } from '../digest/index.js';
import type { BlobPutOptions, BlobPutResult, BlobSource, BlobStat, BlobStore, LiveBlobWrite } from './blob-store.js';

/** How often a writer refreshes its lock file's mtime, so waiters can tell a live writer from a dead one. */
export const BLOB_LOCK_HEARTBEAT_MS = 2_000;
/** A lock whose mtime is older than this is considered abandoned (its writer died or its host is gone). */
export const BLOB_LOCK_STALE_MS = 30_000;

/** Options of {@link FsBlobStore}. */
export interface FsBlobStoreOptions {
  /** See {@link BLOB_LOCK_STALE_MS}. */
  lockStaleMs?: number;
  /** See {@link BLOB_LOCK_HEARTBEAT_MS}. */
  lockHeartbeatMs?: number;
  /** Call fsync on blobs and directories before publishing (default true; tests may turn it off). */
  fsync?: boolean;
  /**
   * How a `put` waiting for another writer's lock waits between two polls (default: a timer that rejects when the
   * signal aborts). Tests inject one to step through the wait without spending wall-clock time.
   */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

function ioError(message: string, cause: unknown): StoreError {
  return new StoreError('SHIFTER_IO_FAILED', `${message}: ${(cause as Error).message ?? String(cause)}`, { cause });
}

function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return isErrno(error, 'EPERM');
  }
}

/**
 * A {@link BlobStore} on a local (or shared) file system, laid out as `<dir>/sha256/<hex>` (and `sha512/<hex>`).
 *
 * Concurrency: within one process an in-flight map makes concurrent `put`s of a digest share one download. Across
 * processes (workers sharing a cache directory) a lock file `<hex>.lock`, created with O_EXCL, elects one writer;
 * the others poll until the blob appears. The writer refreshes the lock's mtime every
 * {@link BLOB_LOCK_HEARTBEAT_MS}; a lock that is older than {@link BLOB_LOCK_STALE_MS}, or whose writer pid on this
 * host is dead, is broken. Content is written to `.<hex>.<random>.tmp`, verified, fsynced and renamed into place,
 * so readers never see partial blobs.
 *
 * Permissions: directories are created 0700 and blobs 0600, because the cache may hold layers of private images.
 */
export class FsBlobStore implements BlobStore {
  readonly #dir: string;
  readonly #inFlight = new Map<string, Promise<BlobPutResult>>();
  readonly #lockStaleMs: number;
  readonly #heartbeatMs: number;
  readonly #fsync: boolean;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  /**
   * @param dir - cache directory; created on first write
   * @param options - lock timing and fsync policy
   */
  constructor(dir: string, options: FsBlobStoreOptions = {}) {
    this.#dir = dir;
    this.#lockStaleMs = options.lockStaleMs ?? BLOB_LOCK_STALE_MS;
    this.#heartbeatMs = options.lockHeartbeatMs ?? BLOB_LOCK_HEARTBEAT_MS;
    this.#fsync = options.fsync ?? true;
    this.#sleep = options.sleep ?? (async (ms, signal) => void (await sleep(ms, undefined, signal ? { signal } : {})));
  }

  /** The cache directory. */
  get directory(): string {
    return this.#dir;
  }

  path(digest: string): string {
    const valid = parseDigest(digest);
    return join(this.#dir, digestAlgorithm(valid), digestHex(valid));
  }

  async has(digest: string): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  async stat(digest: string): Promise<BlobStat | undefined> {
    const path = this.path(digest);
    try {
      const info = await stat(path);
      return info.isFile() ? { size: info.size, path } : undefined;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return undefined;
      throw ioError(`cannot stat blob ${digest}`, error);
    }
  }

  async open(digest: string): Promise<Readable> {
    const path = this.path(digest);
    try {
      const handle = await open(path, 'r');
      return createReadStream(path, { fd: handle, highWaterMark: 1024 * 1024 });
    } catch (error) {
      if (isErrno(error, 'ENOENT'))
        throw new NotFoundError('SHIFTER_BLOB_NOT_FOUND', `blob ${digest} is not in the cache ${this.#dir}`, {
          details: { digest },
        });
      throw ioError(`cannot open blob ${digest}`, error);
    }
  }

  async delete(digest: string): Promise<boolean> {
    try {
      await unlink(this.path(digest));
      return true;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return false;
      throw ioError(`cannot delete blob ${digest}`, error);
    }
  }

  async put(digest: string, size: number, source: BlobSource, options: BlobPutOptions = {}): Promise<BlobPutResult> {
    let valid: Digest;
    try {
      valid = parseDigest(digest);
    } catch (error) {
      destroySource(source);
      throw error;
    }
    for (;;) {
      const running = this.#inFlight.get(valid);
      if (running === undefined) break;
      // Another caller in this process is storing it: share its outcome. If it failed, try ourselves (its failure
      // may have been its own source's).
      await running.catch(() => undefined);
      if (await this.has(valid)) {
        destroySource(source);
        return { stored: false };
      }
    }
    const attempt = this.#putExclusive(valid, size, source, options);
    this.#inFlight.set(valid, attempt);
    try {
      return await attempt;
    } finally {
      if (this.#inFlight.get(valid) === attempt) this.#inFlight.delete(valid);
    }
  }

  async #putExclusive(
    digest: Digest,
    size: number,
    source: BlobSource,
    options: BlobPutOptions,
  ): Promise<BlobPutResult> {
    const finalPath = this.path(digest);
    const directory = join(this.#dir, digestAlgorithm(digest));
    try {
      await mkdir(directory, { recursive: true, mode: 0o700 });
    } catch (error) {
      destroySource(source);
      throw ioError(`cannot create cache directory ${directory}`, error);
    }
    const lockPath = `${finalPath}.lock`;
    let pollMs = 50;
    for (;;) {
      if (await this.has(digest)) {
        destroySource(source);
        return { stored: false };
      }
      if (options.signal?.aborted) {
        destroySource(source);
        throw options.signal.reason ?? new Error('aborted');
      }
      const lock = await this.#tryLock(lockPath);
      if (lock) {
        try {
          // The previous lock holder may have published between our has() and our lock.
          if (await this.has(digest)) {
            destroySource(source);
            return { stored: false };
          }
          await this.#write(digest, size, source, finalPath, options);
          return { stored: true };
        } finally {
          await lock.release();
        }
      }
      await this.#sleep(pollMs, options.signal).catch((error: unknown) => {
        destroySource(source);
        throw options.signal?.aborted ? (options.signal.reason as unknown) : error;
      });
      pollMs = Math.min(pollMs * 2, 500);
    }
  }

  async #tryLock(lockPath: string): Promise<{ release(): Promise<void> } | undefined> {
    const owner = `${hostname()} ${process.pid}\n`;
    try {
      const handle = await open(lockPath, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
      await handle.writeFile(owner);
      await handle.close();
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) throw ioError(`cannot create lock ${lockPath}`, error);
      await this.#breakIfStale(lockPath);
      return undefined;
    }
    const heartbeat = setInterval(() => {
      const now = new Date();
      utimes(lockPath, now, now).catch(() => undefined);
    }, this.#heartbeatMs);
    heartbeat.unref();
    return {
      release: async () => {
        clearInterval(heartbeat);
        await unlink(lockPath).catch(() => undefined);
      },
    };
  }

  async #breakIfStale(lockPath: string): Promise<void> {
    let stale = false;
    try {
      const [info, content] = await Promise.all([stat(lockPath), readFile(lockPath, 'utf8')]);
      const [host, pidText] = content.trim().split(' ');
      const pid = Number(pidText);
      if (Date.now() - info.mtimeMs > this.#lockStaleMs) stale = true;
      else if (host === hostname() && Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid))
        stale = true;
    } catch {
      return; // vanished or half-written: the next round decides
    }
    if (!stale) return;
    // Rename first so two waiters breaking the same lock cannot both delete a fresh lock created in between.
    const grave = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
    try {
      await rename(lockPath, grave);
      await unlink(grave);
    } catch {
      // someone else broke it
    }
  }

  async #write(
    digest: Digest,
    size: number,
    source: BlobSource,
    finalPath: string,
    options: BlobPutOptions,
  ): Promise<void> {
    const tempPath = join(
      this.#dir,
      digestAlgorithm(digest),
      `.${digestHex(digest)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    const input = typeof source === 'function' ? await source() : source;
    const handle = await open(tempPath, 'wx', 0o600).catch((error: unknown) => {
      input.destroy();
      throw ioError(`cannot create ${tempPath}`, error);
    });
    let published = false;
    const live = new LiveWrite(digest, size, tempPath);
    try {
      // The sink owns the handle from here: it fsyncs (when asked) and closes it before pipeline resolves.
      const output = new FileSink(handle, this.#fsync, live);
      if (options.onWriting) {
        try {
          options.onWriting(live);
        } catch {
          // a follower must not break the download
        }
      }
      await pipeline(
        input,
        createVerifyingStream({ digest, size, what: options.what ?? `blob ${digest}` }),
        output,
        options.signal ? { signal: options.signal } : {},
      );
      await rename(tempPath, finalPath);
      published = true;
      live.settle('published');
      if (this.#fsync) await fsyncDirectory(join(this.#dir, digestAlgorithm(digest)));
    } catch (error) {
      if (!published) live.settle('failed');
      input.destroy();
      if (!published) {
        await handle.close().catch(() => undefined);
        await unlink(tempPath).catch(() => undefined);
      }
      if (ShifterError.isInstance(error) || (error as Error).name === 'AbortError') throw error;
      if (isErrno(error, 'ENOSPC') || isErrno(error, 'EIO') || isErrno(error, 'EDQUOT'))
        throw ioError(`cannot write blob ${digest}`, error);
      throw error;
    }
  }
}

/** The {@link LiveBlobWrite} of one `#write`: counts the bytes the sink wrote and wakes followers. */
class LiveWrite implements LiveBlobWrite {
  #written = 0;
  #state: 'writing' | 'published' | 'failed' = 'writing';
  #wake: Array<() => void> = [];

  constructor(
    readonly digest: string,
    readonly size: number,
    readonly path: string,
  ) {}

  written(): number {
    return this.#written;
  }

  state(): 'writing' | 'published' | 'failed' {
    return this.#state;
  }

  changed(signal?: AbortSignal): Promise<void> {
    if (this.#state !== 'writing') return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal!.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#wake.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  /** `bytes` more are in the file. */
  advance(bytes: number): void {
    this.#written += bytes;
    this.#notify();
  }

  settle(state: 'published' | 'failed'): void {
    if (this.#state !== 'writing') return;
    this.#state = state;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const resolve of wake) resolve();
  }
}

/** With fsync on, a blob's written bytes are flushed in the background each time this many more are dirty. */
const BACKGROUND_SYNC_BYTES = 32 * 1024 * 1024;

/**
 * Appends to an open file, counting into a {@link LiveWrite} after each write completed; fsyncs and closes at the end.
 * With fsync on, it also starts an fdatasync in the background (never waited for while writing, at most one at a
 * time) after every {@link BACKGROUND_SYNC_BYTES}, so that the final fsync — which a pull waits for after the last
 * byte arrived — has little left to write.
 */
class FileSink extends Writable {
  readonly #handle: FileHandle;
  readonly #fsync: boolean;
  readonly #live: LiveWrite;
  #unsynced = 0;
  #syncing: Promise<void> | undefined;

  constructor(handle: FileHandle, fsync: boolean, live: LiveWrite) {
    super({ highWaterMark: 1024 * 1024 });
    this.#handle = handle;
    this.#fsync = fsync;
    this.#live = live;
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#append(chunks.map((entry) => entry.chunk)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    (async () => {
      await this.#syncing;
      if (this.#fsync) await this.#handle.sync();
      await this.#handle.close();
    })().then(() => callback(), callback);
  }

  async #append(buffers: Buffer[]): Promise<void> {
    let pending = buffers;
    while (pending.length > 0) {
      const { bytesWritten } = await this.#handle.writev(pending);
      this.#live.advance(bytesWritten);
      this.#unsynced += bytesWritten;
      if (this.#fsync && this.#unsynced >= BACKGROUND_SYNC_BYTES && this.#syncing === undefined) {
        this.#unsynced = 0;
        // Errors here are not lost: the final fsync fails the same way.
        this.#syncing = this.#handle
          .datasync()
          .catch(() => undefined)
          .finally(() => (this.#syncing = undefined));
      }
      // Short writes are rare on regular files; continue with what is left.
      let skip = bytesWritten;
      const rest: Buffer[] = [];
      for (const buffer of pending) {
        if (skip >= buffer.length) skip -= buffer.length;
        else {
          rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
          skip = 0;
        }
      }
      pending = rest;
    }
  }
}

async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function destroySource(source: BlobSource): void {
  if (typeof source !== 'function') source.destroy();
}
