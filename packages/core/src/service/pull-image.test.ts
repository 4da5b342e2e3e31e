import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MediaType } from '../manifest/index.js';
import {
  DEFAULT_PULL_CONCURRENCY,
  DEFAULT_PULL_LIMITS,
  pullImage,
  resolvePullImageOptions,
  type PullImageProgress,
} from './pull-image.js';

const sha = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

describe('resolvePullImageOptions', () => {
  it('fills defaults', () => {
    const resolved = resolvePullImageOptions({ cacheDir: '/c', outDir: '/o' });
    expect(resolved.platform).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(resolved.concurrency).toBe(DEFAULT_PULL_CONCURRENCY);
    expect(resolved.limits).toEqual(DEFAULT_PULL_LIMITS);
    expect(resolved.expandDir).toBe(join(tmpdir(), 'shifter-expand'));
    expect(resolved.registries).toEqual({});
  });
  it('parses platform strings and merges limits', () => {
    const resolved = resolvePullImageOptions({
      cacheDir: '/c',
      outDir: '/o',
      platform: 'linux/arm64/v8',
      limits: { maxEntries: 10 },
    });
    expect(resolved.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(resolved.limits.maxEntries).toBe(10);
    expect(resolved.limits.maxManifestBytes).toBe(DEFAULT_PULL_LIMITS.maxManifestBytes);
  });
  it.each([
    [{ cacheDir: '', outDir: '/o' }, /cacheDir/],
    [{ cacheDir: '/c', outDir: '' }, /outDir/],
    [{ cacheDir: '/c', outDir: '/o', concurrency: 0 }, /concurrency/],
    [{ cacheDir: '/c', outDir: '/o', platform: 'amd64' }, /os\/architecture/],
  ])('refuses %o', (options, message) => {
    expect(() => resolvePullImageOptions(options)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT', message: expect.stringMatching(message) }),
    );
  });
});

describe('pullImage (MockAgent registry)', () => {
  let agent: MockAgent;
  let work: string;
  beforeEach(() => {
    agent = new MockAgent();
    agent.disableNetConnect();
    work = mkdtempSync(join(tmpdir(), 'shifter-pull-unit-'));
  });
  afterEach(async () => {
    await agent.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('reports the failed download, not the conversion it interrupted, and writes nothing', async () => {
    const layer = Buffer.from('never served');
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: [sha(layer)] },
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OCI_MANIFEST,
        config: { mediaType: MediaType.OCI_CONFIG, digest: sha(config), size: config.length },
        layers: [{ mediaType: MediaType.OCI_LAYER_GZIP, digest: sha(layer), size: layer.length }],
      }),
    );
    const pool = agent.get('https://reg.example.org');
    pool
      .intercept({ path: '/v2/app/manifests/1', method: 'GET' })
      .reply(200, manifest, { headers: { 'content-type': MediaType.OCI_MANIFEST } });
    pool.intercept({ path: `/v2/app/blobs/${sha(config)}`, method: 'GET' }).reply(200, config);
    pool
      .intercept({ path: `/v2/app/blobs/${sha(layer)}`, method: 'GET' })
      .reply(404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] });
    const events: PullImageProgress[] = [];
    await expect(
      pullImage('reg.example.org/app:1', {
        cacheDir: join(work, 'cache'),
        outDir: join(work, 'out'),
        expandDir: join(work, 'expand'),
        dispatcher: agent,
        onProgress: (e) => events.push(e),
      }),
    ).rejects.toMatchObject({ code: 'SHIFTER_REGISTRY_BLOB_UNKNOWN' });
    expect(events.map((e) => e.phase)).toEqual(['resolve', 'resolved']);
    expect(existsSync(join(work, 'out')) ? readdirSync(join(work, 'out')) : []).toEqual([]);
    expect(readdirSync(join(work, 'cache', 'sha256'))).toEqual([]);
  });

  it('refuses an invalid reference before any request', async () => {
    await expect(
      pullImage('library/Ubuntu', { cacheDir: join(work, 'c'), outDir: join(work, 'o'), dispatcher: agent }),
    ).rejects.toMatchObject({ code: 'SHIFTER_REF_INVALID' });
  });
});
