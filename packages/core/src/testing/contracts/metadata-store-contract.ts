/**
 * The metadata store contract suite: every {@link MetadataStore} implementation must pass it. It is the executable
 * form of the contracts in `metadata-store.ts` (umoci/containers-image habit: one conformance suite, many backends).
 *
 * @packageDocumentation
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ShifterError } from '../../errors/index.js';
import type { ImageRecord, LookupMetric, NewImageRecord } from '../../metadata/image-record.js';
import type { MetadataStore } from '../../metadata/metadata-store.js';

/** What a factory returns: the store, and optionally how to clean up after it (drop a database, remove a dir). */
export interface StoreUnderTest {
  /** A fresh, empty store. */
  readonly store: MetadataStore;
  /** Called after {@link MetadataStore.close}. */
  readonly teardown?: () => Promise<void>;
}

/**
 * Makes a fresh, empty store for one test. It must pass `now` to the store as its clock: the suite moves time to
 * exercise leases and expiry.
 */
export type MetadataStoreFactory = (options: { readonly now: () => number }) => Promise<StoreUnderTest>;

const T0 = 1_800_000_000_000;

async function expectCode(promise: Promise<unknown>, code: string): Promise<ShifterError> {
  try {
    await promise;
  } catch (error) {
    expect(ShifterError.isInstance(error), `expected a ShifterError, got ${String(error)}`).toBe(true);
    expect((error as ShifterError).code).toBe(code);
    return error as ShifterError;
  }
  throw new Error(`expected ${code}, but the call succeeded`);
}

/**
 * Define the contract tests for one store implementation.
 * @param name - shown in the test names, e.g. `'SqliteMetadataStore'`
 * @param factory - makes a fresh store per test
 * @example
 * ```ts
 * describeMetadataStoreContract('SqliteMetadataStore', async ({ now }) => ({ store: new SqliteMetadataStore({ path: ':memory:', now }) }));
 * ```
 */
