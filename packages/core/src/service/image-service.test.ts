import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.js';
import { IntegrityError, RegistryError, ShifterError } from '../errors/index.js';
import type { JobContext, JobHandler, JobQueue, JobRecord, NewJob, ProcessOptions } from '../jobs/index.js';
import { parseMeta, writeMetaFile } from '../meta/meta-format.js';
import type { MetaAccess } from '../convert/index.js';
import { SqliteMetadataStore } from '../metadata/sqlite-metadata-store.js';
import type { Transfer } from '../transfer/index.js';
import type { Caller } from './caller.js';
import type { ImagePuller, PullTarget } from './image-puller.js';
import { FAILURE_HOLD_MS, ImageService, pickLogin } from './image-service.js';

// Unit tests: a real SQLite store (in memory) with fakes for the queue, the registry side and the transfer.

/** A queue that runs jobs one at a time on demand (`drain()`), through the store's claim/complete/fail. */
class ManualQueue implements JobQueue {
  handlers = new Map<string, { handler: JobHandler; options: ProcessOptions }>();
  enqueued: JobRecord[] = [];
  constructor(private readonly store: SqliteMetadataStore) {}
  async enqueue(job: NewJob): Promise<JobRecord> {
    const record = await this.store.createJob(job);
    this.enqueued.push(record);
    return record;
  }
  async process(system: string, handler: JobHandler, options: ProcessOptions = {}): Promise<void> {
    this.handlers.set(system, { handler, options });
  }
  async close(): Promise<void> {}
  async drain(): Promise<void> {
    for (;;) {
      const jobs = await this.store.listClaimableJobs();
      if (jobs.length === 0) return;
      for (const job of jobs) {
        const entry = this.handlers.get(job.system);
        if (!entry) return;
        const claimed = await this.store.claimJob(job.id, { owner: 'w', leaseMs: 60_000 });
        if (!claimed) continue;
        const context: JobContext = {
          signal: new AbortController().signal,
          workerId: 'w',
          attempt: claimed.attempts,
          heartbeat: async () => {},
        };
        try {
          const result = await entry.handler(claimed, context);
          await this.store.completeJob(job.id, 'w', (result ?? null) as never);
        } catch (error) {
          const shifterError = error as ShifterError;
          const failed = await this.store.failJob(
            job.id,
            'w',
            { code: shifterError.code, message: shifterError.message },
            { retry: shifterError.retryable },
          );
          if (failed?.status === 'failed') await entry.options.onFailed?.(failed);
        }
      }
    }
  }
}

class DirTransfer implements Transfer {
  constructor(readonly imageDir: string) {}
  puts = 0;
  metaPuts = 0;
  async put(localImage: string, localMeta: string, id: string, options: { private?: boolean } = {}) {
    this.puts++;
    await copyFile(localImage, join(this.imageDir, `${id}.squashfs`));
    await copyFile(localMeta, join(this.imageDir, `${id}.meta`));
    await import('node:fs/promises').then((fs) =>
      fs.chmod(join(this.imageDir, `${id}.squashfs`), options.private ? 0o600 : 0o644),
    );
  }
  async putMeta(localMeta: string, id: string) {
    this.metaPuts++;
    await copyFile(localMeta, join(this.imageDir, `${id}.meta`));
  }
  async remove(id: string) {
    const existed = existsSync(join(this.imageDir, `${id}.meta`));
    await rm(join(this.imageDir, `${id}.meta`), { force: true });
    await rm(join(this.imageDir, `${id}.squashfs`), { force: true });
    return existed;
  }
  async exists(id: string) {
    return existsSync(join(this.imageDir, `${id}.meta`)) && existsSync(join(this.imageDir, `${id}.squashfs`));
  }
  async cleanStale() {
    return 0;
  }
}

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

