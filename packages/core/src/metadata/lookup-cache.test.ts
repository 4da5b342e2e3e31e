import { describe, expect, it, vi } from 'vitest';
import { describeMetadataStoreContract } from '../testing/contracts/metadata-store-contract.js';
import type { Invalidation, InvalidationBus, InvalidationListener } from './lookup-cache.js';
import { withLookupCache } from './lookup-cache.js';
import type { MetadataStore } from './metadata-store.js';
import { SqliteMetadataStore } from './sqlite-metadata-store.js';

/** An in-memory bus: `others` stands for the other processes; `listener` is the cache's end. */
class FakeBus implements InvalidationBus {
  listener: InvalidationListener | null = null;
  published = 0;
  messages: Invalidation[] = [];
  closed = false;
  async publish(invalidation: Invalidation): Promise<void> {
    this.published += 1;
    this.messages.push(invalidation);
  }
  subscribe(listener: InvalidationListener): void {
    this.listener = listener;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

function setup(options: { connected?: boolean; ttlMs?: number; now?: () => number; random?: () => number } = {}) {
  const store = new SqliteMetadataStore({ path: ':memory:' });
  const reads = vi.spyOn(store, 'findReadyByTag');
  const bus = new FakeBus();
  const cached = withLookupCache(store, bus, {
    ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
    ...(options.now ? { now: options.now } : {}),
    ...(options.random ? { random: options.random } : {}),
  });
  if (options.connected ?? true) bus.listener!.connected(true);
  return { store, reads, bus, cached };
}

const readyImage = { system: 's', itype: 'docker', status: 'READY' as const, tags: ['a:1'], imageId: 'i1' };

// The wrapper must behave exactly like the store it wraps.
describeMetadataStoreContract('withLookupCache(SqliteMetadataStore)', async ({ now }) => {
  const bus = new FakeBus();
  const store = withLookupCache(new SqliteMetadataStore({ path: ':memory:', now }), bus);
  bus.listener!.connected(true);
  return { store };
});

describe('withLookupCache', () => {
  it('answers repeated lookups from memory, misses included', async () => {
    const { reads, cached } = setup();
    const record = await cached.insert(readyImage);
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toEqual(record);
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toEqual(record);
    expect(await cached.findReadyByTag('s', 'docker', 'absent:1')).toBeNull();
    expect(await cached.findReadyByTag('s', 'docker', 'absent:1')).toBeNull();
    expect(reads).toHaveBeenCalledTimes(2);
    expect(cached.lookupCacheStats()).toMatchObject({ hits: 2, misses: 2, live: true });
    await cached.close();
  });

  it('forgets everything and publishes after each write made through it', async () => {
    const { bus, cached } = setup();
    const record = await cached.insert(readyImage);
    expect(bus.published).toBe(1);
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).not.toBeNull();
    await cached.update(record.recordId, { status: 'EXPIRED' });
    expect(bus.published).toBe(2);
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
    const other = await cached.insert({ ...readyImage, tags: [], imageId: 'i2' });
    await cached.moveTag(other.recordId, 'a:1');
    expect((await cached.findReadyByTag('s', 'docker', 'a:1'))?.recordId).toBe(other.recordId);
    await cached.delete(other.recordId);
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
    await cached.close();
  });

  it('drops only the answers a write can change, here and in the other processes', async () => {
    const { store, reads, bus, cached } = setup();
    const one = await cached.insert(readyImage);
    const two = await cached.insert({ ...readyImage, tags: ['b:1'], imageId: 'i2' });
    await cached.findReadyByTag('s', 'docker', 'a:1');
    await cached.findReadyByTag('s', 'docker', 'b:1');
    expect(await cached.findReadyByTag('s', 'docker', 'c:1')).toBeNull();
    expect(reads).toHaveBeenCalledTimes(3);
    // An expiration touch of one record: the other record's answer and the miss stay cached.
    await cached.update(one.recordId, { expiration: 5 });
    expect(bus.messages.at(-1)).toEqual({
      records: [one.recordId],
      keys: [expect.stringContaining('a:1')],
    });
    expect((await cached.findReadyByTag('s', 'docker', 'a:1'))?.expiration).toBe(5);
    await cached.findReadyByTag('s', 'docker', 'b:1');
    await cached.findReadyByTag('s', 'docker', 'c:1');
    expect(reads).toHaveBeenCalledTimes(4);
    // A tag moved onto a record that had been cached as the miss of that tag: the miss goes (everything does).
    await cached.moveTag(two.recordId, 'c:1');
    expect(bus.messages.at(-1)).toEqual({ all: true });
    expect((await cached.findReadyByTag('s', 'docker', 'c:1'))?.recordId).toBe(two.recordId);
    // A record that becomes READY with a tag whose miss was cached.
    expect(await cached.findReadyByTag('s', 'docker', 'd:1')).toBeNull();
    const pulling = await store.insert({ ...readyImage, status: 'PULLING', tags: ['d:1'], imageId: 'i3' });
    await cached.update(pulling.recordId, { status: 'READY' });
    expect((await cached.findReadyByTag('s', 'docker', 'd:1'))?.recordId).toBe(pulling.recordId);
    // Deleting the record a tag answered with.
    await cached.delete(two.recordId);
    expect(await cached.findReadyByTag('s', 'docker', 'b:1')).toBeNull();
    // The same message from another process drops the same answers.
    const fresh = await cached.findReadyByTag('s', 'docker', 'a:1');
    await store.update(one.recordId, { expiration: 6 });
    bus.listener!.invalidate({ records: [fresh!.recordId], keys: [] });
    expect((await cached.findReadyByTag('s', 'docker', 'a:1'))?.expiration).toBe(6);
    await cached.close();
  });

  it('publishes after a write that failed, since it may have committed', async () => {
    const { bus, cached } = setup();
    await expect(cached.update('no-such-record', { status: 'EXPIRED' })).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
    expect(bus.messages).toEqual([{ all: true }]);
    await cached.close();
  });

  it('neither invalidates nor publishes for job, metric and read methods', async () => {
    const { bus, reads, cached } = setup();
    await cached.insert(readyImage);
    await cached.findReadyByTag('s', 'docker', 'a:1');
    const job = await cached.createJob({ kind: 'pull', system: 's', payload: {} });
    await cached.claimJob(job.id, { owner: 'w', leaseMs: 1000 });
    await cached.completeJob(job.id, 'w');
    await cached.insertLookupMetrics([
      { user: 'u', uid: 1, system: 's', itype: 'docker', tag: 'a:1', imageId: 'i1', time: 1 },
    ]);
    await cached.list({ system: 's' });
    await cached.findReadyByTag('s', 'docker', 'a:1');
    expect(bus.published).toBe(1);
    expect(reads).toHaveBeenCalledTimes(1);
    await cached.close();
  });

  it('forgets everything when another process says so', async () => {
    const { store, reads, bus, cached } = setup();
    const record = await store.insert(readyImage); // written by "another process": not through the wrapper
    await cached.findReadyByTag('s', 'docker', 'a:1');
    await store.update(record.recordId, { status: 'EXPIRED' });
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).not.toBeNull(); // not told yet
    bus.listener!.invalidate({ all: true });
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
    expect(reads).toHaveBeenCalledTimes(2);
    await cached.close();
  });

  it('caches nothing while the bus is not connected, and starts empty when it reconnects', async () => {
    const { store, reads, bus, cached } = setup({ connected: false });
    const record = await store.insert(readyImage);
    await cached.findReadyByTag('s', 'docker', 'a:1');
    await cached.findReadyByTag('s', 'docker', 'a:1');
    expect(reads).toHaveBeenCalledTimes(2);
    bus.listener!.connected(true);
    await cached.findReadyByTag('s', 'docker', 'a:1');
    bus.listener!.connected(false); // messages may be lost from here on
    await store.update(record.recordId, { status: 'EXPIRED' });
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
    bus.listener!.connected(true);
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
    expect(reads).toHaveBeenCalledTimes(5);
    await cached.close();
  });

  it('does not keep an answer read before an invalidation that arrived while it was in flight', async () => {
    const { store, bus, cached } = setup();
    const record = await store.insert(readyImage);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const real = SqliteMetadataStore.prototype.findReadyByTag.bind(store);
    let started!: () => void;
    const inFlight = new Promise<void>((resolve) => (started = resolve));
    vi.spyOn(store, 'findReadyByTag').mockImplementationOnce(async (...args) => {
      const answer = await real(...args);
      started();
      await gate;
      return answer;
    });
    const stale = cached.findReadyByTag('s', 'docker', 'a:1');
    await inFlight;
    await store.update(record.recordId, { status: 'EXPIRED' });
    bus.listener!.invalidate({ all: true });
    // A caller after the invalidation does not join the read in flight.
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
    release();
    expect(await stale).not.toBeNull();
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toBeNull();
    await cached.close();
  });

  it('shares one store read between concurrent misses of one key', async () => {
    const { reads, cached } = setup();
    await cached.insert(readyImage);
    const answers = await Promise.all([1, 2, 3].map(() => cached.findReadyByTag('s', 'docker', 'a:1')));
    expect(new Set(answers.map((a) => a?.recordId)).size).toBe(1);
    expect(reads).toHaveBeenCalledTimes(1);
    await cached.close();
  });

  it('reads again once an answer is older than the TTL', async () => {
    let clock = 1_000;
    const { reads, cached } = setup({ ttlMs: 100, now: () => clock });
    await cached.insert(readyImage);
    await cached.findReadyByTag('s', 'docker', 'a:1');
    clock += 49;
    await cached.findReadyByTag('s', 'docker', 'a:1');
    expect(reads).toHaveBeenCalledTimes(1);
    clock += 51; // 100 ms old: expired
    await cached.findReadyByTag('s', 'docker', 'a:1');
    expect(reads).toHaveBeenCalledTimes(2);
    await cached.close();
  });

  it('reads a hot answer again in the background past its refresh point, and serves the new one', async () => {
    let clock = 1_000;
    // random 0.25: the refresh point is at 50 % + 0.4 × 25 % = 60 % of the TTL.
    const { store, reads, cached } = setup({ ttlMs: 100, now: () => clock, random: () => 0.25 });
    const record = await cached.insert(readyImage);
    await cached.findReadyByTag('s', 'docker', 'a:1');
    await store.update(record.recordId, { expiration: 7 }); // not through the cache: only the TTL bounds this
    clock += 59;
    expect((await cached.findReadyByTag('s', 'docker', 'a:1'))?.expiration).not.toBe(7); // before its refresh point
    expect(reads).toHaveBeenCalledTimes(1);
    clock += 1;
    expect((await cached.findReadyByTag('s', 'docker', 'a:1'))?.expiration).not.toBe(7); // still within its TTL
    await vi.waitFor(() => expect(reads).toHaveBeenCalledTimes(2));
    clock += 60; // 120 ms after the first read, 60 after the second (the new answer's refresh point is at +60)
    // Served from the answer the background read brought, with no read on the caller's path.
    expect((await cached.findReadyByTag('s', 'docker', 'a:1'))?.expiration).toBe(7);
    expect(cached.lookupCacheStats().misses).toBe(1);
    await cached.close();
  });

  it('hands out frozen records, and leaves findReadyByImageId to the store', async () => {
    const { store, cached } = setup();
    const byId = vi.spyOn(store, 'findReadyByImageId');
    await cached.insert(readyImage);
    const first = await cached.findReadyByTag('s', 'docker', 'a:1');
    expect(await cached.findReadyByTag('s', 'docker', 'a:1')).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first?.tags)).toBe(true);
    await cached.findReadyByImageId('s', 'i1');
    await cached.findReadyByImageId('s', 'i1');
    expect(byId).toHaveBeenCalledTimes(2);
    await cached.close();
  });

  it('closes the bus and the store once', async () => {
    const { store, bus, cached } = setup();
    const storeClose = vi.spyOn(store, 'close');
    await Promise.all([cached.close(), cached.close()]);
    expect(bus.closed).toBe(true);
    expect(storeClose).toHaveBeenCalledTimes(1);
  });

  it('treats a store method it does not know as a write', async () => {
    const inner = {
      findReadyByTag: vi.fn(async () => null),
      renameSystem: vi.fn(async () => 1),
      close: vi.fn(async () => undefined),
    };
    const bus = new FakeBus();
    const cached = withLookupCache(inner as unknown as MetadataStore, bus);
    bus.listener!.connected(true);
    await cached.findReadyByTag('s', 'docker', 'a:1');
    expect(await (cached as unknown as typeof inner).renameSystem()).toBe(1);
    await cached.findReadyByTag('s', 'docker', 'a:1');
    expect(bus.published).toBe(1);
    expect(inner.findReadyByTag).toHaveBeenCalledTimes(2);
    await cached.close();
  });
});
