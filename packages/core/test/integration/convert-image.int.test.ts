import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type ConvertProgress, type LayerSource, ShifterError, convertImage } from '@shifter/core';
import { type LayerSpecEntry, makeLayer } from '@shifter/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

// convertImage's contract with real mksquashfs: outputs, atomicity, cleanup on every failure path, ACLs, hooks.

const ID = 'ab'.repeat(32);
const config = { architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/srv' } };
let work: string;
let out: string;
let expand: string;
beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'shifter-convert-image-'));
  out = join(work, 'out');
  expand = join(work, 'expand');
  mkdirSync(out);
});
afterEach(() => rmSync(work, { recursive: true, force: true }));

async function sources(...layers: LayerSpecEntry[][]): Promise<LayerSource[] & { opened: number[] }> {
  const opened: number[] = [];
  const list = await Promise.all(
    layers.map(async (spec, i) => {
      const blob = await makeLayer(spec, { compression: 'gzip' });
      return {
        digest: `sha256:${String(i).repeat(64)}`,
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        size: blob.length,
        open: async () => {
          opened.push(i);
          return Readable.from([blob]);
        },
      };
    }),
  );
  return Object.assign(list, { opened });
}

const nothingLeft = () => {
  expect(readdirSync(out)).toEqual([]);
  expect(readdirSync(expand)).toEqual([]);
};

describe('convertImage', () => {
  it('writes <id>.squashfs and <id>.meta, reports progress in order and cleans its scratch', async () => {
    const events: ConvertProgress['phase'][] = [];
    const layers = await sources([{ path: 'bin/sh', content: '#!', mode: 0o755 }], [{ path: 'srv/' }, { path: 'srv/data', content: 'x' }]);
    const result = await convertImage(layers, config, out, { id: ID, expandDir: expand, onProgress: (e) => events.push(e.phase) });
    expect(readdirSync(out).sort()).toEqual([`${ID}.meta`, `${ID}.squashfs`]);
    expect(readdirSync(expand)).toEqual([]);
    expect(events).toEqual(['layer', 'layer', 'squashfs', 'meta', 'done']);
    expect(result.summary).toMatchObject({ layers: 2, entries: 3, unpackedBytes: 3, tool: 'mksquashfs' });
    expect(readFileSync(result.metaPath, 'utf8')).toBe("FORMAT: squashfs\nCMD: [u'/bin/sh']\nWORKDIR: /srv\nENV: PATH=/bin\n");
  });

  it('writes the ACL lines of a private image', async () => {
    const result = await convertImage(await sources([{ path: 'f' }]), config, out, { id: ID, expandDir: expand, userACL: [1000, 1001], groupACL: [50] });
    expect(readFileSync(result.metaPath, 'utf8')).toContain('USERACL: 1000,1001\nGROUPACL: 50\n');
  });

  it('refuses an id that is not hex before doing anything', async () => {
    const layers = await sources([{ path: 'f' }]);
    await expect(convertImage(layers, config, out, { id: '../etc', expandDir: expand })).rejects.toMatchObject({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT' });
    expect(layers.opened).toEqual([]);
  });

  it('refuses a malformed config before opening any layer', async () => {
    const layers = await sources([{ path: 'f' }]);
    await expect(convertImage(layers, { config: { Env: 'x' } }, out, { id: ID, expandDir: expand })).rejects.toMatchObject({ code: 'SHIFTER_MANIFEST_INVALID' });
    expect(layers.opened).toEqual([]);
  });

  it('a hostile layer leaves no output and no scratch', async () => {
    const layers = await sources([{ path: 'ok' }], [{ path: '../../escape' }]);
    await expect(convertImage(layers, config, out, { id: ID, expandDir: expand })).rejects.toMatchObject({
      code: 'SHIFTER_LAYER_UNSAFE_PATH',
      details: { layer: `sha256:${'1'.repeat(64)}`, entry: '../../escape' },
    });
    nothingLeft();
  });

  it('the examine hook sees the tree and can refuse the image', async () => {
    let seen: string[] = [];
    const error = await convertImage(await sources([{ path: 'etc/motd', content: 'hi' }]), config, out, {
      id: ID,
      expandDir: expand,
      examine: async (rootDir) => {
        seen = readdirSync(join(rootDir, 'etc'));
        throw new ShifterError('SHIFTER_EXAMINATION_FAILED', 'policy says no');
      },
    }).catch((e: unknown) => e);
    expect(seen).toEqual(['motd']);
    expect(error).toMatchObject({ code: 'SHIFTER_EXAMINATION_FAILED' });
    nothingLeft();
  });

  it('aborting stops the conversion and leaves nothing', async () => {
    const controller = new AbortController();
    const many = Array.from({ length: 300 }, (_, i) => ({ path: `f${i}`, content: 'x' }));
    const running = convertImage(await sources(many, many), config, out, {
      id: ID,
      expandDir: expand,
      signal: controller.signal,
      onProgress: (event) => {
        if (event.phase === 'layer') controller.abort(new Error('user cancelled'));
      },
    });
    await expect(running).rejects.toMatchObject({ code: 'SHIFTER_CONVERSION_FAILED' });
    nothingLeft();
  });

  it('removes the squashfs it created when the .meta cannot be written', async () => {
    mkdirSync(join(out, `${ID}.meta`)); // a directory where the file must go: the rename fails
    await expect(convertImage(await sources([{ path: 'f' }]), config, out, { id: ID, expandDir: expand })).rejects.toMatchObject({
      code: 'SHIFTER_IO_FAILED',
    });
    expect(readdirSync(out)).toEqual([`${ID}.meta`]);
    expect(readdirSync(expand)).toEqual([]);
  });

  it('builds gzip images for old kernels and tar2sqfs images on request', async () => {
    const layers = await sources([{ path: 'a', content: 'a'.repeat(10_000) }]);
    const gzip = await convertImage(layers, config, out, { id: ID, expandDir: expand, conversion: { compression: 'gzip' } });
    expect(readFileSync(gzip.squashfsPath).readUInt16LE(20)).toBe(1); // superblock compression id: 1 = gzip
    const tar2sqfs = await convertImage(layers, config, out, { id: ID, expandDir: expand, conversion: { tool: 'tar2sqfs' } });
    expect(tar2sqfs.summary.tool).toBe('tar2sqfs');
    expect(readFileSync(tar2sqfs.squashfsPath).readUInt16LE(20)).toBe(6); // 6 = zstd
  });
});