class FakePuller implements ImagePuller {
  digests = new Map<string, string>([['busybox:latest', digestOf(1)]]);
  privateRepos = new Set<string>();
  resolves = 0;
  fetches = 0;
  failWith: ShifterError | null = null;
  logins: (PullTarget['login'] | undefined)[] = [];
  async resolve(target: PullTarget) {
    this.resolves++;
    this.logins.push(target.login);
    if (this.failWith) throw this.failWith;
    const key = target.reference.familiar;
    const digest = this.digests.get(key);
    if (!digest) throw new RegistryError('SHIFTER_REGISTRY_MANIFEST_UNKNOWN', `no tag ${key}`);
    const isPrivate = this.privateRepos.has(key);
    if (isPrivate && !target.login) throw new RegistryError('SHIFTER_REGISTRY_AUTH_FAILED', 'credentials required');
    return { digest, private: isPrivate };
  }
  /** Digests whose blobs the registry of a reference does not serve (an attacker's registry naming others' layers). */
  unproven = new Set<string>();
  proofs: { familiar: string; digest: string; login: PullTarget['login'] | undefined }[] = [];
  async prove(target: PullTarget & { digest: string }) {
    this.proofs.push({ familiar: target.reference.familiar, digest: target.digest, login: target.login });
    if (this.unproven.has(target.reference.familiar))
      throw new IntegrityError('SHIFTER_BLOB_UNPROVEN', 'the registry does not serve the blob');
  }
  async fetch(
    target: PullTarget & { digest: string; outDir: string; access?: () => Promise<MetaAccess> },
    onProgress: (p: never) => void,
  ) {
    this.fetches++;
    onProgress({ phase: 'download', layer: 'sha256:aa', index: 0, count: 1, bytesDone: 10, bytesTotal: 10 } as never);
    const id = target.digest.slice(7);
    const squashfsPath = join(target.outDir, `${id}.squashfs`);
    writeFileSync(squashfsPath, `image ${id}`);
    // As the real puller: the .meta is written once, with the ACL asked for after the squashfs exists.
    const acl = (await target.access?.()) ?? {};
    const metaPath = join(target.outDir, `${id}.meta`);
    writeMetaFile(metaPath, {
      format: 'squashfs',
      env: ['PATH=/bin'],
      cmd: ['/bin/sh'],
      workdir: '/root',
      entrypoint: null,
      ...acl,
    });
    return {
      squashfsPath,
      metaPath,
      metadata: {
        env: ['PATH=/bin'],
        entrypoint: null,
        cmd: ['/bin/sh'],
        workdir: '/root',
        labels: { alabel: 'avalue' },
        user: null,
      },
    };
  }
}

const alice: Caller = { uid: 1000, gid: 1000, user: 'alice', groups: [1000, 3000], authorizedLocations: null };
const bob: Caller = { uid: 1001, gid: 1001, user: 'bob', groups: [1001], authorizedLocations: null };
const root: Caller = { uid: 0, gid: 0, user: 'root', groups: [0], authorizedLocations: null };
const withLogin = (caller: Caller): Caller => ({ ...caller, authorizedLocations: { default: 'user:pa:ss' } });

let dir: string;
let now: number;
let store: SqliteMetadataStore;
let queue: ManualQueue;
let puller: FakePuller;
let transfer: DirTransfer;
let service: ImageService;

function makeService(overrides: Record<string, unknown> = {}) {
  const config = parseConfig({
    systems: {
      cluster: { transfer: { kind: 'local', imageDir: join(dir, 'images') }, admins: ['root'] },
      other: { transfer: { kind: 'local', imageDir: join(dir, 'images2') } },
    },
    storage: { cacheDir: join(dir, 'cache'), expandDir: join(dir, 'expand') },
    jobs: { pullUpdateTimeout: 300, imageExpirationTimeout: '1:00:00:00' },
    metrics: true,
    importUsers: ['alice'],
    // Docker Hub, the other location the isolation attacks pull identical content from, and the attacker's own
    // registry: the attacks assume the worst case, a site that allows it.
    allowedRegistries: ['docker.io', 'reg.example', 'evil.example'],
    ...overrides,
  });
  return new ImageService({ config, store, queue, transferFor: () => transfer, puller, now: () => now });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'shifter-service-'));
  await mkdir(join(dir, 'images'));
  now = 1_800_000_000_000;
  store = new SqliteMetadataStore({ path: ':memory:', now: () => now });
  queue = new ManualQueue(store);
  puller = new FakePuller();
  transfer = new DirTransfer(join(dir, 'images'));
  service = makeService();
  await service.startWorkers(['cluster']);
});

