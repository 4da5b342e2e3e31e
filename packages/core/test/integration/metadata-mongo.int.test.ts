import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { StoreSchemaStep } from '@shifter/core/internal';
import { MongoMetadataStore } from '@shifter/core/mongo';
import { describeMetadataStoreContract, haveServices, serviceValue } from '@shifter/core/testing';

// One database per test (dropped after), so runs never see each other's data.
const prefix = `shifter_test_${process.pid}_${randomBytes(3).toString('hex')}`;
let counter = 0;

describe.skipIf(!haveServices('mongo'))('MongoMetadataStore on the test MongoDB (FerretDB)', () => {
  describeMetadataStoreContract('MongoMetadataStore', async ({ now }) => {
    const database = `${prefix}_${counter++}`;
    const store = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database, now });
    const dropper = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database });
    return {
      store,
      teardown: async () => {
        await dropper.dropDatabase();
        await dropper.close();
      },
    };
  });

  it('versions its record schema: a newer gateway migrates an older store, an older one refuses a newer store', async () => {
    const database = `${prefix}_schema`;
    const step: StoreSchemaStep = {
      to: 2,
      description: 'label every record with its origin',
      migrateImage: (record) => ({ ...record, labels: { ...record.labels, 'org.example.origin': record.system } }),
    };
    const old = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database, schemaSteps: [] });
    try {
      const record = await old.insert({ system: 'cluster', itype: 'docker', status: 'READY', tags: ['a:1'] });
      // Two gateways of the new release start together: the records are migrated once.
      const [a, b] = await Promise.all([
        MongoMetadataStore.connect({ url: serviceValue('mongo'), database, schemaSteps: [step] }),
        MongoMetadataStore.connect({ url: serviceValue('mongo'), database, schemaSteps: [step] }),
      ]);
      expect(await a.findReadyByTag('cluster', 'docker', 'a:1')).toEqual({
        ...record,
        labels: { 'org.example.origin': 'cluster' },
      });
      await Promise.all([a.close(), b.close()]);
      await expect(
        MongoMetadataStore.connect({ url: serviceValue('mongo'), database, schemaSteps: [] }),
      ).rejects.toMatchObject({
        code: 'SHIFTER_STORE_SCHEMA_NEWER',
        retryable: false,
        message: expect.stringMatching(/written by a newer Shifter/),
      });
    } finally {
      await old.dropDatabase();
      await old.close();
    }
  });

  it('enforces the in-flight key across two connections (two gateway instances)', async () => {
    const database = `${prefix}_shared`;
    const a = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database });
    const b = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database });
    try {
      const request = { system: 's', itype: 'docker', pulltag: 'alpine:3', status: 'INIT' as const };
      const results = await Promise.all(
        Array.from({ length: 25 }, (_, i) => (i % 2 ? a : b).createOrGetInFlight(request)),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.record.recordId)).size).toBe(1);
      // FerretDB applies filtered updates non-atomically; the store's per-document lock must make claims exclusive.
      const job = await a.createJob({ kind: 'pull', system: 's' });
      const claims = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).claimJob(job.id, { owner: `w${i}`, leaseMs: 60_000 })),
      );
      expect(claims.filter((c) => c !== null)).toHaveLength(1);
      const record = results[0]!.record;
      const updates = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).update(record.recordId, { status: 'PENDING' }, { expectRevision: 1 }),
        ),
      );
      expect(updates.filter((u) => u.status === 'fulfilled')).toHaveLength(1);
    } finally {
      await a.dropDatabase();
      await a.close();
      await b.close();
    }
  });

  it('moves records of one ACL per record onto the ACL per tag when it connects', async () => {
    const database = `${prefix}_migrate`;
    const first = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database });
    const { MongoClient } = await import('mongodb');
    const client = new MongoClient(serviceValue('mongo'));
    try {
      const record = await first.insert({
        system: 's',
        itype: 'docker',
        status: 'READY',
        tags: ['a:1', 'b:1'],
        private: true,
        userAcl: [2001],
        groupAcl: [7],
      });
      await first.close();
      await client.connect();
      const images = client.db(database).collection<{ _id: string }>('shifter_images');
      await images.updateOne({ _id: record.recordId }, { $unset: { tagAccess: '', requester: '' } });
      // …in a store of the record-model version before it (store-schema.ts step 2).
      await client
        .db(database)
        .collection<{ _id: string; version: number }>('shifter_schema')
        .updateOne({ _id: 'records' }, { $set: { version: 1 } });
      expect(await images.findOne({ _id: record.recordId })).not.toHaveProperty('tagAccess');
      const second = await MongoMetadataStore.connect({ url: serviceValue('mongo'), database });
      const access = { private: true, userAcl: [2001], groupAcl: [7] };
      expect((await second.get(record.recordId))?.tagAccess).toEqual([
        { tag: 'a:1', ...access },
        { tag: 'b:1', ...access },
      ]);
      const stored = (await images.findOne({ _id: record.recordId })) as Record<string, unknown> | null;
      expect(stored?.tagAccess).toEqual([
        { tag: 'a:1', ...access },
        { tag: 'b:1', ...access },
      ]);
      expect(stored?.requester).toBeNull();
      expect(
        (
          await client
            .db(database)
            .collection<{ _id: string; version: number }>('shifter_schema')
            .findOne({ _id: 'records' })
        )?.version,
      ).toBe(2);
      await second.dropDatabase();
      await second.close();
    } finally {
      await client.close();
    }
  });

  it('reports SHIFTER_STORE_UNAVAILABLE when the server cannot be reached', async () => {
    await expect(
      MongoMetadataStore.connect({ url: 'mongodb://127.0.0.1:1/', clientOptions: { serverSelectionTimeoutMS: 300 } }),
    ).rejects.toMatchObject({ code: 'SHIFTER_STORE_UNAVAILABLE', retryable: true });
  });
});
