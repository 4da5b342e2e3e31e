/**
 * The image store contract suite: records, the in-flight key, compare-and-set, tags and their ACLs, listing and
 * deletion. Every {@link ImageStore} must pass it; it is the executable form of the contracts in `image-store.ts`.
 *
 * @packageDocumentation
 */
import { describe, expect, it } from 'vitest';
import type { ImageRecord, NewImageRecord } from '../../metadata/image-record.js';
import type { ImageStore } from '../../metadata/image-store.js';
import type { ShifterError } from '../../errors/index.js';
import {
  CONTRACT_T0 as T0,
  expectCode,
  type StoreContractFactory,
  useContractStore,
} from './store-contract-support.js';

/**
 * Define the {@link ImageStore} contract tests for one implementation.
 * @param name - shown in the test names, e.g. `'SqliteMetadataStore'`
 * @param factory - makes a fresh store per test, on the clock it is given
 */
export function describeImageStoreContract(name: string, factory: StoreContractFactory<ImageStore>): void {
  describe(`ImageStore contract: ${name}`, () => {
    const harness = useContractStore(factory);
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

    it('inserts a record with defaults and reads it back', async () => {
      const record = await harness.store.insert({
        system: 'sysa',
        itype: 'docker',
        status: 'READY',
        tags: ['ubuntu:22.04'],
      });
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
      expect(await harness.store.get(record.recordId)).toEqual(record);
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
      const record = await harness.store.insert(full);
      expect(record).toMatchObject(full);
      expect(await harness.store.get(record.recordId)).toEqual(record);
    });

    it('answers null for an unknown record', async () => {
      expect(await harness.store.get('000000000000000000000000')).toBeNull();
    });

    it('rejects invalid records with SHIFTER_USAGE_INVALID_ARGUMENT', async () => {
      await expectCode(
        harness.store.insert({ system: '', itype: 'docker', status: 'READY' }),
        'SHIFTER_USAGE_INVALID_ARGUMENT',
      );
      await expectCode(
        harness.store.insert({ system: 'sysa', itype: 'docker', status: 'BOGUS' as 'READY' }),
        'SHIFTER_USAGE_INVALID_ARGUMENT',
      );
    });

    it('creates exactly one in-flight record for 50 concurrent requests of one tag', async () => {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => harness.store.createOrGetInFlight(pull('alpine:3'))),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.record.recordId)).size).toBe(1);
      expect(await harness.store.list({ system: 'sysa' })).toHaveLength(1);
      const again = await harness.store.createOrGetInFlight(pull('alpine:3'));
      expect(again.created).toBe(false);
      expect(again.record.recordId).toBe(results[0]!.record.recordId);
    });

    it('keys in-flight records by system, itype and pulltag', async () => {
      const a = await harness.store.createOrGetInFlight(pull('alpine:3'));
      const b = await harness.store.createOrGetInFlight(pull('alpine:3', { system: 'sysb' }));
      const c = await harness.store.createOrGetInFlight(pull('alpine:3', { itype: 'custom' }));
      const d = await harness.store.createOrGetInFlight(pull('alpine:4'));
      expect([a, b, c, d].every((r) => r.created)).toBe(true);
      expect(new Set([a, b, c, d].map((r) => r.record.recordId)).size).toBe(4);
      expect((await harness.store.findInFlight('sysb', 'docker', 'alpine:3'))?.recordId).toBe(b.record.recordId);
      expect(await harness.store.findInFlight('sysc', 'docker', 'alpine:3')).toBeNull();
    });

    it('frees the in-flight key when the record leaves the in-flight states', async () => {
      const first = await harness.store.createOrGetInFlight(pull('alpine:3'));
      await harness.store.update(first.record.recordId, { status: 'PULLING' });
      expect((await harness.store.createOrGetInFlight(pull('alpine:3'))).created).toBe(false);
      await harness.store.update(first.record.recordId, {
        status: 'FAILURE',
        error: { code: 'SHIFTER_INTERNAL', message: 'x' },
      });
      expect(await harness.store.findInFlight('sysa', 'docker', 'alpine:3')).toBeNull();
      const second = await harness.store.createOrGetInFlight(pull('alpine:3'));
      expect(second.created).toBe(true);
      expect(second.record.recordId).not.toBe(first.record.recordId);
      // Moving the old record back into flight would make two: refused.
      await expectCode(harness.store.update(first.record.recordId, { status: 'PENDING' }), 'SHIFTER_JOB_CONFLICT');
      await expectCode(harness.store.insert(pull('alpine:3')), 'SHIFTER_JOB_CONFLICT');
    });

    it('refuses createOrGetInFlight without an in-flight status', async () => {
      await expectCode(
        harness.store.createOrGetInFlight(pull('alpine:3', { status: 'READY' })),
        'SHIFTER_USAGE_INVALID_ARGUMENT',
      );
    });

    it('updates fields, bumps the revision and updatedAt', async () => {
      const { record } = await harness.store.createOrGetInFlight(pull('alpine:3'));
      harness.advance(1500);
      const updated = await harness.store.update(record.recordId, {
        status: 'PULLING',
        statusMessage: 'Getting manifest',
        progress: { step: 'Getting manifest' },
        lastHeartbeat: harness.clock,
      });
      expect(updated).toMatchObject({
        status: 'PULLING',
        statusMessage: 'Getting manifest',
        revision: 2,
        updatedAt: T0 + 1500,
        createdAt: T0,
      });
      expect(await harness.store.get(record.recordId)).toEqual(updated);
      const cleared = await harness.store.update(record.recordId, { progress: null });
      expect(cleared.progress).toBeNull();
      expect(cleared.statusMessage).toBe('Getting manifest');
    });

    it('compare-and-sets on status and revision', async () => {
      const { record } = await harness.store.createOrGetInFlight(pull('alpine:3'));
      const error = await expectCode(
        harness.store.update(record.recordId, { status: 'READY' }, { expectStatus: ['PULLING', 'CONVERSION'] }),
        'SHIFTER_JOB_CONFLICT',
      );
      expect(error.details).toMatchObject({ status: 'INIT', revision: 1 });
      expect((await harness.store.get(record.recordId))?.status).toBe('INIT');
      const moved = await harness.store.update(
        record.recordId,
        { status: 'PENDING' },
        { expectStatus: 'INIT', expectRevision: 1 },
      );
      expect(moved.revision).toBe(2);
      await expectCode(
        harness.store.update(record.recordId, { status: 'PULLING' }, { expectRevision: 1 }),
        'SHIFTER_JOB_CONFLICT',
      );
    });

    it('lets exactly one of several concurrent compare-and-sets win', async () => {
      const { record } = await harness.store.createOrGetInFlight(pull('alpine:3'));
      const attempts = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          harness.store.update(
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
      expect((await harness.store.get(record.recordId))?.revision).toBe(2);
    });

    it('reports SHIFTER_IMAGE_NOT_FOUND for updates of unknown records', async () => {
      await expectCode(
        harness.store.update('000000000000000000000000', { status: 'READY' }),
        'SHIFTER_IMAGE_NOT_FOUND',
      );
      await expectCode(harness.store.moveTag('000000000000000000000000', 'x'), 'SHIFTER_IMAGE_NOT_FOUND');
      await expectCode(harness.store.removeTag('000000000000000000000000', 'x'), 'SHIFTER_IMAGE_NOT_FOUND');
    });

    it('refuses patches of immutable fields', async () => {
      const record = await harness.store.insert({ system: 'sysa', itype: 'docker', status: 'READY' });
      await expectCode(
        harness.store.update(record.recordId, { system: 'other' } as never),
        'SHIFTER_USAGE_INVALID_ARGUMENT',
      );
      await expectCode(
        harness.store.update(record.recordId, { tags: ['x'] } as never),
        'SHIFTER_USAGE_INVALID_ARGUMENT',
      );
    });

    it('finds READY records by tag and by image id', async () => {
      const ready = await harness.store.insert({
        system: 'sysa',
        itype: 'docker',
        status: 'READY',
        tags: ['ubuntu:22.04'],
        imageId: 'ab'.repeat(32),
      });
      await harness.store.insert({
        system: 'sysa',
        itype: 'docker',
        status: 'FAILURE',
        tags: ['broken:1'],
        imageId: 'cd'.repeat(32),
      });
      await harness.store.createOrGetInFlight(pull('ubuntu:22.04'));
      expect((await harness.store.findReadyByTag('sysa', 'docker', 'ubuntu:22.04'))?.recordId).toBe(ready.recordId);
      expect(await harness.store.findReadyByTag('sysa', 'custom', 'ubuntu:22.04')).toBeNull();
      expect(await harness.store.findReadyByTag('sysb', 'docker', 'ubuntu:22.04')).toBeNull();
      expect(await harness.store.findReadyByTag('sysa', 'docker', 'broken:1')).toBeNull();
      expect((await harness.store.findReadyByImageId('sysa', 'ab'.repeat(32)))?.recordId).toBe(ready.recordId);
      expect(await harness.store.findReadyByImageId('sysb', 'ab'.repeat(32))).toBeNull();
      expect(await harness.store.findReadyByImageId('sysa', 'cd'.repeat(32))).toBeNull();
    });

    it('finds every record of a tag, by tag list or pulltag, newest first', async () => {
      const old = await harness.store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['x:1'] });
      harness.advance(10);
      const inflight = await harness.store.createOrGetInFlight(pull('x:1'));
      await harness.store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['y:1'] });
      const found = await harness.store.findByTag('sysa', 'docker', 'x:1');
      expect(found.map((r) => r.recordId)).toEqual([inflight.record.recordId, old.recordId]);
    });

    it('moves a tag so it lives on one record per system and itype', async () => {
      const a = await harness.store.insert({
        system: 'sysa',
        itype: 'docker',
        status: 'READY',
        tags: ['app:latest', 'app:1'],
      });
      const b = await harness.store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['app:2'] });
      const other = await harness.store.insert({
        system: 'sysb',
        itype: 'docker',
        status: 'READY',
        tags: ['app:latest'],
      });
      const moved = await harness.store.moveTag(b.recordId, 'app:latest');
      expect(moved.tags).toEqual(['app:2', 'app:latest']);
      expect((await harness.store.get(a.recordId))?.tags).toEqual(['app:1']);
      expect((await harness.store.get(other.recordId))?.tags).toEqual(['app:latest']);
      expect((await harness.store.findReadyByTag('sysa', 'docker', 'app:latest'))?.recordId).toBe(b.recordId);
      const again = await harness.store.moveTag(b.recordId, 'app:latest');
      expect(again.tags).toEqual(['app:2', 'app:latest']);
      const removed = await harness.store.removeTag(b.recordId, 'app:2');
      expect(removed.tags).toEqual(['app:latest']);
      expect(await harness.store.findReadyByTag('sysa', 'docker', 'app:2')).toBeNull();
      expect((await harness.store.removeTag(b.recordId, 'absent')).tags).toEqual(['app:latest']);
    });

    it('keeps an ACL per tag: a moved tag carries its own access, the other tags keep theirs', async () => {
      const shared = await harness.store.insert({
        system: 'sysa',
        itype: 'docker',
        status: 'READY',
        tags: ['reg-a/app:1'],
        tagAccess: [{ tag: 'reg-a/app:1', private: false, userAcl: [], groupAcl: [] }],
        private: false,
      });
      expect(shared.tagAccess).toEqual([{ tag: 'reg-a/app:1', private: false, userAcl: [], groupAcl: [] }]);
      const privateAccess = { private: true, userAcl: [2002], groupAcl: [] };
      const moved = await harness.store.moveTag(shared.recordId, 'reg-b/app:1', privateAccess);
      expect(moved.tags).toEqual(['reg-a/app:1', 'reg-b/app:1']);
      expect(moved.tagAccess).toEqual([
        { tag: 'reg-a/app:1', private: false, userAcl: [], groupAcl: [] },
        { tag: 'reg-b/app:1', ...privateAccess },
      ]);
      // The record-level ACL (the image file's) is not the store's to change.
      expect(moved.private).toBe(false);
      // Moving again with another access replaces that tag's entry only; without access it keeps it.
      const widened = await harness.store.moveTag(shared.recordId, 'reg-b/app:1', {
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
      expect((await harness.store.moveTag(shared.recordId, 'reg-b/app:1')).tagAccess[1]?.userAcl).toEqual([2001, 2002]);
      expect(await harness.store.get(shared.recordId)).toEqual(
        await harness.store.findReadyByTag('sysa', 'docker', 'reg-b/app:1'),
      );
      // A tag leaving a record takes its entry along.
      const other = await harness.store.insert({ system: 'sysa', itype: 'docker', status: 'READY' });
      const taken = await harness.store.moveTag(other.recordId, 'reg-b/app:1', {
        private: false,
        userAcl: [],
        groupAcl: [],
      });
      expect(taken.tagAccess).toEqual([{ tag: 'reg-b/app:1', private: false, userAcl: [], groupAcl: [] }]);
      expect((await harness.store.get(shared.recordId))?.tagAccess).toEqual([
        { tag: 'reg-a/app:1', private: false, userAcl: [], groupAcl: [] },
      ]);
      const removed = await harness.store.removeTag(shared.recordId, 'reg-a/app:1');
      expect(removed.tags).toEqual([]);
      expect(removed.tagAccess).toEqual([]);
    });

    it('gives each tag of a record inserted with one ACL (as upstream keeps them) that ACL', async () => {
      const record = await harness.store.insert({
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
      expect((await harness.store.get(record.recordId))?.tagAccess).toEqual(record.tagAccess);
      // A tag moved onto it without an access of its own gets the record-level ACL too.
      expect((await harness.store.moveTag(record.recordId, 'c:1')).tagAccess[2]).toEqual({ tag: 'c:1', ...expected });
    });

    it('keys in-flight records by requester too: each login its own attempt, the same login one', async () => {
      const anonymous = await Promise.all(
        Array.from({ length: 10 }, () =>
          harness.store.createOrGetInFlight(pull('private/app:1', { requester: 'anonymous' })),
        ),
      );
      expect(anonymous.filter((r) => r.created)).toHaveLength(1);
      const loginA = await harness.store.createOrGetInFlight(pull('private/app:1', { requester: 'login:aaaa' }));
      const loginB = await harness.store.createOrGetInFlight(pull('private/app:1', { requester: 'login:bbbb' }));
      expect(loginA.created).toBe(true);
      expect(loginB.created).toBe(true);
      expect(new Set([anonymous[0]!.record.recordId, loginA.record.recordId, loginB.record.recordId]).size).toBe(3);
      expect(
        (await harness.store.createOrGetInFlight(pull('private/app:1', { requester: 'login:aaaa' }))).record.recordId,
      ).toBe(loginA.record.recordId);
      expect((await harness.store.findInFlight('sysa', 'docker', 'private/app:1', 'login:bbbb'))?.recordId).toBe(
        loginB.record.recordId,
      );
      expect((await harness.store.findInFlight('sysa', 'docker', 'private/app:1', 'anonymous'))?.recordId).toBe(
        anonymous[0]!.record.recordId,
      );
      expect(await harness.store.findInFlight('sysa', 'docker', 'private/app:1', 'login:cccc')).toBeNull();
      // A record without a requester keeps the key it always had.
      expect(await harness.store.findInFlight('sysa', 'docker', 'private/app:1')).toBeNull();
      const legacy = await harness.store.createOrGetInFlight(pull('private/app:1'));
      expect(legacy.created).toBe(true);
      expect((await harness.store.findInFlight('sysa', 'docker', 'private/app:1'))?.recordId).toBe(
        legacy.record.recordId,
      );
      expect(loginA.record.requester).toBe('login:aaaa');
    });

    it('lists by system, status, expiry and last pull', async () => {
      const a = await harness.store.insert({
        system: 'sysa',
        itype: 'docker',
        status: 'READY',
        expiration: T0 - 1,
        lastPull: T0 - 100,
      });
      harness.advance(1);
      const b = await harness.store.insert({
        system: 'sysa',
        itype: 'docker',
        status: 'READY',
        expiration: T0 + 1000,
        lastPull: T0,
      });
      harness.advance(1);
      const c = await harness.store.insert({ system: 'sysa', itype: 'docker', status: 'FAILURE' });
      harness.advance(1);
      const d = await harness.store.insert({ system: 'sysb', itype: 'custom', status: 'READY', expiration: T0 - 5 });
      const ids = (records: ImageRecord[]): string[] => records.map((r) => r.recordId);
      expect(ids(await harness.store.list())).toEqual([a.recordId, b.recordId, c.recordId, d.recordId]);
      expect(ids(await harness.store.list({ system: 'sysa' }))).toEqual([a.recordId, b.recordId, c.recordId]);
      expect(ids(await harness.store.list({ system: 'sysa', status: 'READY' }))).toEqual([a.recordId, b.recordId]);
      expect(ids(await harness.store.list({ status: ['FAILURE', 'EXPIRED'] }))).toEqual([c.recordId]);
      expect(ids(await harness.store.list({ status: [] }))).toEqual([]);
      expect(ids(await harness.store.list({ itype: 'custom' }))).toEqual([d.recordId]);
      expect(ids(await harness.store.list({ expiresBefore: T0 }))).toEqual([a.recordId, d.recordId]);
      expect(ids(await harness.store.list({ system: 'sysa', expiresBefore: T0 }))).toEqual([a.recordId]);
      expect(ids(await harness.store.list({ system: 'sysa', lastPullBefore: T0 - 50 }))).toEqual([
        a.recordId,
        c.recordId,
      ]);
      expect(ids(await harness.store.list({ limit: 2 }))).toEqual([a.recordId, b.recordId]);
    });

    it('deletes records idempotently, optionally only in a given state', async () => {
      const record = await harness.store.insert({ system: 'sysa', itype: 'docker', status: 'READY', tags: ['t:1'] });
      expect(await harness.store.delete(record.recordId, { expectStatus: 'FAILURE' })).toBe(false);
      expect(await harness.store.get(record.recordId)).not.toBeNull();
      expect(await harness.store.delete(record.recordId, { expectStatus: ['READY'] })).toBe(true);
      expect(await harness.store.delete(record.recordId)).toBe(false);
      expect(await harness.store.get(record.recordId)).toBeNull();
      expect(await harness.store.findReadyByTag('sysa', 'docker', 't:1')).toBeNull();
    });
  });
}