afterEach(async () => {
  await service.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('ImageService.pull', () => {
  it('runs INIT → PENDING → … → READY and writes the image and its .meta', async () => {
    const first = await service.pull('cluster', 'docker', 'busybox', alice);
    expect(first.status).toBe('PENDING');
    expect(first.pulltag).toBe('busybox:latest');
    await queue.drain();
    const ready = await service.lookup('cluster', 'docker', 'busybox:latest', alice);
    expect(ready).toMatchObject({
      status: 'READY',
      imageId: '1'.padStart(64, '0'),
      tags: ['busybox:latest'],
      private: false,
      userAcl: [],
      groupAcl: [],
    });
    expect(ready.labels).toEqual({ alabel: 'avalue' });
    const meta = parseMeta(readFileSync(join(dir, 'images', `${ready.imageId}.meta`), 'utf8'));
    expect(meta).toMatchObject({ format: 'squashfs', cmd: ['/bin/sh'], workdir: '/root', env: ['PATH=/bin'] });
  });

  it('deduplicates: many concurrent pulls make one record, one job, one resolve and one fetch', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, () => service.pull('cluster', 'docker', 'busybox:latest', alice)),
    );
    expect(new Set(results.map((r) => r.recordId)).size).toBe(1);
    expect(queue.enqueued).toHaveLength(1);
    expect(puller.resolves).toBe(0);
    await queue.drain();
    expect(puller.resolves).toBe(1);
    expect(puller.fetches).toBe(1);
  });

  it('answers a fresh READY tag from the store without a job; re-pulls after pullUpdateTimeout with a metadata-only path', async () => {
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    const again = await service.pull('cluster', 'docker', 'busybox', bob);
    expect(again.status).toBe('READY');
    expect(queue.enqueued).toHaveLength(1);

    now += 301_000;
    const refresh = await service.pull('cluster', 'docker', 'busybox', alice);
    expect(refresh.status).toBe('PENDING');
    await queue.drain();
    expect(puller.fetches).toBe(1);
    expect(transfer.puts).toBe(1);
    const records = await store.list({ system: 'cluster' });
    expect(records.map((r) => r.status)).toEqual(['READY']);
    expect(records[0]?.lastPull).toBe(now);
  });

  it('moves the tag to a new image when the digest changed', async () => {
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    puller.digests.set('busybox:latest', digestOf(2));
    now += 301_000;
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    const current = await service.lookup('cluster', 'docker', 'busybox', alice);
    expect(current.imageId).toBe('2'.padStart(64, '0'));
    expect(puller.fetches).toBe(2);
  });

  it('gives one image id a list of tags', async () => {
    puller.digests.set('busybox:v2', digestOf(1));
    await service.pull('cluster', 'docker', 'busybox:latest', alice);
    await queue.drain();
    await service.pull('cluster', 'docker', 'busybox:v2', alice);
    await queue.drain();
    const image = await service.lookup('cluster', 'docker', 'busybox:v2', alice);
    expect([...image.tags].sort()).toEqual(['busybox:latest', 'busybox:v2']);
    expect((await service.list('cluster', alice)).length).toBe(1);
    expect(puller.fetches).toBe(1);
  });

  it('refuses a malformed or traversal tag synchronously with SHIFTER_REF_INVALID', async () => {
    for (const tag of ['../../etc/passwd', 'library/UPPER', 'a b', '', 'x:y:z:w']) {
      await expect(service.pull('cluster', 'docker', tag, alice)).rejects.toMatchObject({
        code: 'SHIFTER_REF_INVALID',
      });
    }
    await expect(service.pull('nope', 'docker', 'busybox', alice)).rejects.toMatchObject({
      code: 'SHIFTER_SYSTEM_UNKNOWN',
    });
    await expect(service.pull('cluster', 'ftp', 'busybox', alice)).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
    expect(queue.enqueued).toHaveLength(0);
  });

  it('ends an unknown tag in FAILURE with the registry code, shown to pollers, then allows a retry later', async () => {
    await service.pull('cluster', 'docker', 'nothere:1', alice);
    await queue.drain();
    const failed = await service.pull('cluster', 'docker', 'nothere:1', alice);
    expect(failed.status).toBe('FAILURE');
    expect(failed.error?.code).toBe('SHIFTER_REGISTRY_MANIFEST_UNKNOWN');
    expect(queue.enqueued).toHaveLength(1);
    now += FAILURE_HOLD_MS + 1;
    expect((await service.pull('cluster', 'docker', 'nothere:1', alice)).status).toBe('PENDING');
  });

  it('keeps serving a READY tag when the registry is unreachable', async () => {
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    now += 301_000;
    puller.failWith = new RegistryError('SHIFTER_REGISTRY_UNAVAILABLE', 'connection refused');
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    const answer = await service.pull('cluster', 'docker', 'busybox', alice);
    expect(answer.status).toBe('READY');
    expect((await service.lookup('cluster', 'docker', 'busybox', alice)).status).toBe('READY');
  });
});

