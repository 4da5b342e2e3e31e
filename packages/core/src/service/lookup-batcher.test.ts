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

  it('writes one batch at a time: rows that arrive meanwhile go into the next, larger batch', async () => {
    const store = fakeStore();
    const inserts: Array<() => void> = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const slow = {
      ...store,
      async insertLookupMetrics(rows: readonly LookupMetric[]) {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise<void>((resolve) => inserts.push(resolve));
        inFlight -= 1;
        store.batches.push([...rows]);
      },
    };
    const batcher = new LookupBatcher({ store: slow, logger });
    for (let i = 0; i < LOOKUP_FLUSH_ROWS; i++) batcher.recordMetric(row(i)); // starts batch 1
    await vi.waitFor(() => expect(inserts).toHaveLength(1));
    for (let i = 0; i < 3 * LOOKUP_FLUSH_ROWS; i++) batcher.recordMetric(row(1000 + i)); // no second insert yet
    expect(inserts).toHaveLength(1);
    inserts.shift()!(); // batch 1 done: the waiting rows go at once, as one batch
    await vi.waitFor(() => expect(inserts).toHaveLength(1));
    const done = batcher.flush(); // waits for batch 2, then has nothing left to write
    inserts.shift()!();
    await done;
    expect(maxInFlight).toBe(1);
    expect(store.batches.map((batch) => batch.length)).toEqual([LOOKUP_FLUSH_ROWS, 3 * LOOKUP_FLUSH_ROWS]);
  });

  it('keeps at most maxBufferedRows while the store is stuck, dropping the oldest and saying so', async () => {
    const store = fakeStore();
    let release: () => void = () => {};
    const stuck = {
      ...store,
      async insertLookupMetrics(rows: readonly LookupMetric[]) {
        await new Promise<void>((resolve) => (release = resolve));
        store.batches.push([...rows]);
      },
    };
    const batcher = new LookupBatcher({ store: stuck, logger, maxBufferedRows: 1000 });
    for (let i = 0; i < LOOKUP_FLUSH_ROWS; i++) batcher.recordMetric(row(i)); // batch 1, stuck
    for (let i = 0; i < 2500; i++) batcher.recordMetric(row(10_000 + i));
    release();
    await vi.waitFor(() => expect(store.batches).toHaveLength(1));
    const done = batcher.flush();
    await vi.waitFor(() => release !== undefined);
    release();
    await done;
    const second = store.batches[1]!;
    expect(second.length).toBeLessThanOrEqual(1000);
    expect(second.at(-1)!.time).toBe(10_000 + 2499); // the newest rows are kept
    expect(2500 - second.length).toBeGreaterThan(0);
    expect(warnings).toContain('dropped lookup metrics: the store is slower than the lookups');
  });
});
