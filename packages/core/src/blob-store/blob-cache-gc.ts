/**
 * Garbage collection of the blob cache (`storage.cacheMaxBytes`).
 *
 * The cache is `<cacheDir>/<algorithm>/<hex>`, one file per blob. After each pull the gateway removes the least
 * recently used blobs (oldest of access and modification time; the pull that just finished touches its own) until
 * the total is at most the limit. Blobs used within the grace period are never removed, so a pull that is still
 * reading a blob it found in the cache does not lose it; the cache may stay above the limit while such blobs are
 * young. Lock files, partial downloads and anything not named like a blob are left alone. Removing a blob another
 * process has open is safe: its reader keeps the bytes until it closes them.
 *
 * @packageDocumentation
 */
import { readdir, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';

/** Blobs used more recently than this are kept even over the limit (default of {@link CollectOptions.graceMs}). */
export const BLOB_GC_GRACE_MS = 60 * 60_000;

/** Options of {@link collectBlobCache}. */
export interface CollectOptions {
  /** Largest total size to leave, bytes. */
  readonly maxBytes: number;
  /** Digests (`sha256:…`) to keep and mark as just used. */
  readonly keep?: Iterable<string>;
  /** Blobs used within this many ms are kept (default {@link BLOB_GC_GRACE_MS}). */
  readonly graceMs?: number;
  /** Clock (tests). */
  readonly now?: () => number;
}

/** What one collection did. */
export interface CollectResult {
  /** Bytes in blobs before. */
  readonly bytesBefore: number;
  /** Bytes in blobs after. */
  readonly bytesAfter: number;
  /** Digests removed. */
  readonly removed: string[];
}

const BLOB_NAME = /^[0-9a-f]{64,128}$/;
const running = new Map<string, Promise<unknown>>();

/**
 * Remove least recently used blobs until the cache fits `maxBytes`. Runs of one directory in this process are
 * serialised; runs in several processes at once only race to unlink the same files, which is harmless.
 * @param dir - the cache directory (`storage.cacheDir`)
 * @param options - limit, digests to keep, grace period
 */
export async function collectBlobCache(dir: string, options: CollectOptions): Promise<CollectResult> {
  const previous = running.get(dir) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(() => collect(dir, options));
  running.set(dir, next);
  try {
    return await next;
  } finally {
    if (running.get(dir) === next) running.delete(dir);
  }
}

async function collect(dir: string, options: CollectOptions): Promise<CollectResult> {
  const now = (options.now ?? Date.now)();
  const grace = options.graceMs ?? BLOB_GC_GRACE_MS;
  const keep = new Set<string>();
  for (const digest of options.keep ?? []) {
    keep.add(digest);
    const [algorithm, hex] = digest.split(':');
    if (!algorithm || !hex) continue;
    const seconds = now / 1000;
    await utimes(join(dir, algorithm, hex), seconds, seconds).catch(() => undefined);
  }
  const blobs: { digest: string; path: string; size: number; used: number }[] = [];
  for (const algorithm of await readdir(dir).catch(() => [] as string[])) {
    if (!/^[a-z0-9]+$/.test(algorithm)) continue;
    for (const name of await readdir(join(dir, algorithm)).catch(() => [] as string[])) {
      if (!BLOB_NAME.test(name)) continue;
      const path = join(dir, algorithm, name);
      const info = await stat(path).catch(() => null);
      if (!info?.isFile()) continue;
      blobs.push({ digest: `${algorithm}:${name}`, path, size: info.size, used: Math.max(info.atimeMs, info.mtimeMs) });
    }
  }
  const bytesBefore = blobs.reduce((sum, blob) => sum + blob.size, 0);
  let total = bytesBefore;
  const removed: string[] = [];
  blobs.sort((a, b) => a.used - b.used);
  for (const blob of blobs) {
    if (total <= options.maxBytes) break;
    if (keep.has(blob.digest) || now - blob.used < grace) continue;
    try {
      await unlink(blob.path);
    } catch {
      continue; // removed by another process, or not ours to remove
    }
    total -= blob.size;
    removed.push(blob.digest);
  }
  return { bytesBefore, bytesAfter: total, removed };
}
