import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type ConvertProgress, type LayerSource, ShifterError, convertImage } from '@shifter/core';
import { type LayerSpecEntry, makeLayer } from '@shifter/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

// convertImage's contract with real tar2sqfs and mksquashfs: outputs, atomicity, cleanup on every failure path, ACLs, hooks.

const ID = 'ab'.repeat(32);
const config = {
  architecture: 'amd64',
  os: 'linux',
  config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/srv' },
};
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
    const layers = await sources(
      [{ path: 'bin/sh', content: '#!', mode: 0o755 }],
      [{ path: 'srv/' }, { path: 'srv/data', content: 'x' }],
    );
    const result = await convertImage(layers, config, out, {
      id: ID,
      expandDir: expand,
      onProgress: (e) => events.push(e.phase),
    });
    expect(readdirSync(out).sort()).toEqual([`${ID}.meta`, `${ID}.squashfs`]);
    expect(readdirSync(expand)).toEqual([]);
    expect(events).toEqual(['layer', 'layer', 'squashfs', 'meta', 'done']);
    expect(result.summary).toMatchObject({
      layers: 2,
      entries: 3,
      unpackedBytes: 3,
      tool: 'tar2sqfs',
      method: 'merged',
    });
    expect(readFileSync(result.metaPath, 'utf8')).toBe(
      "FORMAT: squashfs\nCMD: [u'/bin/sh']\nWORKDIR: /srv\nENV: PATH=/bin\n",
    );
  });

  it('writes the ACL lines of a private image', async () => {
    const result = await convertImage(await sources([{ path: 'f' }]), config, out, {
      id: ID,
      expandDir: expand,
      userACL: [1000, 1001],
      groupACL: [50],
    });
    expect(readFileSync(result.metaPath, 'utf8')).toContain('USERACL: 1000,1001\nGROUPACL: 50\n');
  });

  it('refuses an id that is not hex before doing anything', async () => {
    const layers = await sources([{ path: 'f' }]);
    await expect(convertImage(layers, config, out, { id: '../etc', expandDir: expand })).rejects.toMatchObject({
      code: 'SHIFTER_USAGE_INVALID_ARGUMENT',
    });
    expect(layers.opened).toEqual([]);
  });

  it('refuses a malformed config before opening any layer', async () => {
    const layers = await sources([{ path: 'f' }]);
    await expect(
      convertImage(layers, { config: { Env: 'x' } }, out, { id: ID, expandDir: expand }),
    ).rejects.toMatchObject({ code: 'SHIFTER_MANIFEST_INVALID' });
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
    await expect(
      convertImage(await sources([{ path: 'f' }]), config, out, { id: ID, expandDir: expand }),
    ).rejects.toMatchObject({
      code: 'SHIFTER_IO_FAILED',
    });
    expect(readdirSync(out)).toEqual([`${ID}.meta`]);
    expect(readdirSync(expand)).toEqual([]);
  });

  it('builds gzip images for old kernels and mksquashfs images on request', async () => {
    const layers = await sources([{ path: 'a', content: 'a'.repeat(10_000) }]);
    const gzip = await convertImage(layers, config, out, {
      id: ID,
      expandDir: expand,
      conversion: { compression: 'gzip' },
    });
    expect(readFileSync(gzip.squashfsPath).readUInt16LE(20)).toBe(1); // superblock compression id: 1 = gzip
    const mksquashfs = await convertImage(layers, config, out, {
      id: ID,
      expandDir: expand,
      conversion: { tool: 'mksquashfs' },
    });
    expect(mksquashfs.summary.tool).toBe('mksquashfs');
    expect(readFileSync(mksquashfs.squashfsPath).readUInt16LE(20)).toBe(6); // 6 = zstd
  });

  // The three ways the tar2sqfs conversion can go give the same file: merged in memory with the top layer streamed,
  // merged again without streaming after the top layer changed something it had streamed, and unpacked on disk
  // (more names than maxInMemoryNames, or an examiner that needs a tree).
  it('gives the same squashfs whether streamed, merged again after a conflict, or unpacked on disk', async () => {
    const lower: LayerSpecEntry[] = [
      { path: 'etc/' },
      { path: 'etc/conf', content: 'old' },
      { path: 'bin/' },
      { path: 'bin/tool', content: '#!', mode: 0o755 },
    ];
    const plain = await sources(lower, [
      { path: 'etc/conf', content: 'new' },
      { path: 'srv/data', content: 'x'.repeat(5000) },
    ]);
    // The same result, but the top layer lists etc/conf twice (a conflict once streamed).
    const twice = await sources(lower, [
      { path: 'etc/conf', content: 'first' },
      { path: 'srv/data', content: 'x'.repeat(5000) },
      { path: 'etc/conf', content: 'new' },
    ]);
    const build = async (layers: LayerSource[], options: Partial<Parameters<typeof convertImage>[3]> = {}) => {
      const dir = mkdtempSync(join(out, 'case-'));
      const result = await convertImage(layers, config, dir, { id: ID, expandDir: expand, ...options });
      expect(readdirSync(expand)).toEqual([]);
      return readFileSync(result.squashfsPath);
    };
    const streamed = await build(plain);
    expect((await build(plain)).equals(streamed)).toBe(true);
    // The other paths write the same tree in another order: the same listing, and each is reproducible.
    const list = (bytes: Buffer) => {
      const file = join(out, `list-${Math.random()}.squashfs`);
      writeFileSync(file, bytes);
      return execFileSync('unsquashfs', ['-lln', '-d', '', file], { encoding: 'utf8' }).split('\n').sort();
    };
    const mergedAgain = await build(twice);
    expect(list(mergedAgain)).toEqual(list(streamed));
    expect((await build(twice)).equals(mergedAgain)).toBe(true);
    expect(list(await build(plain, { conversion: { maxInMemoryNames: 2 } }))).toEqual(list(streamed));
    let examined = '';
    expect(
      list(
        await build(plain, { examine: async (root) => void (examined = readFileSync(join(root, 'etc/conf'), 'utf8')) }),
      ),
    ).toEqual(list(streamed));
    expect(examined).toBe('new');
  });

  it('reports how the layers were combined: merged, or unpacked for mksquashfs, an examiner or too many names', async () => {
    const layers = await sources([{ path: 'a/' }, { path: 'a/f', content: 'x' }]);
    const method = async (options: Partial<Parameters<typeof convertImage>[3]>) =>
      (await convertImage(layers, config, out, { id: ID, expandDir: expand, ...options })).summary.method;
    expect(await method({})).toBe('merged');
    expect(await method({ conversion: { maxInMemoryNames: 2 } })).toBe('merged');
    expect(await method({ conversion: { maxInMemoryNames: 1 } })).toBe('unpacked');
    expect(await method({ examine: async () => undefined })).toBe('unpacked');
    expect(await method({ conversion: { tool: 'mksquashfs' } })).toBe('unpacked');
  });

  it('reports a missing tar2sqfs as SHIFTER_TOOL_NOT_FOUND and leaves nothing', async () => {
    const layers = await sources(
      [{ path: 'f', content: 'x'.repeat(100_000) }],
      [{ path: 'g', content: 'y'.repeat(100_000) }],
    );
    await expect(
      convertImage(layers, config, out, {
        id: ID,
        expandDir: expand,
        conversion: { tar2sqfsPath: '/nonexistent/tar2sqfs' },
      }),
    ).rejects.toMatchObject({
      code: 'SHIFTER_TOOL_NOT_FOUND',
    });
    nothingLeft();
  });
});
