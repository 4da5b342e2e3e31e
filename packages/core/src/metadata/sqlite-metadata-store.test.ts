import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { describeMetadataStoreContract } from '../testing/contracts/metadata-store-contract.js';
import { SQLITE_SCHEMA_VERSION, SqliteMetadataStore } from './sqlite-metadata-store.js';

describeMetadataStoreContract('SqliteMetadataStore (in memory)', async ({ now }) => ({
  store: new SqliteMetadataStore({ path: ':memory:', now }),
}));

describeMetadataStoreContract('SqliteMetadataStore (file, WAL)', async ({ now }) => {
  const dir = mkdtempSync(join(tmpdir(), 'shifter-sqlite-'));
  return {
    store: new SqliteMetadataStore({ path: join(dir, 'sub', 'gateway.sqlite'), now }),
    teardown: async () => rmSync(dir, { recursive: true, force: true }),
  };
});

describe('SqliteMetadataStore', () => {
  it('keeps records and jobs across a close and reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-sqlite-'));
    try {
      const path = join(dir, 'gateway.sqlite');
      const first = new SqliteMetadataStore({ path });
      const record = await first.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['a:1'] });
      const job = await first.createJob({ kind: 'pull', system: 's', payload: { recordId: record.recordId } });
      await first.close();
      const second = new SqliteMetadataStore({ path });
      expect(await second.findReadyByTag('s', 'docker', 'a:1')).toEqual(record);
      expect((await second.listClaimableJobs('s')).map((j) => j.id)).toEqual([job.id]);
      await second.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('moves records of one ACL per record onto the ACL per tag when it opens the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-sqlite-'));
    try {
      const path = join(dir, 'gateway.sqlite');
      const first = new SqliteMetadataStore({ path });
      const privateRecord = await first.insert({
        system: 's',
        itype: 'docker',
        status: 'READY',
        tags: ['a:1', 'b:1'],
        private: true,
        userAcl: [2001],
        groupAcl: [],
      });
      const publicRecord = await first.insert({
        system: 's',
        itype: 'docker',
        status: 'READY',
        tags: ['c:1'],
        private: false,
      });
      const inFlight = await first.createOrGetInFlight({
        system: 's',
        itype: 'docker',
        pulltag: 'd:1',
        status: 'PULLING',
      });
      await first.close();
      // Write the records back in the shape they had before the model per tag: no tagAccess, no requester.
      const db = new Database(path);
      for (const row of db.prepare('SELECT record_id, doc FROM images').all() as { record_id: string; doc: string }[]) {
        const { tagAccess: _access, requester: _requester, ...old } = JSON.parse(row.doc) as Record<string, unknown>;
        db.prepare('UPDATE images SET doc = ? WHERE record_id = ?').run(JSON.stringify(old), row.record_id);
      }
      // …in a store of the record-model version before it (store-schema.ts step 2).
      db.prepare('UPDATE store_schema SET version = 1').run();
      db.close();
      const second = new SqliteMetadataStore({ path });
      const migrated = await second.get(privateRecord.recordId);
      expect(migrated?.tagAccess).toEqual([
        { tag: 'a:1', private: true, userAcl: [2001], groupAcl: [] },
        { tag: 'b:1', private: true, userAcl: [2001], groupAcl: [] },
      ]);
      expect(migrated?.requester).toBeNull();
      expect((await second.findReadyByTag('s', 'docker', 'c:1'))?.tagAccess).toEqual([
        { tag: 'c:1', private: false, userAcl: [], groupAcl: [] },
      ]);
      expect(publicRecord.tagAccess).toEqual([{ tag: 'c:1', private: false, userAcl: [], groupAcl: [] }]);
      // An in-flight record of the old shape keeps its key.
      expect((await second.findInFlight('s', 'docker', 'd:1'))?.recordId).toBe(inFlight.record.recordId);
      await second.close();
      // Nothing is left of the old shape on disk.
      const check = new Database(path);
      const docs = (check.prepare('SELECT doc FROM images').all() as { doc: string }[]).map(
        (row) => JSON.parse(row.doc) as Record<string, unknown>,
      );
      check.close();
      expect(docs.every((doc) => Array.isArray(doc.tagAccess) && 'requester' in doc)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a database written by a newer schema version', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-sqlite-'));
    try {
      const path = join(dir, 'gateway.sqlite');
      await new SqliteMetadataStore({ path }).close();
      const db = new Database(path);
      db.prepare('UPDATE schema_version SET version = ?').run(SQLITE_SCHEMA_VERSION + 1);
      db.close();
      expect(() => new SqliteMetadataStore({ path })).toThrowError(
        expect.objectContaining({ code: 'SHIFTER_STORE_UNAVAILABLE', retryable: false }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports SHIFTER_STORE_UNAVAILABLE after close and when the file cannot be opened', async () => {
    const store = new SqliteMetadataStore({ path: ':memory:' });
    await store.close();
    await expect(store.get('x')).rejects.toMatchObject({ code: 'SHIFTER_STORE_UNAVAILABLE' });
    expect(() => new SqliteMetadataStore({ path: '/etc/passwd/sub/x.sqlite' })).toThrowError(
      expect.objectContaining({ code: 'SHIFTER_STORE_UNAVAILABLE' }),
    );
  });

  describe('findReadyByTag answers from its cache only while they are current', () => {
    it("sees this store's own updates, tag moves, tag removals and deletes of a tag it answered before", async () => {
      let clock = 1000;
      const store = new SqliteMetadataStore({ path: ':memory:', now: () => clock++ });
      const a = await store.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['app:1'] });
      expect((await store.findReadyByTag('s', 'docker', 'app:1'))?.recordId).toBe(a.recordId);
      expect(await store.findReadyByTag('s', 'docker', 'app:2')).toBeNull();

      const bumped = await store.update(a.recordId, { expiration: 5000 });
      expect(await store.findReadyByTag('s', 'docker', 'app:1')).toEqual(bumped);

      // A second READY record takes the tag; the first loses it.
      const b = await store.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['app:2'] });
      expect((await store.findReadyByTag('s', 'docker', 'app:2'))?.recordId).toBe(b.recordId);
      await store.moveTag(b.recordId, 'app:1');
      expect((await store.findReadyByTag('s', 'docker', 'app:1'))?.recordId).toBe(b.recordId);

      await store.removeTag(b.recordId, 'app:2');
      expect(await store.findReadyByTag('s', 'docker', 'app:2')).toBeNull();

      await store.update(b.recordId, { status: 'EXPIRED' });
      expect(await store.findReadyByTag('s', 'docker', 'app:1')).toBeNull();

      const c = await store.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['app:3'] });
      expect((await store.findReadyByTag('s', 'docker', 'app:3'))?.recordId).toBe(c.recordId);
      expect(await store.delete(c.recordId)).toBe(true);
      expect(await store.findReadyByTag('s', 'docker', 'app:3')).toBeNull();
      await store.close();
    });

    it('sees commits of another connection to the same file', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'shifter-sqlite-'));
      try {
        const path = join(dir, 'gateway.sqlite');
        const first = new SqliteMetadataStore({ path });
        const second = new SqliteMetadataStore({ path });
        expect(await first.findReadyByTag('s', 'docker', 'x:1')).toBeNull();
        const record = await second.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['x:1'] });
        expect(await first.findReadyByTag('s', 'docker', 'x:1')).toEqual(record);
        const expired = await second.update(record.recordId, { expiration: 42 });
        expect(await first.findReadyByTag('s', 'docker', 'x:1')).toEqual(expired);
        await second.delete(record.recordId);
        expect(await first.findReadyByTag('s', 'docker', 'x:1')).toBeNull();
        await first.close();
        await second.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('hands out frozen records, so one caller cannot change what the next one gets', async () => {
      const store = new SqliteMetadataStore({ path: ':memory:' });
      await store.insert({ system: 's', itype: 'docker', status: 'READY', tags: ['f:1'], env: ['A=1'] });
      const found = (await store.findReadyByTag('s', 'docker', 'f:1'))!;
      expect(Object.isFrozen(found)).toBe(true);
      expect(Object.isFrozen(found.env)).toBe(true);
      expect(() => (found.env as string[]).push('B=2')).toThrow(TypeError);
      expect((await store.findReadyByTag('s', 'docker', 'f:1'))!.env).toEqual(['A=1']);
      await store.close();
    });
  });
});
