import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore, LiveBlobWrite } from '../blob-store/index.js';
import { FsBlobStore } from '../blob-store/index.js';
import { parseConfig } from '../config/index.js';
import { parseMeta } from '../meta/meta-format.js';
import { parseReference } from '../reference/index.js';
import { buildFakeImage, startFakeRegistry, type FakeImage, type FakeRegistry } from '../testing/fake-registry.js';
import { makeLayer } from '../testing/make-layer.js';
import { pullImage, type PullImageOptions } from './pull-image.js';
import { createRegistryPuller } from './registry-puller.js';

const sha = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** A two-layer gzip image, big enough that its top layer arrives in many chunks. */
async function twoLayerImage(): Promise<{ lower: Buffer; top: Buffer }> {
  const lower = await makeLayer(
    [
      { path: 'etc/' },
      { path: 'etc/os-release', content: 'ID=test\n' },
      { path: 'usr/' },
      { path: 'usr/lib/' },
      ...Array.from({ length: 40 }, (_, i) => ({
        path: `usr/lib/lib${i}.so`,
        content: createHash('sha512').update(`lower ${i}`).digest().toString('hex').repeat(200),
      })),
    ],
    { compression: 'gzip' },
  );
  const top = await makeLayer(
    [
      { path: 'etc/' },
      { path: 'etc/os-release', content: 'ID=top\n' },
      { path: 'opt/' },
      ...Array.from({ length: 60 }, (_, i) => ({
        path: `opt/data${i}.bin`,
        content: Buffer.concat(
          Array.from({ length: 64 }, (_, j) => createHash('sha256').update(`top ${i} ${j}`).digest()),
        ).toString('base64'),
      })),
    ],
    { compression: 'gzip' },
  );
  return { lower, top };
}

const gzipLayer = (bytes: Buffer) => ({ bytes, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });

/** The same gzip stream with another header mtime: the same tar inside, a different digest. */
function sameTarOtherDigest(gzip: Buffer): Buffer {
  const copy = Buffer.from(gzip);
  copy[4] = (copy[4]! + 1) & 0xff;
  return copy;
}

