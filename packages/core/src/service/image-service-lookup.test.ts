import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.js';
import type { JobQueue } from '../jobs/index.js';
import type { ImageRecord, MetadataStore } from '../metadata/index.js';
import { SqliteMetadataStore } from '../metadata/sqlite-metadata-store.js';
import type { Transfer } from '../transfer/index.js';
import type { Caller } from './caller.js';
import type { ImagePuller } from './image-puller.js';
import { ImageService } from './image-service.js';

// Lookups are read-only on the hot path: the expiration a lookup pushes forward and its metric are written later, in
// one batch. A real (in-memory) SQLite store behind a spy that records every method called.

const DAY = 86_400_000;
const alice: Caller = { uid: 1000, gid: 1000, user: 'alice', groups: [1000], authorizedLocations: null };
const root: Caller = { uid: 0, gid: 0, user: 'root', groups: [0], authorizedLocations: null };
const READS = /^(get|find|list)/;

let dir: string;
let now: number;
let sqlite: SqliteMetadataStore;
let calls: string[];
let service: ImageService;
let ready: ImageRecord;

/** `store` with every method call logged in `calls`. */
function spied(store: MetadataStore): MetadataStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(property));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
const writes = () => calls.filter((method) => !READS.test(method));

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shifter-lookup-'));
  now = 1_800_000_000_000;
  calls = [];
  sqlite = new SqliteMetadataStore({ path: ':memory:', now: () => now });
  const config = parseConfig({
    systems: { cluster: { transfer: { kind: 'local', imageDir: join(dir, 'images') }, admins: ['root'] } },
    storage: { cacheDir: join(dir, 'cache'), expandDir: join(dir, 'expand') },
    jobs: { imageExpirationTimeout: '1:00:00:00' },
    metrics: true,
  });
  service = new ImageService({
    config,
    store: spied(sqlite),
    queue: { enqueue: async () => ({ id: 'j' }) } as unknown as JobQueue,
    transferFor: () => ({}) as Transfer,
    puller: {} as ImagePuller,
    now: () => now,
  });
  ready = await sqlite.insert({
    system: 'cluster',
    itype: 'docker',
    pulltag: 'busybox:latest',
    tags: ['busybox:latest'],
    status: 'READY',
    imageId: 'a'.repeat(64),
    private: false,
    lastPull: now - DAY / 2,
    expiration: now + DAY / 2,
  });
});

afterEach(async () => {
  await service.close();
  await sqlite.close();
  await rm(dir, { recursive: true, force: true });
});

describe('ImageService.lookup on the hot path', () => {
  it('issues no store write; the batched touch and metric land at flush', async () => {
    const image = await service.lookup('cluster', 'docker', 'busybox', alice);
    expect(calls).toEqual(['findReadyByTag']);
    expect(image.expiration).toBe(now + DAY);
    expect((await sqlite.get(ready.recordId))?.expiration).toBe(now + DAY / 2);

    await service.flushMetrics();
    expect(writes().sort()).toEqual(['insertLookupMetrics', 'update']);
    expect((await sqlite.get(ready.recordId))?.expiration).toBe(now + DAY);
    expect(await sqlite.listLookupMetrics('cluster', 10)).toMatchObject([{ user: 'alice', tag: 'busybox:latest' }]);
  });

  it('touches the expiration only when it moved by more than the slack', async () => {
    await service.lookup('cluster', 'docker', 'busybox', alice);
    await service.flushMetrics();
    calls = [];
    now += 30_000;
    expect((await service.lookup('cluster', 'docker', 'busybox', alice)).expiration).toBe(now - 30_000 + DAY);
    await service.flushMetrics();
    expect(writes()).toEqual(['insertLookupMetrics']);
  });

  it('writes the batched touch on close', async () => {
    await service.lookup('cluster', 'docker', 'busybox', alice);
    expect(writes()).toEqual([]);
    await service.close();
    expect((await sqlite.get(ready.recordId))?.expiration).toBe(now + DAY);
  });

  it('lets autoexpire see the expiration a lookup pushed forward before it was written', async () => {
    now += DAY / 2 + 1; // the stored expiration has just passed
    await service.lookup('cluster', 'docker', 'busybox', alice);
    expect(await service.autoexpire('cluster', root)).toEqual([]);
    expect((await sqlite.get(ready.recordId))?.status).toBe('READY');
  });
});
