import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ShifterError } from '../errors/index.js';
import { SqliteMetadataStore } from './sqlite-metadata-store.js';
import { pendingStoreSchemaSteps, type StoreSchemaStep, storeSchemaVersion } from './store-schema.js';

// A step as a later release would write it: records gain a label (idempotent: setting it twice changes nothing).
const addOrigin: StoreSchemaStep = {
  to: 2,
  description: 'label every record with its origin',
  migrateImage: (record) => ({ ...record, labels: { ...record.labels, 'org.example.origin': record.system } }),
};

describe('pendingStoreSchemaSteps', () => {
  it('treats an unversioned store as version 1 and returns the steps after the stored version', () => {
    expect(storeSchemaVersion([])).toBe(1);
    expect(storeSchemaVersion([addOrigin])).toBe(2);
    expect(pendingStoreSchemaSteps(undefined, [addOrigin])).toEqual([addOrigin]);
    expect(pendingStoreSchemaSteps(1, [addOrigin])).toEqual([addOrigin]);
    expect(pendingStoreSchemaSteps(2, [addOrigin])).toEqual([]);
  });

  it('refuses a newer store, an invalid version and steps out of order', () => {
    const newer = (() => {
      try {
        pendingStoreSchemaSteps(3, [addOrigin]);
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(ShifterError.isInstance(newer)).toBe(true);
    expect(newer).toMatchObject({ code: 'SHIFTER_STORE_SCHEMA_NEWER', retryable: false, exitCode: 78 });
    expect((newer as Error).message).toMatch(
      /newer Shifter \(record schema version 3; this gateway supports up to 2\)/,
    );
    expect(() => pendingStoreSchemaSteps(0, [])).toThrow(/invalid schema version 0/);
    expect(() => pendingStoreSchemaSteps(1, [{ ...addOrigin, to: 3 }])).toThrow(/produces version 3, expected 2/);
  });
});

describe('SqliteMetadataStore record schema', () => {
  const withDir = async (body: (path: string) => Promise<void>): Promise<void> => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-schema-'));
    try {
      await body(join(dir, 'gateway.sqlite'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('a newer gateway migrates the records of an older store, once', async () => {
    await withDir(async (path) => {
      const old = new SqliteMetadataStore({ path, schemaSteps: [] });
      const record = await old.insert({ system: 'cluster', itype: 'docker', status: 'READY', tags: ['a:1'] });
      await old.close();
      expect(new Database(path).prepare('SELECT version FROM store_schema').pluck().get()).toBe(1);

      const upgraded = new SqliteMetadataStore({ path, schemaSteps: [addOrigin] });
      const migrated = await upgraded.findReadyByTag('cluster', 'docker', 'a:1');
      expect(migrated).toEqual({ ...record, labels: { 'org.example.origin': 'cluster' } });
      await upgraded.close();
      expect(new Database(path).prepare('SELECT version FROM store_schema').pluck().get()).toBe(2);

      // A second open finds nothing to do: a step that would fail is never run.
      const failing: StoreSchemaStep = {
        ...addOrigin,
        migrateImage: () => {
          throw new Error('ran twice');
        },
      };
      const again = new SqliteMetadataStore({ path, schemaSteps: [failing] });
      expect(await again.get(record.recordId)).toEqual(migrated);
      await again.close();
    });
  });

  it('an older gateway refuses a store migrated by a newer one and leaves it untouched', async () => {
    await withDir(async (path) => {
      const newer = new SqliteMetadataStore({ path, schemaSteps: [addOrigin] });
      const record = await newer.insert({ system: 'cluster', itype: 'docker', status: 'READY', tags: ['a:1'] });
      await newer.close();
      expect(() => new SqliteMetadataStore({ path, schemaSteps: [] })).toThrow(/written by a newer Shifter/);
      const reopened = new SqliteMetadataStore({ path, schemaSteps: [addOrigin] });
      expect(await reopened.get(record.recordId)).toEqual(record);
      await reopened.close();
    });
  });

  it('a store from before versioning (no store_schema table) counts as version 1', async () => {
    await withDir(async (path) => {
      const first = new SqliteMetadataStore({ path, schemaSteps: [] });
      const record = await first.insert({ system: 'cluster', itype: 'docker', status: 'READY', tags: ['a:1'] });
      await first.close();
      const db = new Database(path);
      db.exec('DROP TABLE store_schema');
      db.close();
      const upgraded = new SqliteMetadataStore({ path, schemaSteps: [addOrigin] });
      expect((await upgraded.get(record.recordId))?.labels).toEqual({ 'org.example.origin': 'cluster' });
      await upgraded.close();
    });
  });

  it('a failing step rolls the whole migration back', async () => {
    await withDir(async (path) => {
      const old = new SqliteMetadataStore({ path, schemaSteps: [] });
      const a = await old.insert({ system: 'cluster', itype: 'docker', status: 'READY', tags: ['a:1'] });
      await old.insert({ system: 'cluster', itype: 'docker', status: 'READY', tags: ['b:1'] });
      await old.close();
      let calls = 0;
      const breaksOnSecond: StoreSchemaStep = {
        ...addOrigin,
        migrateImage: (record) => {
          if (++calls === 2) throw new Error('disk on fire');
          return addOrigin.migrateImage(record);
        },
      };
      expect(() => new SqliteMetadataStore({ path, schemaSteps: [breaksOnSecond] })).toThrow(/disk on fire/);
      const db = new Database(path);
      expect(db.prepare('SELECT version FROM store_schema').pluck().get()).toBe(1);
      db.close();
      const reopened = new SqliteMetadataStore({ path, schemaSteps: [] });
      expect(await reopened.get(a.recordId)).toEqual(a);
      await reopened.close();
    });
  });
});
