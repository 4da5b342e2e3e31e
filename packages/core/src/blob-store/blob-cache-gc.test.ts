import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectBlobCache } from './blob-cache-gc.js';

const hex = (n: number): string => n.toString(16).padStart(64, '0');

describe('collectBlobCache', () => {
  let dir: string;
  const now = 10_000_000_000;
  const put = (n: number, size: number, usedSecondsAgo: number): string => {
    const path = join(dir, 'sha256', hex(n));
    writeFileSync(path, Buffer.alloc(size));
    const t = (now - usedSecondsAgo * 1000) / 1000;
    utimesSync(path, t, t);
    return `sha256:${hex(n)}`;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shifter-gc-'));
    mkdirSync(join(dir, 'sha256'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("removes the least recently used blobs until the cache fits, keeping the pull's own and young blobs", async () => {
    const oldest = put(1, 1000, 7200);
    const older = put(2, 1000, 5400);
    const kept = put(3, 1000, 9000);
    const young = put(4, 1000, 60);
    writeFileSync(join(dir, 'sha256', `${hex(5)}.lock`), 'x');
    writeFileSync(join(dir, 'sha256', `${hex(6)}.partial-1234`), Buffer.alloc(5000));
    const result = await collectBlobCache(dir, { maxBytes: 2000, keep: [kept], now: () => now });
    expect(result.bytesBefore).toBe(4000);
    expect(result.removed).toEqual([oldest, older]);
    expect(result.bytesAfter).toBe(2000);
    expect(existsSync(join(dir, 'sha256', hex(3)))).toBe(true);
    expect(existsSync(join(dir, 'sha256', hex(4)))).toBe(true);
    expect(existsSync(join(dir, 'sha256', `${hex(5)}.lock`))).toBe(true);
    expect(existsSync(join(dir, 'sha256', `${hex(6)}.partial-1234`))).toBe(true);
    expect(young).toMatch(/^sha256:/);
  });

  it('leaves a cache under its limit alone, and an absent cache directory is empty', async () => {
    put(1, 1000, 7200);
    expect((await collectBlobCache(dir, { maxBytes: 5000, now: () => now })).removed).toEqual([]);
    expect(await collectBlobCache(join(dir, 'missing'), { maxBytes: 1 })).toEqual({
      bytesBefore: 0,
      bytesAfter: 0,
      removed: [],
    });
  });

  it('stays above the limit rather than remove blobs used within the grace period', async () => {
    put(1, 1000, 10);
    put(2, 1000, 20);
    const result = await collectBlobCache(dir, { maxBytes: 500, now: () => now });
    expect(result.removed).toEqual([]);
    expect(result.bytesAfter).toBe(2000);
  });
});
