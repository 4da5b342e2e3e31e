import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteMetadataStore } from '../metadata/sqlite-metadata-store.js';
import { migrateUpstream, migrationSystems, type UpstreamSource } from './migrate-upstream.js';
import { parseUpstreamImage } from './upstream-records.js';

const systems = new Set(['sys']);
const ID = 'ab'.repeat(32);
const base = { _id: 'r1', system: 'sys', itype: 'docker', status: 'READY', tag: ['a:1'], id: ID, format: 'squashfs' };

describe('parseUpstreamImage', () => {
  it("maps upstream's one ACL: private only when private is not false and a list is non-empty (upstream _checkread)", () => {
    const access = (doc: Record<string, unknown>) => {
      const parsed = parseUpstreamImage({ ...base, ...doc }, systems);
      return 'ok' in parsed ? parsed.ok.access : parsed.skip;
    };
    expect(access({ private: true, userACL: [1001, 1000, 1001], groupACL: [5] })).toEqual({
      private: true,
      userAcl: [1000, 1001],
      groupAcl: [5],
    });
    expect(access({ private: null, userACL: [1000], groupACL: null })).toEqual({
      private: true,
      userAcl: [1000],
      groupAcl: [],
    });
    expect(access({ private: false, userACL: [1000] })).toEqual({ private: false, userAcl: [], groupAcl: [] });
    expect(access({ private: true, userACL: [], groupACL: [] })).toEqual({ private: false, userAcl: [], groupAcl: [] });
    expect(access({ userACL: [-1] })).toMatch(/userACL holds -1, not an id/);
    expect(access({ groupACL: ['wheel'] })).toMatch(/groupACL holds "wheel"/);
  });

  it('reads times in seconds (no expiration: never expires), lone-string tags, MISSING values, and refuses odd records', () => {
    const parsed = parseUpstreamImage(
      {
        ...base,
        tag: 'old:1',
        last_pull: 1_700_000_000.5,
        ENTRY: 'MISSING',
        WORKDIR: 'MISSING',
        LABELS: { 'org.x': 'y', n: 1 },
      },
      systems,
    );
    expect(parsed).toMatchObject({
      ok: {
        tags: ['old:1'],
        lastPull: 1_700_000_000_500,
        expiration: null,
        entrypoint: null,
        workdir: null,
        labels: { 'org.x': 'y' },
      },
    });
    expect(parseUpstreamImage({ ...base, expiration: 1_800_000_000 }, systems)).toMatchObject({
      ok: { expiration: 1_800_000_000_000 },
    });
    const reason = (doc: Record<string, unknown>) => {
      const result = parseUpstreamImage({ ...base, ...doc }, systems);
      return 'skip' in result ? result.skip : 'taken';
    };
    expect(reason({ status: 'EXPIRED' })).toMatch(/^status EXPIRED/);
    expect(reason({ system: 'other' })).toMatch(/not configured/);
    expect(reason({ tag: [] })).toMatch(/no usable tag/);
    expect(reason({ id: '../x' })).toMatch(/not a hexadecimal id/);
    expect(reason({ id: '.hidden' })).toMatch(/not a hexadecimal id/);
    expect(reason({ format: 'cramfs' })).toMatch(/only squashfs/);
    // Ids that are not manifest digests (imports' fasthash, native mode's v1 layer ids) are fine: they name files.
    expect(reason({ id: 'deadbeef' })).toBe('taken');
  });
});

describe('migrateUpstream (SQLite store, fake upstream source)', () => {
  let dir: string;
  let store: SqliteMetadataStore;
  const source = (images: Record<string, unknown>[]): UpstreamSource => ({
    images: async function* () {
      yield* images;
    },
    metrics: async function* () {
      yield { _id: 'm1', user: 'u', uid: 1000, system: 'sys', type: 'docker', tag: 'a:1', id: ID, time: 1_700_000_000 };
    },
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'migrate-'));
    mkdirSync(join(dir, 'upstream'));
    mkdirSync(join(dir, 'ours'));
    writeFileSync(join(dir, 'upstream', `${ID}.squashfs`), Buffer.concat([Buffer.from('hsqs'), Buffer.alloc(60)]));
    writeFileSync(join(dir, 'upstream', `${ID}.meta`), "FORMAT: squashfs\nCMD: ['/bin/sh']\nUSERACL: 1000\n");
    store = new SqliteMetadataStore({ path: join(dir, 'db.sqlite') });
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies the files into another image directory through temp names, then a second run changes nothing', async () => {
    const systemsOf = { sys: { sourceDir: join(dir, 'upstream'), targetDir: join(dir, 'ours') } };
    const images = [{ ...base, private: true, userACL: [1000], last_pull: 1_700_000_000 }];
    const dry = await migrateUpstream({ source: source(images), store, systems: systemsOf, dryRun: true });
    expect(dry.images.taken).toMatchObject([{ copied: true, recordId: null }]);
    expect(await store.list()).toEqual([]);
    const first = await migrateUpstream({ source: source(images), store, systems: systemsOf });
    expect(first.images.taken).toMatchObject([{ copied: true, private: true, tags: ['a:1'] }]);
    const [record] = await store.list();
    expect(record).toMatchObject({
      status: 'READY',
      imageId: ID,
      manifestDigest: null,
      userAcl: [1000],
      private: true,
      cmd: ['/bin/sh'],
      lastPull: 1_700_000_000_000,
    });
    const second = await migrateUpstream({ source: source(images), store, systems: systemsOf });
    expect(second.images).toMatchObject({ taken: [], unchanged: [{ copied: false }] });
    expect(second.metrics).toMatchObject({ taken: 0, unchanged: 1 });
  });

  it('skips a record whose .meta ACL disagrees, and never takes a tag that already names another image', async () => {
    const systemsOf = { sys: { sourceDir: join(dir, 'upstream'), targetDir: null } };
    const publicRecord = await migrateUpstream({
      source: source([{ ...base, private: false }]),
      store,
      systems: systemsOf,
    });
    expect(publicRecord.images.skipped[0]?.reason).toMatch(/ACL in .*\.meta differs/);
    await store.insert({ system: 'sys', itype: 'docker', status: 'READY', tags: ['a:1'], imageId: 'cd'.repeat(32) });
    const clash = await migrateUpstream({
      source: source([{ ...base, private: true, userACL: [1000] }]),
      store,
      systems: systemsOf,
    });
    expect(clash.images.skipped[0]?.reason).toMatch(/tag a:1 already names image cdcd/);
  });

  it('needs a local view of the image directory of a system delivering over ssh', () => {
    expect(() => migrationSystems({ far: { transfer: { kind: 'ssh' } } })).toThrow(/--image-dir far=DIR/);
    expect(migrationSystems({ far: { transfer: { kind: 'ssh' } } }, { far: '/mnt/far' })).toEqual({
      far: { sourceDir: '/mnt/far', targetDir: null },
    });
    expect(() => migrationSystems({}, { nope: '/x' })).toThrow(/not configured/);
  });
});