export function describeMetadataStoreContract(name: string, factory: MetadataStoreFactory): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let store: MetadataStore;
    let teardown: (() => Promise<void>) | undefined;
    let clock = T0;
    const now = (): number => clock;
    const advance = (ms: number): void => {
      clock += ms;
    };

    beforeEach(async () => {
      clock = T0;
      const made = await factory({ now });
      store = made.store;
      teardown = made.teardown;
    });

    afterEach(async () => {
      await store.close();
      await store.close(); // idempotent
      await teardown?.();
    });

    const pull = (
      pulltag: string,
      extra: Partial<Omit<NewImageRecord, 'pulltag'>> = {},
    ): NewImageRecord & { pulltag: string } => ({
      system: 'sysa',
      itype: 'docker',
      pulltag,
      status: 'INIT',
      ...extra,
    });

    describe('image records', () => {
      it('inserts a record with defaults and reads it back', async () => {
        const record = await store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['ubuntu:22.04'] });
        expect(record.recordId).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(record).toMatchObject({
          revision: 1,
          system: 'sysa',
          itype: 'docker',
          pulltag: null,
          tags: ['ubuntu:22.04'],
          status: 'READY',
          statusMessage: '',
          imageId: null,
          format: 'squashfs',
          userAcl: [],
          groupAcl: [],
          private: null,
          env: [],
          entrypoint: null,
          cmd: null,
          labels: {},
          createdAt: T0,
          updatedAt: T0,
        });
        expect(await store.get(record.recordId)).toEqual(record);
      });

      it('round-trips every field', async () => {
        const full: NewImageRecord = {
          system: 'sysa',
          itype: 'docker',
          pulltag: 'ünïcode/näme:tag',
          tags: ['a:1', 'b:2'],
          status: 'READY',
          statusMessage: 'Image ready',
          imageId: 'a'.repeat(64),
          manifestDigest: `sha256:${'b'.repeat(64)}`,
          format: 'squashfs',
          userAcl: [1000, 1001],
          groupAcl: [1002],
          private: true,
          env: ['PATH=/usr/bin', 'A=b=c'],
          entrypoint: ['/bin/sh', '-c'],
          cmd: ['echo', "it's"],
          workdir: '/work',
          labels: { 'org.example.x': 'y' },
          user: 'nobody',
          lastPull: T0 - 5,
          lastHeartbeat: T0 - 4,
          expiration: T0 + 1000,
          filepath: '/scratch/x.squashfs',
          error: { code: 'SHIFTER_INTERNAL', message: 'm' },
          progress: { step: 'Pulling layer', layer: 'sha256:c', bytesDone: 10, bytesTotal: 20 },
          jobId: 'job1',
        };
        const record = await store.insert(full);
        expect(record).toMatchObject(full);
        expect(await store.get(record.recordId)).toEqual(record);
      });

      it('answers null for an unknown record', async () => {
        expect(await store.get('000000000000000000000000')).toBeNull();
      });

      it('rejects invalid records with SHIFTER_USAGE_INVALID_ARGUMENT', async () => {
        await expectCode(
          store.insert({ system: '', itype: 'docker', status: 'READY' }),
          'SHIFTER_USAGE_INVALID_ARGUMENT',
        );
        await expectCode(
          store.insert({ system: 'sysa', itype: 'docker', status: 'BOGUS' as 'READY' }),
          'SHIFTER_USAGE_INVALID_ARGUMENT',
        );
      });

      it('creates exactly one in-flight record for 50 concurrent requests of one tag', async () => {
        const results = await Promise.all(
          Array.from({ length: 50 }, () => store.createOrGetInFlight(pull('alpine:3'))),
        );
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(new Set(results.map((r) => r.record.recordId)).size).toBe(1);
        expect(await store.list({ system: 'sysa' })).toHaveLength(1);
        const again = await store.createOrGetInFlight(pull('alpine:3'));
        expect(again.created).toBe(false);
        expect(again.record.recordId).toBe(results[0]!.record.recordId);
      });

      it('keys in-flight records by system, itype and pulltag', async () => {
        const a = await store.createOrGetInFlight(pull('alpine:3'));
        const b = await store.createOrGetInFlight(pull('alpine:3', { system: 'sysb' }));
        const c = await store.createOrGetInFlight(pull('alpine:3', { itype: 'custom' }));
        const d = await store.createOrGetInFlight(pull('alpine:4'));
        expect([a, b, c, d].every((r) => r.created)).toBe(true);
        expect(new Set([a, b, c, d].map((r) => r.record.recordId)).size).toBe(4);
        expect((await store.findInFlight('sysb', 'docker', 'alpine:3'))?.recordId).toBe(b.record.recordId);
        expect(await store.findInFlight('sysc', 'docker', 'alpine:3')).toBeNull();
      });

      it('frees the in-flight key when the record leaves the in-flight states', async () => {
        const first = await store.createOrGetInFlight(pull('alpine:3'));
        await store.update(first.record.recordId, { status: 'PULLING' });
        expect((await store.createOrGetInFlight(pull('alpine:3'))).created).toBe(false);
        await store.update(first.record.recordId, {
          status: 'FAILURE',
          error: { code: 'SHIFTER_INTERNAL', message: 'x' },
        });
        expect(await store.findInFlight('sysa', 'docker', 'alpine:3')).toBeNull();
        const second = await store.createOrGetInFlight(pull('alpine:3'));
        expect(second.created).toBe(true);
        expect(second.record.recordId).not.toBe(first.record.recordId);
        // Moving the old record back into flight would make two: refused.
        await expectCode(store.update(first.record.recordId, { status: 'PENDING' }), 'SHIFTER_JOB_CONFLICT');
        await expectCode(store.insert(pull('alpine:3')), 'SHIFTER_JOB_CONFLICT');
      });

      it('refuses createOrGetInFlight without an in-flight status', async () => {
        await expectCode(
          store.createOrGetInFlight(pull('alpine:3', { status: 'READY' })),
          'SHIFTER_USAGE_INVALID_ARGUMENT',
        );
      });

      it('updates fields, bumps the revision and updatedAt', async () => {
        const { record } = await store.createOrGetInFlight(pull('alpine:3'));
        advance(1500);
        const updated = await store.update(record.recordId, {
          status: 'PULLING',
          statusMessage: 'Getting manifest',
          progress: { step: 'Getting manifest' },
          lastHeartbeat: clock,
        });
        expect(updated).toMatchObject({
          status: 'PULLING',
          statusMessage: 'Getting manifest',
          revision: 2,
          updatedAt: T0 + 1500,
          createdAt: T0,
        });
        expect(await store.get(record.recordId)).toEqual(updated);
        const cleared = await store.update(record.recordId, { progress: null });
        expect(cleared.progress).toBeNull();
        expect(cleared.statusMessage).toBe('Getting manifest');
      });

      it('compare-and-sets on status and revision', async () => {
        const { record } = await store.createOrGetInFlight(pull('alpine:3'));
        const error = await expectCode(
          store.update(record.recordId, { status: 'READY' }, { expectStatus: ['PULLING', 'CONVERSION'] }),
          'SHIFTER_JOB_CONFLICT',
        );
        expect(error.details).toMatchObject({ status: 'INIT', revision: 1 });
        expect((await store.get(record.recordId))?.status).toBe('INIT');
        const moved = await store.update(
          record.recordId,
          { status: 'PENDING' },
          { expectStatus: 'INIT', expectRevision: 1 },
        );
        expect(moved.revision).toBe(2);
        await expectCode(
          store.update(record.recordId, { status: 'PULLING' }, { expectRevision: 1 }),
          'SHIFTER_JOB_CONFLICT',
        );
      });

      it('lets exactly one of several concurrent compare-and-sets win', async () => {
        const { record } = await store.createOrGetInFlight(pull('alpine:3'));
        const attempts = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) =>
            store.update(
              record.recordId,
              { statusMessage: `writer ${i}`, status: 'PENDING' },
              { expectStatus: 'INIT' },
            ),
          ),
        );
        expect(attempts.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
        for (const failed of attempts.filter((a): a is PromiseRejectedResult => a.status === 'rejected')) {
          expect((failed.reason as ShifterError).code).toBe('SHIFTER_JOB_CONFLICT');
        }
        expect((await store.get(record.recordId))?.revision).toBe(2);
      });

      it('reports SHIFTER_IMAGE_NOT_FOUND for updates of unknown records', async () => {
        await expectCode(store.update('000000000000000000000000', { status: 'READY' }), 'SHIFTER_IMAGE_NOT_FOUND');
        await expectCode(store.moveTag('000000000000000000000000', 'x'), 'SHIFTER_IMAGE_NOT_FOUND');
        await expectCode(store.removeTag('000000000000000000000000', 'x'), 'SHIFTER_IMAGE_NOT_FOUND');
      });

      it('refuses patches of immutable fields', async () => {
        const record = await store.insert({ system: 'sysa', itype: 'docker', status: 'READY' });
        await expectCode(store.update(record.recordId, { system: 'other' } as never), 'SHIFTER_USAGE_INVALID_ARGUMENT');
        await expectCode(store.update(record.recordId, { tags: ['x'] } as never), 'SHIFTER_USAGE_INVALID_ARGUMENT');
      });

      it('finds READY records by tag and by image id', async () => {
        const ready = await store.insert({
          system: 'sysa',
          itype: 'docker',
          status: 'READY',
          tags: ['ubuntu:22.04'],
          imageId: 'ab'.repeat(32),
        });
        await store.insert({
          system: 'sysa',
          itype: 'docker',
          status: 'FAILURE',
          tags: ['broken:1'],
          imageId: 'cd'.repeat(32),
        });
        await store.createOrGetInFlight(pull('ubuntu:22.04'));
        expect((await store.findReadyByTag('sysa', 'docker', 'ubuntu:22.04'))?.recordId).toBe(ready.recordId);
        expect(await store.findReadyByTag('sysa', 'custom', 'ubuntu:22.04')).toBeNull();
        expect(await store.findReadyByTag('sysb', 'docker', 'ubuntu:22.04')).toBeNull();
        expect(await store.findReadyByTag('sysa', 'docker', 'broken:1')).toBeNull();
        expect((await store.findReadyByImageId('sysa', 'ab'.repeat(32)))?.recordId).toBe(ready.recordId);
        expect(await store.findReadyByImageId('sysb', 'ab'.repeat(32))).toBeNull();
        expect(await store.findReadyByImageId('sysa', 'cd'.repeat(32))).toBeNull();
      });

      it('finds every record of a tag, by tag list or pulltag, newest first', async () => {
        const old = await store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['x:1'] });
        advance(10);
        const inflight = await store.createOrGetInFlight(pull('x:1'));
        await store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['y:1'] });
        const found = await store.findByTag('sysa', 'docker', 'x:1');
        expect(found.map((r) => r.recordId)).toEqual([inflight.record.recordId, old.recordId]);
      });

      it('moves a tag so it lives on one record per system and itype', async () => {
        const a = await store.insert({
          system: 'sysa',
          itype: 'docker',
          status: 'READY',
          tags: ['app:latest', 'app:1'],
        });
        const b = await store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['app:2'] });
        const other = await store.insert({ system: 'sysb', itype: 'docker', status: 'READY', tags: ['app:latest'] });
        const moved = await store.moveTag(b.recordId, 'app:latest');
        expect(moved.tags).toEqual(['app:2', 'app:latest']);
        expect((await store.get(a.recordId))?.tags).toEqual(['app:1']);
        expect((await store.get(other.recordId))?.tags).toEqual(['app:latest']);
        expect((await store.findReadyByTag('sysa', 'docker', 'app:latest'))?.recordId).toBe(b.recordId);
        const again = await store.moveTag(b.recordId, 'app:latest');
        expect(again.tags).toEqual(['app:2', 'app:latest']);
        const removed = await store.removeTag(b.recordId, 'app:2');
        expect(removed.tags).toEqual(['app:latest']);
        expect(await store.findReadyByTag('sysa', 'docker', 'app:2')).toBeNull();
        expect((await store.removeTag(b.recordId, 'absent')).tags).toEqual(['app:latest']);
      });

      it('keeps an ACL per tag: a moved tag carries its own access, the other tags keep theirs', async () => {
        const shared = await store.insert({
          system: 'sysa',
          itype: 'docker',
          status: 'READY',
          tags: ['reg-a/app:1'],
          tagAccess: [{ tag: 'reg-a/app:1', private: false, userAcl: [], groupAcl: [] }],
          private: false,
        });
        expect(shared.tagAccess).toEqual([{ tag: 'reg-a/app:1', private: false, userAcl: [], groupAcl: [] }]);
        const privateAccess = { private: true, userAcl: [2002], groupAcl: [] };
        const moved = await store.moveTag(shared.recordId, 'reg-b/app:1', privateAccess);
        expect(moved.tags).toEqual(['reg-a/app:1', 'reg-b/app:1']);
        expect(moved.tagAccess).toEqual([
          { tag: 'reg-a/app:1', private: false, userAcl: [], groupAcl: [] },
          { tag: 'reg-b/app:1', ...privateAccess },
        ]);
        // The record-level ACL (the image file's) is not the store's to change.
        expect(moved.private).toBe(false);
        // Moving again with another access replaces that tag's entry only; without access it keeps it.
        const widened = await store.moveTag(shared.recordId, 'reg-b/app:1', {
          private: true,
          userAcl: [2001, 2002],
          groupAcl: [],
        });
        expect(widened.tagAccess[1]).toEqual({
          tag: 'reg-b/app:1',
          private: true,
          userAcl: [2001, 2002],
          groupAcl: [],
        });
        expect((await store.moveTag(shared.recordId, 'reg-b/app:1')).tagAccess[1]?.userAcl).toEqual([2001, 2002]);
        expect(await store.get(shared.recordId)).toEqual(await store.findReadyByTag('sysa', 'docker', 'reg-b/app:1'));
        // A tag leaving a record takes its entry along.
        const other = await store.insert({ system: 'sysa', itype: 'docker', status: 'READY' });
        const taken = await store.moveTag(other.recordId, 'reg-b/app:1', { private: false, userAcl: [], groupAcl: [] });
        expect(taken.tagAccess).toEqual([{ tag: 'reg-b/app:1', private: false, userAcl: [], groupAcl: [] }]);
        expect((await store.get(shared.recordId))?.tagAccess).toEqual([
          { tag: 'reg-a/app:1', private: false, userAcl: [], groupAcl: [] },
        ]);
        const removed = await store.removeTag(shared.recordId, 'reg-a/app:1');
        expect(removed.tags).toEqual([]);
        expect(removed.tagAccess).toEqual([]);
      });

      it('gives each tag of a record inserted with one ACL (as upstream keeps them) that ACL', async () => {
        const record = await store.insert({
          system: 'sysa',
          itype: 'docker',
          status: 'READY',
          tags: ['a:1', 'b:1'],
          private: true,
          userAcl: [2001],
          groupAcl: [30],
        });
        const expected = { private: true, userAcl: [2001], groupAcl: [30] };
        expect(record.tagAccess).toEqual([
          { tag: 'a:1', ...expected },
          { tag: 'b:1', ...expected },
        ]);
        expect((await store.get(record.recordId))?.tagAccess).toEqual(record.tagAccess);
        // A tag moved onto it without an access of its own gets the record-level ACL too.
        expect((await store.moveTag(record.recordId, 'c:1')).tagAccess[2]).toEqual({ tag: 'c:1', ...expected });
      });

      it('keys in-flight records by requester too: each login its own attempt, the same login one', async () => {
        const anonymous = await Promise.all(
          Array.from({ length: 10 }, () =>
            store.createOrGetInFlight(pull('private/app:1', { requester: 'anonymous' })),
          ),
        );
        expect(anonymous.filter((r) => r.created)).toHaveLength(1);
        const loginA = await store.createOrGetInFlight(pull('private/app:1', { requester: 'login:aaaa' }));
        const loginB = await store.createOrGetInFlight(pull('private/app:1', { requester: 'login:bbbb' }));
        expect(loginA.created).toBe(true);
        expect(loginB.created).toBe(true);
        expect(new Set([anonymous[0]!.record.recordId, loginA.record.recordId, loginB.record.recordId]).size).toBe(3);
        expect(
          (await store.createOrGetInFlight(pull('private/app:1', { requester: 'login:aaaa' }))).record.recordId,
        ).toBe(loginA.record.recordId);
        expect((await store.findInFlight('sysa', 'docker', 'private/app:1', 'login:bbbb'))?.recordId).toBe(
          loginB.record.recordId,
        );
        expect((await store.findInFlight('sysa', 'docker', 'private/app:1', 'anonymous'))?.recordId).toBe(
          anonymous[0]!.record.recordId,
        );
        expect(await store.findInFlight('sysa', 'docker', 'private/app:1', 'login:cccc')).toBeNull();
        // A record without a requester keeps the key it always had.
        expect(await store.findInFlight('sysa', 'docker', 'private/app:1')).toBeNull();
        const legacy = await store.createOrGetInFlight(pull('private/app:1'));
        expect(legacy.created).toBe(true);
        expect((await store.findInFlight('sysa', 'docker', 'private/app:1'))?.recordId).toBe(legacy.record.recordId);
        expect(loginA.record.requester).toBe('login:aaaa');
      });

      it('lists by system, status, expiry and last pull', async () => {
        const a = await store.insert({
          system: 'sysa',
          itype: 'docker',
          status: 'READY',
          expiration: T0 - 1,
          lastPull: T0 - 100,
        });
        advance(1);
        const b = await store.insert({
          system: 'sysa',
          itype: 'docker',
          status: 'READY',
          expiration: T0 + 1000,
          lastPull: T0,
        });
        advance(1);
        const c = await store.insert({ system: 'sysa', itype: 'docker', status: 'FAILURE' });
        advance(1);
        const d = await store.insert({ system: 'sysb', itype: 'custom', status: 'READY', expiration: T0 - 5 });
        const ids = (records: ImageRecord[]): string[] => records.map((r) => r.recordId);
        expect(ids(await store.list())).toEqual([a.recordId, b.recordId, c.recordId, d.recordId]);
        expect(ids(await store.list({ system: 'sysa' }))).toEqual([a.recordId, b.recordId, c.recordId]);
        expect(ids(await store.list({ system: 'sysa', status: 'READY' }))).toEqual([a.recordId, b.recordId]);
        expect(ids(await store.list({ status: ['FAILURE', 'EXPIRED'] }))).toEqual([c.recordId]);
        expect(ids(await store.list({ status: [] }))).toEqual([]);
        expect(ids(await store.list({ itype: 'custom' }))).toEqual([d.recordId]);
        expect(ids(await store.list({ expiresBefore: T0 }))).toEqual([a.recordId, d.recordId]);
        expect(ids(await store.list({ system: 'sysa', expiresBefore: T0 }))).toEqual([a.recordId]);
        expect(ids(await store.list({ system: 'sysa', lastPullBefore: T0 - 50 }))).toEqual([a.recordId, c.recordId]);
        expect(ids(await store.list({ limit: 2 }))).toEqual([a.recordId, b.recordId]);
      });

      it('deletes records idempotently, optionally only in a given state', async () => {
        const record = await store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['t:1'] });
        expect(await store.delete(record.recordId, { expectStatus: 'FAILURE' })).toBe(false);
        expect(await store.get(record.recordId)).not.toBeNull();
        expect(await store.delete(record.recordId, { expectStatus: ['READY'] })).toBe(true);
        expect(await store.delete(record.recordId)).toBe(false);
        expect(await store.get(record.recordId)).toBeNull();
        expect(await store.findReadyByTag('sysa', 'docker', 't:1')).toBeNull();
      });
    });

    describe('lookup metrics', () => {
      const metric = (i: number, system = 'sysa'): LookupMetric => ({
        user: 'alice',
        uid: 1000,
        system,
        itype: 'docker',
        tag: `img:${i}`,
        imageId: 'ab'.repeat(32),
        time: T0 + i * 1000,
      });

      it('keeps the last N rows per system, oldest first', async () => {
        await store.insertLookupMetrics([]);
        await store.insertLookupMetrics(Array.from({ length: 101 }, (_, i) => metric(i)));
        await store.insertLookupMetrics([metric(500, 'sysb')]);
        const hundred = await store.listLookupMetrics('sysa', 100);
        expect(hundred).toHaveLength(100);
        expect(hundred[0]).toEqual(metric(1));
        expect(hundred[99]).toEqual(metric(100));
        const twenty = await store.listLookupMetrics('sysa', 20);
        expect(twenty).toHaveLength(20);
        expect(twenty.at(-1)?.time).toBe(Math.max(...hundred.map((m) => m.time)));
        expect(await store.listLookupMetrics('sysb', 10)).toEqual([metric(500, 'sysb')]);
        expect(await store.listLookupMetrics('sysc', 10)).toEqual([]);
      });
    });

    describe('jobs', () => {
      const lease = { leaseMs: 1000 };

      it('creates queued jobs with defaults', async () => {
        const job = await store.createJob({ kind: 'pull', system: 'sysa', payload: { recordId: 'r1', n: [1, 'x'] } });
        expect(job).toMatchObject({
          kind: 'pull',
          system: 'sysa',
          status: 'queued',
          attempts: 0,
          maxAttempts: 3,
          leaseOwner: null,
          leaseExpiresAt: null,
          lastError: null,
          payload: { recordId: 'r1', n: [1, 'x'] },
          createdAt: T0,
        });
        expect(await store.getJob(job.id)).toEqual(job);
        expect(await store.getJob('000000000000000000000000')).toBeNull();
        await expectCode(
          store.createJob({ kind: 'bogus' as 'pull', system: 'sysa' }),
          'SHIFTER_USAGE_INVALID_ARGUMENT',
        );
        await expectCode(
          store.createJob({ kind: 'pull', system: 'sysa', maxAttempts: 0 }),
          'SHIFTER_USAGE_INVALID_ARGUMENT',
        );
      });

      it('lets exactly one of several concurrent claimers win', async () => {
        const job = await store.createJob({ kind: 'pull', system: 'sysa' });
        const claims = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store.claimJob(job.id, { owner: `w${i}`, ...lease })),
        );
        const winners = claims.filter((c) => c !== null);
        expect(winners).toHaveLength(1);
        expect(winners[0]).toMatchObject({
          status: 'running',
          attempts: 1,
          leaseExpiresAt: T0 + 1000,
          heartbeatAt: T0,
        });
        expect(await store.claimJob(job.id, { owner: 'late', ...lease })).toBeNull();
      });

      it('extends a lease only for its owner and hands an expired lease to another worker', async () => {
        const job = await store.createJob({ kind: 'pull', system: 'sysa' });
        await store.claimJob(job.id, { owner: 'w1', ...lease });
        advance(800);
        expect(await store.heartbeatJob(job.id, { owner: 'w2', ...lease })).toBeNull();
        const beat = await store.heartbeatJob(job.id, { owner: 'w1', ...lease, progress: { step: 'layer 1' } });
        expect(beat).toMatchObject({ leaseExpiresAt: T0 + 1800, heartbeatAt: T0 + 800, progress: { step: 'layer 1' } });
        advance(900); // lease still valid until T0 + 1800
        expect(await store.claimJob(job.id, { owner: 'w2', ...lease })).toBeNull();
        expect(await store.listClaimableJobs('sysa')).toEqual([]);
        advance(200); // now past the lease
        expect((await store.listClaimableJobs('sysa')).map((j) => j.id)).toEqual([job.id]);
        const taken = await store.claimJob(job.id, { owner: 'w2', ...lease });
        expect(taken).toMatchObject({ leaseOwner: 'w2', attempts: 2, status: 'running' });
        // The old owner lost the job: none of its writes land.
        expect(await store.heartbeatJob(job.id, { owner: 'w1', ...lease })).toBeNull();
        expect(await store.completeJob(job.id, 'w1', { late: true })).toBeNull();
        expect(
          await store.failJob(job.id, 'w1', { code: 'SHIFTER_INTERNAL', message: 'x' }, { retry: true }),
        ).toBeNull();
        const done = await store.completeJob(job.id, 'w2', { ok: true });
        expect(done).toMatchObject({ status: 'done', result: { ok: true }, leaseOwner: null });
        advance(10_000);
        expect(await store.claimJob(job.id, { owner: 'w3', ...lease })).toBeNull();
      });

      it('requeues retryable failures after their back-off and fails the rest', async () => {
        const job = await store.createJob({ kind: 'pull', system: 'sysa', maxAttempts: 2 });
        await store.claimJob(job.id, { owner: 'w1', ...lease });
        const requeued = await store.failJob(
          job.id,
          'w1',
          { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'down' },
          { retry: true, notBefore: T0 + 500 },
        );
        expect(requeued).toMatchObject({
          status: 'queued',
          notBefore: T0 + 500,
          lastError: { code: 'SHIFTER_REGISTRY_UNAVAILABLE' },
          leaseOwner: null,
        });
        expect(await store.claimJob(job.id, { owner: 'w1', ...lease })).toBeNull();
        advance(500);
        expect(await store.claimJob(job.id, { owner: 'w1', ...lease })).toMatchObject({ attempts: 2 });
        // Out of attempts: even a retryable failure is final.
        const final = await store.failJob(
          job.id,
          'w1',
          { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'down' },
          { retry: true },
        );
        expect(final).toMatchObject({ status: 'failed', attempts: 2 });
        const other = await store.createJob({ kind: 'expire', system: 'sysa' });
        await store.claimJob(other.id, { owner: 'w1', ...lease });
        expect(
          await store.failJob(other.id, 'w1', { code: 'SHIFTER_INTERNAL', message: 'bug' }, { retry: false }),
        ).toMatchObject({ status: 'failed', attempts: 1 });
      });

      it('fails a job for good when a claim finds it out of attempts', async () => {
        const job = await store.createJob({ kind: 'pull', system: 'sysa', maxAttempts: 1 });
        await store.claimJob(job.id, { owner: 'w1', ...lease });
        advance(2000); // w1 died; its lease expired on the last attempt
        const error = await expectCode(
          store.claimJob(job.id, { owner: 'w2', ...lease }),
          'SHIFTER_JOB_ATTEMPTS_EXHAUSTED',
        );
        expect(error.details).toMatchObject({ jobId: job.id });
        expect(await store.getJob(job.id)).toMatchObject({
          status: 'failed',
          lastError: { code: 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED' },
          leaseOwner: null,
        });
        expect(await store.claimJob(job.id, { owner: 'w2', ...lease })).toBeNull();
      });

      it('erases payload secrets when a job ends, done, failed or exhausted, and keeps them while it may run again', async () => {
        const secrets = { login: { username: 'u', password: 'p' } };
        const done = await store.createJob({ kind: 'pull', system: 'sysa', payload: { recordId: 'r1', secrets } });
        await store.claimJob(done.id, { owner: 'w1', ...lease });
        expect((await store.getJob(done.id))?.payload).toEqual({ recordId: 'r1', secrets });
        await store.completeJob(done.id, 'w1', { ok: true });
        expect((await store.getJob(done.id))?.payload).toEqual({ recordId: 'r1' });

        const failed = await store.createJob({
          kind: 'pull',
          system: 'sysa',
          maxAttempts: 2,
          payload: { recordId: 'r2', secrets },
        });
        await store.claimJob(failed.id, { owner: 'w1', ...lease });
        await store.failJob(
          failed.id,
          'w1',
          { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'down' },
          { retry: true },
        );
        expect((await store.getJob(failed.id))?.payload).toEqual({ recordId: 'r2', secrets });
        await store.claimJob(failed.id, { owner: 'w1', ...lease });
        await store.failJob(
          failed.id,
          'w1',
          { code: 'SHIFTER_REGISTRY_UNAVAILABLE', message: 'down' },
          { retry: true },
        );
        expect((await store.getJob(failed.id))?.payload).toEqual({ recordId: 'r2' });

        const dead = await store.createJob({
          kind: 'pull',
          system: 'sysa',
          maxAttempts: 1,
          payload: { recordId: 'r3', secrets },
        });
        await store.claimJob(dead.id, { owner: 'w1', ...lease });
        advance(5000);
        await expectCode(store.claimJob(dead.id, { owner: 'w2', ...lease }), 'SHIFTER_JOB_ATTEMPTS_EXHAUSTED');
        expect(await store.getJob(dead.id)).toMatchObject({ status: 'failed', payload: { recordId: 'r3' } });
        expect((await store.getJob(dead.id))?.payload).not.toHaveProperty('secrets');
      });

      it('claims the oldest due job of a system and reports exhausted ones', async () => {
        const dead = await store.createJob({ kind: 'pull', system: 'sysa', maxAttempts: 1 });
        await store.claimJob(dead.id, { owner: 'w0', ...lease });
        advance(5000);
        const first = await store.createJob({ kind: 'pull', system: 'sysa' });
        advance(1);
        const second = await store.createJob({ kind: 'import', system: 'sysa' });
        await store.createJob({ kind: 'pull', system: 'sysb' });
        const exhausted: string[] = [];
        const onExhausted = (job: { id: string }): void => void exhausted.push(job.id);
        expect((await store.claimNextJob('sysa', { owner: 'w1', ...lease, onExhausted }))?.id).toBe(first.id);
        expect(exhausted).toEqual([dead.id]);
        expect((await store.claimNextJob('sysa', { owner: 'w1', ...lease, onExhausted }))?.id).toBe(second.id);
        expect(await store.claimNextJob('sysa', { owner: 'w1', ...lease, onExhausted })).toBeNull();
        expect(await store.claimNextJob('sysc', { owner: 'w1', ...lease })).toBeNull();
      });

      it('lists jobs by system, status and kind, and prunes finished ones', async () => {
        const a = await store.createJob({ kind: 'pull', system: 'sysa' });
        const b = await store.createJob({ kind: 'expire', system: 'sysa' });
        const c = await store.createJob({ kind: 'pull', system: 'sysb' });
        await store.claimJob(b.id, { owner: 'w', ...lease });
        await store.completeJob(b.id, 'w');
        expect((await store.listJobs({ system: 'sysa' })).map((j) => j.id)).toEqual([a.id, b.id]);
        expect((await store.listJobs({ status: 'done' })).map((j) => j.id)).toEqual([b.id]);
        expect((await store.listJobs({ kind: 'pull' })).map((j) => j.id)).toEqual([a.id, c.id]);
        expect((await store.listJobs({ status: ['queued', 'running'], limit: 1 })).map((j) => j.id)).toEqual([a.id]);
        expect((await store.listClaimableJobs()).map((j) => j.id)).toEqual([a.id, c.id]);
        advance(100);
        expect(await store.pruneJobs(T0 + 50)).toBe(1);
        expect(await store.getJob(b.id)).toBeNull();
        expect(await store.getJob(a.id)).not.toBeNull();
      });
    });
  });
}