describe('the pull pipeline', () => {
  let work: string;
  let registry: FakeRegistry | undefined;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'shifter-pipeline-'));
  });
  afterEach(async () => {
    await registry?.close();
    registry = undefined;
    rmSync(work, { recursive: true, force: true });
  });

  const options = (name: string, extra: Partial<PullImageOptions> = {}): PullImageOptions => ({
    cacheDir: join(work, 'cache'),
    outDir: join(work, name),
    expandDir: join(work, 'expand'),
    retry: { baseDelayMs: 1, maxDelayMs: 2 },
    ...extra,
  });
  const blobGets = (digest: string) =>
    registry!.requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`) && !r.range);

  it('discards the conversion when a followed layer fails its digest: no output, no .meta, no cache entry', async () => {
    const { lower, top } = await twoLayerImage();
    const claimed = sameTarOtherDigest(top);
    const image = buildFakeImage([gzipLayer(lower), gzipLayer(claimed)]);
    // The registry serves a valid layer of the right size, but not the bytes the manifest names.
    registry = await startFakeRegistry({
      images: { 'test/img:1': image },
      tamper: { [sha(claimed)]: top },
      holdAfterBytes: 4096,
    });
    const held = registry.hold();
    const store = new FsBlobStore(join(work, 'cache'), { fsync: false });
    const written: LiveBlobWrite[] = [];
    const spy: BlobStore = {
      has: (digest) => store.has(digest),
      stat: (digest) => store.stat(digest),
      open: (digest) => store.open(digest),
      delete: (digest) => store.delete(digest),
      path: (digest) => store.path(digest),
      put: (digest, size, source, putOptions = {}) =>
        store.put(digest, size, source, {
          ...putOptions,
          onWriting: (write) => {
            written.push(write);
            putOptions.onWriting?.(write);
          },
        }),
    };
    const pulling = pullImage(`${registry.host}/test/img:1`, options('out', { blobStore: spy }));
    pulling.catch(() => undefined);
    await held;
    registry.release();
    await expect(pulling).rejects.toMatchObject({ code: 'SHIFTER_DIGEST_MISMATCH' });
    // The tampered layer was downloaded through a live write the converter could follow; it failed.
    expect(written.find((w) => w.digest === sha(claimed))?.state()).toBe('failed');
    expect(existsSync(join(work, 'out')) ? readdirSync(join(work, 'out')) : []).toEqual([]);
    expect(await store.has(sha(claimed))).toBe(false);
    expect(readdirSync(join(work, 'expand'))).toEqual([]);
  });

  it('follows downloads and builds the same image as waiting for them, also across a resumed download', async () => {
    const { lower, top } = await twoLayerImage();
    const image = buildFakeImage([gzipLayer(lower), gzipLayer(top)]);
    // The top layer's first answer breaks after 10,000 bytes; the client resumes with Range.
    registry = await startFakeRegistry({ images: { 'test/img:1': image }, cutOnce: { [sha(top)]: 10_000 } });
    const followed = await pullImage(`${registry.host}/test/img:1`, options('followed'));
    // Resumed at the byte the client had (undici may drop bytes it buffered when the connection closed).
    expect(registry.requests.filter((r) => r.path.endsWith(sha(top))).map((r) => r.range)).toEqual([
      undefined,
      expect.stringMatching(/^bytes=\d+-$/),
    ]);
    const waited = await pullImage(
      `${registry.host}/test/img:1`,
      options('waited', { cacheDir: join(work, 'cache2'), followDownloads: false }),
    );
    expect(followed.layers).toMatchObject({ downloaded: 2, cached: 0 });
    expect(readFileSync(followed.squashfsPath).equals(readFileSync(waited.squashfsPath))).toBe(true);
    expect(readFileSync(followed.metaPath, 'utf8')).toBe(readFileSync(waited.metaPath, 'utf8'));
  });

  it('shares one download between concurrent pulls of the same layers (one follows, one waits)', async () => {
    const { lower, top } = await twoLayerImage();
    const image = buildFakeImage([gzipLayer(lower), gzipLayer(top)]);
    registry = await startFakeRegistry({ images: { 'test/img:1': image, 'test/same:2': image } });
    const store = new FsBlobStore(join(work, 'cache'), { fsync: false });
    const [a, b] = await Promise.all([
      pullImage(`${registry.host}/test/img:1`, options('a', { blobStore: store })),
      pullImage(`${registry.host}/test/same:2`, options('b', { blobStore: store })),
    ]);
    expect(blobGets(sha(lower))).toHaveLength(1);
    expect(blobGets(sha(top))).toHaveLength(1);
    expect(a.layers.downloaded + b.layers.downloaded).toBe(2);
    expect(readFileSync(a.squashfsPath).equals(readFileSync(b.squashfsPath))).toBe(true);
  });

  it('reports the layer code of a hostile layer it was following, and publishes nothing', async () => {
    const hostile = await makeLayer([{ path: 'etc/' }, { path: '../../../tmp/escaped', content: 'x' }]);
    registry = await startFakeRegistry({ images: { 'test/hostile:1': buildFakeImage([hostile]) } });
    await expect(pullImage(`${registry.host}/test/hostile:1`, options('out'))).rejects.toMatchObject({
      code: 'SHIFTER_LAYER_UNSAFE_PATH',
    });
    expect(readdirSync(join(work, 'out'))).toEqual([]);
  });

  it('stops downloads and conversion when cancelled mid-download, leaving nothing', async () => {
    const { lower, top } = await twoLayerImage();
    const image = buildFakeImage([gzipLayer(lower), gzipLayer(top)]);
    registry = await startFakeRegistry({ images: { 'test/img:1': image }, holdAfterBytes: 4096 });
    const held = registry.hold();
    const controller = new AbortController();
    const pulling = pullImage(`${registry.host}/test/img:1`, options('out', { signal: controller.signal }));
    pulling.catch(() => undefined);
    await held;
    controller.abort(new Error('job cancelled'));
    await expect(pulling).rejects.toThrow();
    registry.release();
    expect(existsSync(join(work, 'out')) ? readdirSync(join(work, 'out')) : []).toEqual([]);
    const cached = existsSync(join(work, 'cache', 'sha256')) ? readdirSync(join(work, 'cache', 'sha256')) : [];
    expect(cached.filter((name) => /^[0-9a-f]{64}$/.test(name))).toEqual([]);
  });
});

describe('the gateway puller', () => {
  let work: string;
  let registry: FakeRegistry | undefined;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'shifter-puller-'));
  });
  afterEach(async () => {
    await registry?.close();
    registry = undefined;
    rmSync(work, { recursive: true, force: true });
  });

  async function manyLayers(count: number): Promise<FakeImage> {
    const layers = await Promise.all(
      Array.from({ length: count }, (_, i) => makeLayer([{ path: `f${i}`, content: `layer ${i}\n` }])),
    );
    return buildFakeImage(layers);
  }

  it('downloads at most limits.concurrentDownloads layers at once and writes the .meta once, with the ACL asked for', async () => {
    const image = await manyLayers(30);
    // Each blob answer waits a little, so that downloads overlap and the bound shows.
    registry = await startFakeRegistry({ images: { 'test/many:1': image }, blobDelayMs: 20 });
    const config = parseConfig({
      storage: { cacheDir: join(work, 'cache'), expandDir: join(work, 'expand') },
      limits: { concurrentDownloads: 2 },
    });
    const puller = createRegistryPuller(config);
    const outDir = join(work, 'out');
    mkdirSync(outDir);
    let asked = 0;
    const progress: string[] = [];
    const pulled = await puller.fetch(
      {
        reference: parseReference(`${registry.host}/test/many:1`),
        platform: 'linux/amd64',
        digest: image.digest,
        outDir,
        scratchDir: outDir,
        access: async () => {
          asked += 1;
          return { userACL: [2001], groupACL: [] };
        },
      },
      (event) => progress.push(event.phase),
    );
    expect(registry.maxConcurrentBlobGets).toBe(2);
    expect(asked).toBe(1);
    expect(parseMeta(readFileSync(pulled.metaPath, 'utf8')).userACL).toEqual([2001]);
    expect(existsSync(pulled.squashfsPath)).toBe(true);
    expect(progress).toContain('download');
    expect(progress).toContain('convert');

    // prove() is bounded by the same limit: everything is cached now, each layer is proved by a range read.
    const proving = await startFakeRegistry({ images: { 'test/many:1': image }, blobDelayMs: 20 });
    try {
      await puller.prove({
        reference: parseReference(`${proving.host}/test/many:1`),
        platform: 'linux/amd64',
        digest: image.digest,
      });
      expect(proving.maxConcurrentBlobGets).toBeLessThanOrEqual(2);
      expect(proving.requests.filter((r) => r.path.includes('/blobs/')).length).toBeGreaterThanOrEqual(30);
    } finally {
      await proving.close();
    }
  });

  it('defaults to 3 concurrent downloads', () => {
    expect(parseConfig({}).limits.concurrentDownloads).toBe(3);
    expect(() => parseConfig({ limits: { concurrentDownloads: 0 } })).toThrow();
    expect(() => parseConfig({ limits: { concurrentDownloads: 65 } })).toThrow();
  });
});
