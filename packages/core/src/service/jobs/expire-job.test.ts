import { describe, expect, it } from 'vitest';
import type { JobRecord } from '../../jobs/index.js';
import { ExpireJob } from './expire-job.js';
import { MemoryRecords, MemoryTransfer } from './jobs.test-support.js';

const job = { id: 'j1', kind: 'expire', system: 'cluster' } as JobRecord;
const id = 'a'.repeat(64);

describe('ExpireJob', () => {
  it('removes the files of an EXPIRING image, its tags, and marks it EXPIRED', async () => {
    const store = new MemoryRecords();
    const transfer = new MemoryTransfer();
    transfer.onSystem.add(id);
    const record = store.add({ status: 'EXPIRING', imageId: id, tags: ['busybox:latest', 'busybox:1'] });
    const result = await new ExpireJob({ store, transferFor: () => transfer }).run(job, { recordId: record.recordId });
    expect(result).toEqual({ imageId: id, removed: true });
    expect(transfer.calls).toEqual([{ method: 'remove', args: [id] }]);
    expect(store.records.get(record.recordId)).toMatchObject({ status: 'EXPIRED', tags: [] });
  });

  it('keeps the files another READY record carries', async () => {
    const store = new MemoryRecords();
    const transfer = new MemoryTransfer();
    transfer.onSystem.add(id);
    const record = store.add({ status: 'EXPIRING', imageId: id, tags: ['a:1'] });
    store.add({ status: 'READY', imageId: id, tags: ['b:1'] });
    expect(await new ExpireJob({ store, transferFor: () => transfer }).run(job, { recordId: record.recordId })).toEqual(
      { imageId: id, removed: false },
    );
    expect(transfer.calls).toEqual([]);
    expect(transfer.onSystem.has(id)).toBe(true);
    expect(store.records.get(record.recordId)?.status).toBe('EXPIRED');
  });

  it('leaves a record that is not EXPIRING alone (a redelivered job)', async () => {
    const store = new MemoryRecords();
    const transfer = new MemoryTransfer();
    const record = store.add({ status: 'EXPIRED', imageId: id });
    expect(await new ExpireJob({ store, transferFor: () => transfer }).run(job, { recordId: record.recordId })).toEqual(
      { skipped: true },
    );
    expect(store.calls).toEqual([]);
    expect(transfer.calls).toEqual([]);
  });
});
