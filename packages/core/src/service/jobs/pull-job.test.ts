import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JobContext, JobRecord } from '../../jobs/index.js';
import { parseMeta, writeMetaFile } from '../../meta/meta-format.js';
import { parseReference } from '../../reference/index.js';
import type { MetaAccess } from '../../convert/index.js';
import type { ImagePuller, PullTarget } from '../image-puller.js';
import { MemoryRecords, MemoryTransfer, recordingPlacement, recordingProgress } from './jobs.test-support.js';
import { PullJob, type PullJobDeps } from './pull-job.js';

// The pull handler alone, with fakes of exactly the dependencies it declares.

const digest = `sha256:${'b'.repeat(64)}`;
const id = 'b'.repeat(64);
const job = { id: 'j1', kind: 'pull', system: 'cluster' } as JobRecord;
const context: JobContext = {
  signal: new AbortController().signal,
  workerId: 'w',
  attempt: 1,
  heartbeat: async () => {},
};

class FakePuller implements ImagePuller {
  isPrivate = false;
  readonly calls: { method: string; login: PullTarget['login'] }[] = [];
  async resolve(target: PullTarget) {
    this.calls.push({ method: 'resolve', login: target.login });
    return { digest, private: this.isPrivate };
  }
  async prove(target: PullTarget & { digest: string }) {
    this.calls.push({ method: 'prove', login: target.login });
  }
  async fetch(target: PullTarget & { digest: string; outDir: string; access?: () => Promise<MetaAccess> }) {
    this.calls.push({ method: 'fetch', login: target.login });
    const squashfsPath = join(target.outDir, `${id}.squashfs`);
    writeFileSync(squashfsPath, 'image');
    // As the real puller: the .meta is written once, with the ACL asked for after the squashfs exists.
    const acl = (await target.access?.()) ?? {};
    const metaPath = join(target.outDir, `${id}.meta`);
    writeMetaFile(metaPath, {
      format: 'squashfs',
      env: ['A=1'],
      cmd: ['/bin/sh'],
      workdir: '/w',
      entrypoint: null,
      ...acl,
    });
    return {
      squashfsPath,
      metaPath,
      metadata: { env: ['A=1'], entrypoint: null, cmd: ['/bin/sh'], workdir: '/w', labels: { l: 'v' }, user: null },
    };
  }
}

let dir: string;
let store: MemoryRecords;
let transfer: MemoryTransfer;
let puller: FakePuller;
let progress: ReturnType<typeof recordingProgress>;
let placement: ReturnType<typeof recordingPlacement>;

function pullJob(overrides: Partial<PullJobDeps> = {}): PullJob {
  return new PullJob({
    config: { examiner: undefined, enableLabels: false, storage: { expandDir: dir } },
    store,
    transferFor: () => transfer,
    puller,
    now: () => 5_000,
    system: () => ({ platform: 'linux/amd64' }),
    referenceOf: (tag) => parseReference(tag),
    expirationFrom: (now) => now + 1000,
    progress,
    placement,
    ...overrides,
  });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'shifter-pull-job-'));
  store = new MemoryRecords();
  transfer = new MemoryTransfer();
  puller = new FakePuller();
  progress = recordingProgress(store);
  placement = recordingPlacement();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('PullJob', () => {
  it('resolves, fetches, transfers the image with its .meta and makes the record READY', async () => {
    const record = store.add({ status: 'PENDING', userAcl: [1000], groupAcl: [] });
    const result = await pullJob().runPull(job, { recordId: record.recordId, tag: 'busybox:latest' }, context);
    expect(result).toEqual({ imageId: id, metadataOnly: false });
    expect(puller.calls.map((call) => call.method)).toEqual(['resolve', 'fetch']);
    expect(progress.states.map((state) => state.status)).toEqual(['PULLING', 'PULLING', 'PULLING', 'TRANSFER']);
    expect(parseMeta(transfer.metas.get(id)!)).toMatchObject({ cmd: ['/bin/sh'], env: ['A=1'], workdir: '/w' });
    expect(store.records.get(record.recordId)).toMatchObject({
      status: 'READY',
      imageId: id,
      manifestDigest: digest,
      expiration: 6_000,
      labels: {},
      private: false,
      tags: ['busybox:latest'],
    });
    expect(placement.calls.map((call) => call.method)).toEqual(['settleFileAccess']);
    expect(progress.forgotten).toEqual([record.recordId]);
  });

  it('passes the payload login to the registry and keeps a private image private to the requested ACL', async () => {
    puller.isPrivate = true;
    const record = store.add({ status: 'PENDING', userAcl: [1000], groupAcl: [3000] });
    const login = { username: 'u', password: 'p' };
    await pullJob({ config: { examiner: undefined, enableLabels: true, storage: { expandDir: dir } } }).runPull(
      job,
      { recordId: record.recordId, tag: 'reg.example/team/x:1', secrets: { login } },
      context,
    );
    expect(puller.calls.every((call) => call.login === login)).toBe(true);
    expect(transfer.calls[0]?.args[3]).toEqual({ private: true });
    expect(store.records.get(record.recordId)).toMatchObject({
      status: 'READY',
      private: true,
      userAcl: [1000],
      groupAcl: [3000],
      labels: { l: 'v' },
    });
  });

  it('gives the tag to an image already on the system only after the registry proved it serves it', async () => {
    const existing = store.add({ status: 'READY', imageId: id, tags: ['other:1'] });
    transfer.onSystem.add(id);
    const record = store.add({ status: 'PENDING' });
    const result = await pullJob().runPull(job, { recordId: record.recordId, tag: 'busybox:latest' }, context);
    expect(result).toEqual({ imageId: id, metadataOnly: true });
    expect(puller.calls.map((call) => call.method)).toEqual(['resolve', 'prove']);
    expect(transfer.calls).toEqual([]);
    expect(placement.calls).toHaveLength(1);
    expect(placement.calls[0]?.method).toBe('attachTag');
    const [target, request, tag] = placement.calls[0]!.args as [{ recordId: string }, { recordId: string }, string];
    expect([target.recordId, request.recordId, tag]).toEqual([existing.recordId, record.recordId, 'busybox:latest']);
  });

  it('does nothing for a record no longer in flight (a redelivered job)', async () => {
    const record = store.add({ status: 'READY', imageId: id });
    expect(await pullJob().runPull(job, { recordId: record.recordId, tag: 'busybox:latest' }, context)).toEqual({
      skipped: true,
    });
    expect(puller.calls).toEqual([]);
    expect(store.calls).toEqual([]);
  });
});
