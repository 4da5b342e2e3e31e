import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobRecord } from '../../jobs/index.js';
import { parseMeta } from '../../meta/meta-format.js';
import type { ImportCaller } from '../service-types.js';
import { ImportJob, type ImportJobDeps } from './import-job.js';
import { MemoryRecords, MemoryTransfer, recordingPlacement, recordingProgress } from './jobs.test-support.js';

// The import handler alone, with fakes of exactly the dependencies it declares.

const id = 'c'.repeat(64);
const job = { id: 'j1', kind: 'import', system: 'cluster' } as JobRecord;
const signal = new AbortController().signal;
const alice: ImportCaller = { uid: 1000, gid: 1000, groups: [1000], user: 'alice' };

let dir: string;
let store: MemoryRecords;
let transfer: MemoryTransfer;
let progress: ReturnType<typeof recordingProgress>;
let placement: ReturnType<typeof recordingPlacement>;
let reads: { caller: ImportCaller; path: string; options: unknown }[];

function importJob(overrides: Partial<ImportJobDeps> = {}): ImportJob {
  return new ImportJob({
    config: { storage: { expandDir: dir }, limits: { maxImportBytes: 1 << 20, importTimeoutMs: 10_000 } },
    store,
    transferFor: () => transfer,
    system: () => ({ transfer: { kind: 'local', imageDir: '/images' } }) as never,
    readFileAs: async (caller, path, destination, options) => {
      reads.push({ caller, path, options });
      writeFileSync(destination, 'squashfs bytes');
    },
    now: () => 7_000,
    expirationFrom: (now) => now + 1000,
    progress,
    placement,
    checkSquashfs: async () => undefined,
    hashFile: async () => id,
    ...overrides,
  });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'shifter-import-job-'));
  store = new MemoryRecords();
  transfer = new MemoryTransfer();
  progress = recordingProgress(store);
  placement = recordingPlacement();
  reads = [];
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ImportJob', () => {
  it('reads the file as the caller within the limits, transfers it and makes the record READY', async () => {
    const record = store.add({ status: 'PENDING', private: true, userAcl: [1000], groupAcl: [] });
    const payload = { recordId: record.recordId, tag: 'mine:1', filepath: '/home/alice/x.sqsh', caller: alice };
    expect(await importJob().run(job, payload, { signal })).toEqual({ imageId: id });
    expect(reads).toEqual([
      { caller: alice, path: '/home/alice/x.sqsh', options: { maxBytes: 1 << 20, timeoutMs: 10_000, signal } },
    ]);
    expect(progress.states.map((state) => state.status)).toEqual(['HASHING', 'HASHING', 'TRANSFER']);
    expect(transfer.calls[0]?.args[3]).toEqual({ private: true });
    expect(parseMeta(transfer.metas.get(id)!)).toMatchObject({ user: 'alice', userACL: [1000] });
    expect(store.records.get(record.recordId)).toMatchObject({
      status: 'READY',
      imageId: id,
      expiration: 8_000,
      tags: ['mine:1'],
    });
    expect(placement.calls.map((call) => call.method)).toEqual(['settleFileAccess']);
  });

  it('joins identical content already on the system without transferring it again', async () => {
    const existing = store.add({ status: 'READY', imageId: id, tags: ['theirs:1'] });
    transfer.onSystem.add(id);
    const record = store.add({ status: 'PENDING' });
    const payload = { recordId: record.recordId, tag: 'mine:1', filepath: '/x.sqsh', caller: alice };
    expect(await importJob().run(job, payload, { signal })).toEqual({ imageId: id });
    expect(transfer.calls).toEqual([]);
    expect(placement.calls.map((call) => call.method)).toEqual(['attachTag']);
    expect((placement.calls[0]?.args[0] as { recordId: string }).recordId).toBe(existing.recordId);
  });

  it('refuses systems without a local image directory before reading anything', async () => {
    const record = store.add({ status: 'PENDING' });
    const payload = { recordId: record.recordId, tag: 'mine:1', filepath: '/x.sqsh', caller: alice };
    await expect(
      importJob({ system: () => ({ transfer: { kind: 'ssh' } }) as never }).run(job, payload, { signal }),
    ).rejects.toMatchObject({ code: 'SHIFTER_IMPORT_INVALID' });
    expect(reads).toEqual([]);
    expect(store.calls).toEqual([]);
  });

  it('does nothing for a record no longer in flight', async () => {
    const record = store.add({ status: 'FAILURE' });
    const payload = { recordId: record.recordId, tag: 'mine:1', filepath: '/x.sqsh', caller: alice };
    expect(await importJob().run(job, payload, { signal })).toEqual({ skipped: true });
    expect(reads).toEqual([]);
  });
});
