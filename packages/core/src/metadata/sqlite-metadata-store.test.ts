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

  it('refuses a database written by a newer schema version', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-sqlite-'));
    try {
      const path = join(dir, 'gateway.sqlite');
      await new SqliteMetadataStore({ path }).close();
      const db = new Database(path);
      db.prepare('UPDATE schema_version SET version = ?').run(SQLITE_SCHEMA_VERSION + 1);
      db.close();
      expect(() => new SqliteMetadataStore({ path })).toThrowError(expect.objectContaining({ code: 'SHIFTER_STORE_UNAVAILABLE', retryable: false }));
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
});