describe('ImageService: private images', () => {
  beforeEach(() => {
    puller.privateRepos.add('busybox:latest');
  });

  it('fails without registry credentials and records the ACL (caller + allowed ids) with them', async () => {
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    expect((await service.pull('cluster', 'docker', 'busybox', alice)).error?.code).toBe(
      'SHIFTER_REGISTRY_AUTH_FAILED',
    );
    now += FAILURE_HOLD_MS + 1;

    await service.pull('cluster', 'docker', 'busybox', withLogin(alice), { allowedUids: [1002], allowedGids: [1003] });
    await queue.drain();
    expect(puller.logins.at(-1)).toEqual({ username: 'user', password: 'pa:ss' });
    const image = await service.lookup('cluster', 'docker', 'busybox', alice);
    expect(image).toMatchObject({ private: true, userAcl: [1000, 1002], groupAcl: [1000, 1003] });
    const meta = parseMeta(readFileSync(join(dir, 'images', `${image.imageId}.meta`), 'utf8'));
    expect(meta.userACL).toEqual([1000, 1002]);
    expect((await stat(join(dir, 'images', `${image.imageId}.squashfs`))).mode & 0o777).toBe(0o600);
  });

  it('hides a private image from outsiders in lookup and list, and shows it to group members', async () => {
    await service.pull('cluster', 'docker', 'busybox', withLogin(alice), { allowedGids: [3000] });
    await queue.drain();
    await expect(service.lookup('cluster', 'docker', 'busybox', bob)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
    expect(await service.list('cluster', bob)).toEqual([]);
    const member: Caller = { ...bob, groups: [1001, 3000] };
    expect((await service.lookup('cluster', 'docker', 'busybox', member)).status).toBe('READY');
  });

  it('adds a second caller who proves registry access by a metadata-only transfer (ACL union)', async () => {
    await service.pull('cluster', 'docker', 'busybox', withLogin(alice));
    await queue.drain();
    const bobPull = await service.pull('cluster', 'docker', 'busybox', withLogin(bob));
    expect(bobPull.status).toBe('PENDING');
    await queue.drain();
    expect(puller.fetches).toBe(1);
    expect(transfer.metaPuts).toBe(1);
    const image = await service.lookup('cluster', 'docker', 'busybox', bob);
    expect(image.userAcl).toEqual([1000, 1001]);
    // Same ACL again (reordered): answered from the store.
    expect((await service.pull('cluster', 'docker', 'busybox', withLogin(bob))).status).toBe('READY');
  });

  it('does not let an outsider without credentials gain access by pulling', async () => {
    await service.pull('cluster', 'docker', 'busybox', withLogin(alice));
    await queue.drain();
    await service.pull('cluster', 'docker', 'busybox', bob);
    await queue.drain();
    await expect(service.lookup('cluster', 'docker', 'busybox', bob)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
  });
});

describe('ImageService: expiry, metrics, queue', () => {
  it('sets the expiration on pull and lookup; autoexpire (admin) expires unused images and removes their files', async () => {
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    const ready = await service.lookup('cluster', 'docker', 'busybox', alice);
    expect(ready.expiration).toBe(now + 86_400_000);
    await expect(service.autoexpire('cluster', alice)).rejects.toMatchObject({ code: 'SHIFTER_AUTH_FORBIDDEN' });
    expect(await service.autoexpire('cluster', root)).toEqual([]);
    now += 86_400_001;
    expect(await service.autoexpire('cluster', root)).toEqual([ready.imageId]);
    await queue.drain();
    expect((await store.get(ready.recordId))?.status).toBe('EXPIRED');
    expect(existsSync(join(dir, 'images', `${ready.imageId}.meta`))).toBe(false);
    expect(existsSync(join(dir, 'images', `${ready.imageId}.squashfs`))).toBe(false);
    await expect(service.lookup('cluster', 'docker', 'busybox', alice)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
  });

  it('lets only admins expire, and expires by tag', async () => {
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    await expect(service.expire('cluster', 'docker', 'busybox', alice)).rejects.toMatchObject({
      code: 'SHIFTER_AUTH_FORBIDDEN',
    });
    expect((await service.lookup('cluster', 'docker', 'busybox', alice)).status).toBe('READY');
    expect(await service.expire('cluster', 'docker', 'busybox', root)).toBe(true);
    await queue.drain();
    await expect(service.lookup('cluster', 'docker', 'busybox', alice)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
    await expect(service.expire('cluster', 'docker', 'nothere', root)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
  });

  it('autoexpire removes old FAILURE records and fails stuck in-flight records whose job is gone', async () => {
    const stuck = await store.insert({
      system: 'cluster',
      itype: 'docker',
      pulltag: 'stuck:1',
      status: 'PULLING',
      lastPull: now - 3_000_000,
    });
    const recent = await store.insert({
      system: 'cluster',
      itype: 'docker',
      pulltag: 'recent:1',
      status: 'PENDING',
      lastPull: now - 1000,
    });
    const oldFailure = await store.insert({ system: 'cluster', itype: 'docker', pulltag: 'f:1', status: 'FAILURE' });
    now += 400_000;
    await service.autoexpire('cluster', root);
    expect((await store.get(stuck.recordId))?.status).toBe('FAILURE');
    expect((await store.get(stuck.recordId))?.error?.code).toBe('SHIFTER_JOB_LEASE_EXPIRED');
    expect(await store.get(oldFailure.recordId)).toBeNull();
    expect((await store.get(recent.recordId))?.status).toBe('FAILURE');
  });

  it('records lookup metrics for admins, newest last', async () => {
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    for (let i = 0; i < 12; i++) {
      now += 1000;
      await service.lookup('cluster', 'docker', 'busybox', alice);
    }
    await expect(service.metrics('cluster', alice, 10)).rejects.toMatchObject({ code: 'SHIFTER_AUTH_FORBIDDEN' });
    const rows = await service.metrics('cluster', root, 10);
    expect(rows).toHaveLength(10);
    expect(rows.at(-1)?.time).toBe(now);
    expect(rows[0]).toMatchObject({ user: 'alice', uid: 1000, itype: 'docker', tag: 'busybox:latest' });
  });

  it('lists in-flight pulls in the queue', async () => {
    await service.pull('cluster', 'docker', 'busybox', alice);
    expect(await service.queue('cluster')).toEqual([
      { status: 'PENDING', image: 'busybox:latest', status_message: 'Queued' },
    ]);
  });
});

describe('ImageService.importImage', () => {
  it('refuses users not in importUsers and non-absolute paths', async () => {
    await expect(service.importImage('cluster', 'custom', 'mine', bob, { filepath: '/x.sqfs' })).rejects.toMatchObject({
      code: 'SHIFTER_IMPORT_NOT_ALLOWED',
    });
    await expect(service.importImage('cluster', 'custom', 'mine', alice, { filepath: 'x.sqfs' })).rejects.toMatchObject(
      { code: 'SHIFTER_USAGE_INVALID_ARGUMENT' },
    );
    await expect(
      service.importImage('cluster', 'custom', '../x', alice, { filepath: '/x.sqfs' }),
    ).rejects.toMatchObject({ code: 'SHIFTER_REF_INVALID' });
  });

  it('ends a file that is not squashfs in FAILURE with SHIFTER_IMPORT_INVALID', async () => {
    const file = join(dir, 'bogus.squashfs');
    writeFileSync(file, 'not a squashfs image at all'.repeat(10));
    const self: Caller = { ...alice, uid: process.getuid!(), gid: process.getgid!() };
    await service.importImage('cluster', 'custom', 'mine', self, { filepath: file });
    await queue.drain();
    const records = await store.findByTag('cluster', 'custom', 'mine:latest');
    expect(records[0]?.status).toBe('FAILURE');
    expect(records[0]?.error?.code).toBe('SHIFTER_IMPORT_INVALID');
  });
});

describe('pickLogin', () => {
  it('prefers the location entry, falls back to default, splits at the first colon', () => {
    expect(pickLogin({ default: 'a:b', urltest: 'c:d:e' }, 'urltest')).toEqual({ username: 'c', password: 'd:e' });
    expect(pickLogin({ default: 'a:b' }, 'other')).toEqual({ username: 'a', password: 'b' });
    expect(pickLogin({ default: 'nocolon' }, undefined)).toBeUndefined();
    expect(pickLogin(null, undefined)).toBeUndefined();
  });
});

describe('ImageService.importImage polling', () => {
  it('answers re-posts with the fresh FAILURE instead of starting again', async () => {
    const file = join(dir, 'bogus2.squashfs');
    writeFileSync(file, 'x'.repeat(200));
    const self: Caller = { ...alice, uid: process.getuid!(), gid: process.getgid!() };
    await service.importImage('cluster', 'custom', 'again', self, { filepath: file });
    await queue.drain();
    const again = await service.importImage('cluster', 'custom', 'again', self, { filepath: file });
    expect(again.status).toBe('FAILURE');
    expect(queue.enqueued).toHaveLength(1);
  });
});

describe('ImageService: access per tag, proofs, requesters (isolation attacks)', () => {
  const carol: Caller = { uid: 1005, gid: 1005, user: 'carol', groups: [1005], authorizedLocations: null };
  const metaOf = (id: string) => parseMeta(readFileSync(join(dir, 'images', `${id}.meta`), 'utf8'));
  const modeOf = async (id: string) => (await stat(join(dir, 'images', `${id}.squashfs`))).mode & 0o777;

  it('keeps a public tag public for everyone when identical content is pulled privately from another location', async () => {
    puller.digests.set('reg.example/team/copy:1', digestOf(1));
    puller.privateRepos.add('reg.example/team/copy:1');
    await service.pull('cluster', 'docker', 'busybox', alice);
    await queue.drain();
    await service.pull('cluster', 'docker', 'reg.example/team/copy:1', withLogin(bob));
    await queue.drain();
    // The private pull reused the file, but only after its registry proved it serves the blobs, with bob's login.
    expect(puller.fetches).toBe(1);
    expect(puller.proofs).toEqual([
      { familiar: 'reg.example/team/copy:1', digest: digestOf(1), login: { username: 'user', password: 'pa:ss' } },
    ]);
    for (const anyone of [alice, carol]) {
      expect(await service.lookup('cluster', 'docker', 'busybox', anyone)).toMatchObject({
        status: 'READY',
        private: false,
        userAcl: [],
        tags: ['busybox:latest'],
      });
      await expect(service.lookup('cluster', 'docker', 'reg.example/team/copy:1', anyone)).rejects.toMatchObject({
        code: 'SHIFTER_IMAGE_NOT_FOUND',
      });
      expect((await service.list('cluster', anyone)).map((r) => r.tags)).toEqual([['busybox:latest']]);
    }
    const bobs = await service.lookup('cluster', 'docker', 'reg.example/team/copy:1', bob);
    expect(bobs.tags).toEqual(['busybox:latest', 'reg.example/team/copy:1']);
    // The image file stays public: it was proved public by the public tag.
    expect(metaOf(bobs.imageId!).userACL ?? []).toEqual([]);
    expect(await modeOf(bobs.imageId!)).toBe(0o644);
  });

  it('never shows a private tag when identical content is later pulled publicly; the file becomes public, the tag stays hidden', async () => {
    puller.digests.set('reg.example/team/secret:1', digestOf(2));
    puller.privateRepos.add('reg.example/team/secret:1');
    puller.digests.set('busybox:2', digestOf(2));
    await service.pull('cluster', 'docker', 'reg.example/team/secret:1', withLogin(bob));
    await queue.drain();
    const id = digestOf(2).slice(7);
    expect(metaOf(id).userACL).toEqual([1001]);
    expect(await modeOf(id)).toBe(0o600);
    await service.pull('cluster', 'docker', 'busybox:2', alice);
    await queue.drain();
    expect(puller.proofs.map((p) => p.familiar)).toEqual(['busybox:2']);
    expect(metaOf(id).userACL ?? []).toEqual([]);
    expect((await service.list('cluster', carol)).map((r) => r.tags)).toEqual([['busybox:2']]);
    expect(await service.lookup('cluster', 'docker', 'busybox:2', carol)).toMatchObject({
      tags: ['busybox:2'],
      private: false,
    });
    await expect(service.lookup('cluster', 'docker', 'reg.example/team/secret:1', carol)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
    // Bob keeps his tag, private to him.
    const bobs = await service.lookup('cluster', 'docker', 'reg.example/team/secret:1', bob);
    expect(bobs.tagAccess.find((t) => t.tag === 'reg.example/team/secret:1')).toMatchObject({
      private: true,
      userAcl: [1001],
    });
  });

  it("refuses an image already on the system when the pull's registry does not prove it serves the blobs", async () => {
    puller.digests.set('reg.example/team/secret:1', digestOf(3));
    puller.privateRepos.add('reg.example/team/secret:1');
    await service.pull('cluster', 'docker', 'reg.example/team/secret:1', withLogin(bob));
    await queue.drain();
    // The attacker's registry serves a manifest naming the victim's content and never the blobs.
    puller.digests.set('evil.example/x:1', digestOf(3));
    puller.unproven.add('evil.example/x:1');
    await service.pull('cluster', 'docker', 'evil.example/x:1', alice);
    await queue.drain();
    const answer = await service.pull('cluster', 'docker', 'evil.example/x:1', alice);
    expect(answer.status).toBe('FAILURE');
    expect(answer.error?.code).toBe('SHIFTER_BLOB_UNPROVEN');
    await expect(service.lookup('cluster', 'docker', 'evil.example/x:1', alice)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
    expect(await service.list('cluster', alice)).toEqual([]);
    const id = digestOf(3).slice(7);
    expect(metaOf(id).userACL).toEqual([1001]);
    expect(await modeOf(id)).toBe(0o600);
    expect((await service.lookup('cluster', 'docker', 'reg.example/team/secret:1', bob)).tags).toEqual([
      'reg.example/team/secret:1',
    ]);
  });

  it('does not let an anonymous caller who failed first deny the tag to a caller with a login', async () => {
    puller.privateRepos.add('busybox:latest');
    await service.pull('cluster', 'docker', 'busybox', bob);
    await queue.drain();
    expect((await service.pull('cluster', 'docker', 'busybox', bob)).error?.code).toBe('SHIFTER_REGISTRY_AUTH_FAILED');
    // Alice's POST with a login, within the failure's hold time: a job of her own, not bob's failure.
    const alices = await service.pull('cluster', 'docker', 'busybox', withLogin(alice));
    expect(alices.status).toBe('PENDING');
    await queue.drain();
    expect((await service.lookup('cluster', 'docker', 'busybox', alice)).status).toBe('READY');
  });

  it("keys in-flight attempts by login: anonymous callers share one, a login never joins another's", async () => {
    puller.privateRepos.add('busybox:latest');
    const anonymous = await Promise.all([
      service.pull('cluster', 'docker', 'busybox', bob),
      service.pull('cluster', 'docker', 'busybox', carol),
    ]);
    expect(anonymous[0].recordId).toBe(anonymous[1].recordId);
    const withAliceLogin = await Promise.all([
      service.pull('cluster', 'docker', 'busybox', withLogin(alice)),
      service.pull('cluster', 'docker', 'busybox', withLogin(alice)),
    ]);
    expect(withAliceLogin[0].recordId).toBe(withAliceLogin[1].recordId);
    expect(withAliceLogin[0].recordId).not.toBe(anonymous[0].recordId);
    const otherLogin: Caller = { ...carol, authorizedLocations: { default: 'carol:other' } };
    const carols = await service.pull('cluster', 'docker', 'busybox', otherLogin);
    expect(new Set([anonymous[0].recordId, withAliceLogin[0].recordId, carols.recordId]).size).toBe(3);
    expect(queue.enqueued).toHaveLength(3);
    await queue.drain();
    expect((await service.lookup('cluster', 'docker', 'busybox', alice)).status).toBe('READY');
    await expect(service.lookup('cluster', 'docker', 'busybox', bob)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
  });

  it('shows outsiders nothing of a private pull: not in the queue, not in a POST answer', async () => {
    puller.privateRepos.add('busybox:latest');
    const alices = await service.pull('cluster', 'docker', 'busybox', withLogin(alice), { allowedUids: [1006] });
    expect(alices.userAcl).toEqual([1000, 1006]);
    expect(await service.queue('cluster', alice)).toEqual([
      { status: 'PENDING', image: 'busybox:latest', status_message: 'Queued' },
    ]);
    expect(await service.queue('cluster', bob)).toEqual([]);
    // An outsider's POST starts their own attempt and learns nothing of alice's.
    const bobs = await service.pull('cluster', 'docker', 'busybox', bob);
    expect(bobs.recordId).not.toBe(alices.recordId);
    expect(bobs.userAcl).toEqual([1001]);
    // Someone sharing alice's login (not in her ACL) joins her attempt but sees only its state.
    const sharer: Caller = { ...carol, authorizedLocations: { default: 'user:pa:ss' } };
    const joined = await service.pull('cluster', 'docker', 'busybox', sharer);
    expect(joined.recordId).toBe(alices.recordId);
    expect(joined).toMatchObject({
      userAcl: [],
      groupAcl: [],
      imageId: null,
      statusMessage: 'PENDING',
      requester: null,
    });
    // A pull without a login can only reach public content: others may see it in the queue.
    expect(await service.queue('cluster', carol)).toEqual([
      { status: 'PENDING', image: 'busybox:latest', status_message: 'Queued' },
    ]);
    await queue.drain();
    expect(await service.queue('cluster', bob)).toEqual([]);
    // After the pull: the failure of bob's anonymous attempt is his; the READY private tag is invisible to him.
    const again = await service.pull('cluster', 'docker', 'busybox', bob);
    expect(again.error?.code).toBe('SHIFTER_REGISTRY_AUTH_FAILED');
    expect(again.userAcl).toEqual([1001]);
    expect(JSON.stringify(again)).not.toContain('1006');
  });
});

describe('ImageService: concurrent pulls of identical content', () => {
  it('settles the file on the merge of every READY record of the content, whichever job wrote it last', async () => {
    puller.digests.set('reg.example/team/secret:1', digestOf(9));
    puller.privateRepos.add('reg.example/team/secret:1');
    const id = digestOf(9).slice(7);
    // A public pull of the same content elsewhere finishes while this private pull is between its put and READY:
    // its record is READY, but the file on disk is the private pull's.
    const update = store.update.bind(store);
    let injected = false;
    store.update = async (recordId, patch, expectations) => {
      if (!injected && patch.status === 'READY' && patch.imageId === id) {
        injected = true;
        await store.insert({
          system: 'cluster',
          itype: 'docker',
          status: 'READY',
          imageId: id,
          tags: ['busybox:9'],
          private: false,
          lastPull: now,
        });
      }
      return update(recordId, patch, expectations);
    };
    await service.pull('cluster', 'docker', 'reg.example/team/secret:1', withLogin(bob));
    await queue.drain();
    expect(injected).toBe(true);
    const meta = parseMeta(readFileSync(join(dir, 'images', `${id}.meta`), 'utf8'));
    expect(meta.userACL ?? []).toEqual([]);
    expect(await service.lookup('cluster', 'docker', 'busybox:9', alice)).toMatchObject({
      imageId: id,
      private: false,
    });
    // Bob's tag is still his alone.
    await expect(service.lookup('cluster', 'docker', 'reg.example/team/secret:1', alice)).rejects.toMatchObject({
      code: 'SHIFTER_IMAGE_NOT_FOUND',
    });
    expect((await service.lookup('cluster', 'docker', 'reg.example/team/secret:1', bob)).tags).toEqual([
      'reg.example/team/secret:1',
    ]);
  });
});
