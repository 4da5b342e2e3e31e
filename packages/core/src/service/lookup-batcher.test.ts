import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ImageRecordPatch, LookupMetric } from '../metadata/index.js';
import { LOOKUP_FLUSH_MS, LOOKUP_FLUSH_ROWS, LookupBatcher } from './lookup-batcher.js';

function fakeStore() {
  const updates: [string, ImageRecordPatch][] = [];
  const batches: LookupMetric[][] = [];
  return {
    updates,
    batches,
    failMetrics: false,
    missing: new Set<string>(),
    async update(recordId: string, patch: ImageRecordPatch) {
      if (this.missing.has(recordId)) throw new Error('no such record');
      updates.push([recordId, patch]);
      return {} as never;
    },
    async insertLookupMetrics(rows: readonly LookupMetric[]) {
      if (this.failMetrics) throw new Error('store down');
      batches.push([...rows]);
    },
  };
}

const row = (time: number): LookupMetric => ({
  user: 'alice',
  uid: 1000,
  system: 'cluster',
  itype: 'docker',
  tag: 'busybox:latest',
  imageId: 'i',
  time,
});
const warnings: string[] = [];
const logger = { warn: (_object: Record<string, unknown>, message: string) => void warnings.push(message) };

afterEach(() => {
  vi.useRealTimers();
  warnings.length = 0;
});

describe('LookupBatcher', () => {
  it('writes nothing until a flush, then the metrics in one batch and one touch per record (the latest)', async () => {
    const store = fakeStore();
    const batcher = new LookupBatcher({ store, logger });
    batcher.recordMetric(row(1));
    batcher.touchExpiration('r1', 100);
    batcher.recordMetric(row(2));
    batcher.touchExpiration('r1', 300);
    batcher.touchExpiration('r1', 200);
    batcher.touchExpiration('r2', 50);
    expect(store.updates).toEqual([]);
    expect(store.batches).toEqual([]);
    await batcher.flush();
    expect(store.updates).toEqual([
      ['r1', { expiration: 300 }],
      ['r2', { expiration: 50 }],
    ]);
    expect(store.batches).toEqual([[row(1), row(2)]]);
    await batcher.flush();
    expect(store.updates).toHaveLength(2);
    expect(store.batches).toHaveLength(1);
  });

  it('flushes on its timer', async () => {
    vi.useFakeTimers();
    const store = fakeStore();
    const batcher = new LookupBatcher({ store, logger });
    batcher.touchExpiration('r1', 100);
    await vi.advanceTimersByTimeAsync(LOOKUP_FLUSH_MS - 1);
    expect(store.updates).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(store.updates).toEqual([['r1', { expiration: 100 }]]);
  });

  it('flushes at once when the buffer is full', async () => {
    const store = fakeStore();
    const batcher = new LookupBatcher({ store, logger });
    for (let i = 0; i < LOOKUP_FLUSH_ROWS; i++) batcher.recordMetric(row(i));
    // The flush started synchronously; let its promise chain run (an event-loop turn, no clock involved).
    await new Promise((resolve) => setImmediate(resolve));
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0]).toHaveLength(LOOKUP_FLUSH_ROWS);
    await batcher.flush();
  });

  it('drops a refused metrics batch with a warning and a touch of a deleted record silently', async () => {
    const store = fakeStore();
    store.failMetrics = true;
    store.missing.add('gone');
    const batcher = new LookupBatcher({ store, logger });
    batcher.recordMetric(row(1));
    batcher.touchExpiration('gone', 1);
    batcher.touchExpiration('r1', 2);
    await expect(batcher.flush()).resolves.toBeUndefined();
    expect(store.updates).toEqual([['r1', { expiration: 2 }]]);
    expect(warnings).toEqual(['dropping lookup metrics']);
  });
});
