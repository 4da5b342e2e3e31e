import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LayerSource } from './layer-source.js';
import { TarWriter, mergedImageTar, tarHeader, writeMergedTree } from '../image-builder/merged-tar.js';
import { type LayerSpecEntry, makeLayer } from '../testing/make-layer.js';
import { type MergedDirectory, MergeIndexFull, SpeculationConflict, mergeLayers } from './layer-merge.js';
import { mergeIntoDir, mergeStreamingIntoDir, topOpensAfterLowerMerged } from './merge-to-dir.test-support.js';

let scratch: string;
let spoolDir: string;
beforeEach(() => {
  scratch = mkdtempSync(join(tmpdir(), 'shifter-merge-'));
  spoolDir = join(scratch, 'spool');
  mkdirSync(spoolDir);
});
afterEach(() => rmSync(scratch, { recursive: true, force: true }));

const source = (digest: string, blob: Buffer): LayerSource => ({
  digest,
  mediaType: 'application/vnd.oci.image.layer.v1.tar',
  size: blob.length,
  open: async () => Readable.from([blob]),
});
const sources = (...specs: LayerSpecEntry[][]) =>
  Promise.all(specs.map(async (spec, i) => source(`sha256:layer${i}`, await makeLayer(spec))));

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Merge with the top layer streamed into a writer; returns the tar bytes or the error. The top layer is opened once
 * the lower layers are merged, so all of it streams (in production a big top layer is still being read when the
 * lower ones are done).
 */
async function streamed(input: LayerSource[]) {
  const { layers, onLayer } = topOpensAfterLowerMerged(input);
  const output = new PassThrough();
  const writer = new TarWriter(output);
  const bytes = collect(output);
  const merged = await mergeLayers(layers, { spoolDir, tar: writer, onLayer });
  await writeMergedTree(merged, writer);
  await writer.end();
  return { merged, tar: await bytes };
}

/** The names of the nodes written while the top layer streamed, sorted. */
function streamedNames(dir: MergedDirectory, prefix = ''): string[] {
  return [...dir.children]
    .flatMap(([name, node]) =>
      node.kind === 'directory' ? streamedNames(node, `${prefix}${name}/`) : node.streamed ? [`${prefix}${name}`] : [],
    )
    .sort();
}

const listing = (tar: Buffer) =>
  execFileSync('tar', ['-tv', '--numeric-owner', '--full-time', '-f', '-'], { input: tar, encoding: 'utf8' });

describe('mergeLayers', () => {
  it('gives the same tar bytes every time and whatever the number of layers read at once', async () => {
    const layers = await sources(
      [
        { path: 'a/' },
        { path: 'a/x', content: 'one' },
        { path: 'b', content: 'bee' },
        { path: 'l', type: 'symlink', linkname: 'a/x' },
      ],
      [{ path: 'a/y', content: 'two' }, { path: 'h', type: 'link', linkname: 'b' }, { path: '.wh.l' }],
      [{ path: 'c/d/e', content: 'deep' }, { path: 'a/.wh..wh..opq' }],
    );
    const tars: Buffer[] = [];
    for (const parallel of [1, 3, 1]) {
      const dir = mkdtempSync(join(scratch, 'spool-'));
      tars.push(await collect(mergedImageTar(await mergeLayers(layers, { spoolDir: dir, parallel }))));
    }
    expect(tars[1]?.equals(tars[0] as Buffer)).toBe(true);
    expect(tars[2]?.equals(tars[0] as Buffer)).toBe(true);
    const names = listing(tars[0] as Buffer)
      .trim()
      .split('\n')
      .map((line) => line.split(/\s+/).slice(5).join(' '));
    expect(names).toEqual(['./', 'a', 'b', 'c', 'h link to b', 'c/d', 'c/d/e']);
  });

  it('keeps file contents in spool files, one per layer, and only file contents', async () => {
    const layers = await sources(
      [{ path: 'f', content: 'x'.repeat(1000) }, { path: 'd/' }],
      [{ path: 'g', content: 'y'.repeat(24) }],
    );
    const merged = await mergeLayers(layers, { spoolDir });
    expect(readdirSync(spoolDir).sort()).toEqual(['layer-0.data', 'layer-1.data']);
    expect(statSync(join(spoolDir, 'layer-0.data')).size).toBe(1000);
    expect(statSync(join(spoolDir, 'layer-1.data')).size).toBe(24);
    expect(merged).toMatchObject({ entries: 3, unpackedBytes: 1024, nodes: 3 });
    expect(merged.streamed).toBe(0);
  });

  it('streams the top layer while reading it and skips it when writing the rest', async () => {
    const layers = await sources(
      [{ path: 'lower', content: 'L' }],
      [
        { path: 'top/' },
        { path: 'top/f', content: 'T'.repeat(5000) },
        { path: 's', type: 'symlink', linkname: 'lower' },
      ],
    );
    const { merged, tar } = await streamed(layers);
    expect(streamedNames(merged.root)).toEqual(['s', 'top/f']);
    // The top layer's bytes went to the tar directly, not to its spool file.
    expect(statSync(join(spoolDir, 'layer-1.data')).size).toBe(0);
    const root = join(scratch, 'x');
    mkdirSync(root);
    execFileSync('tar', ['-x', '-p', '--no-same-owner', '-C', root, '-f', '-'], { input: tar });
    expect(readFileSync(join(root, 'top/f'), 'utf8')).toBe('T'.repeat(5000));
    expect(readFileSync(join(root, 'lower'), 'utf8')).toBe('L');
    // Each name appears once even though the streamed entries came before their directories.
    const names = listing(tar).trim().split('\n');
    expect(names).toHaveLength(5);
  });

  it('writes the same tar whether the top layer was still being read when the lower ones were merged or not', async () => {
    const layers = await sources(
      [{ path: 'a', content: 'A' }, { path: 'd/' }],
      [
        { path: 'd/z', content: 'Z' },
        { path: 'b', content: 'B' },
      ],
    );
    const late = await streamed(layers);
    const output = new PassThrough();
    const writer = new TarWriter(output);
    const bytes = collect(output);
    // Not delayed: this small top layer is read completely before the lower layer is merged.
    const early = await mergeLayers(layers, { spoolDir: mkdtempSync(join(scratch, 's-')), tar: writer });
    await writeMergedTree(early, writer);
    await writer.end();
    expect((await bytes).equals(late.tar)).toBe(true);
    expect(streamedNames(early.root)).toEqual(['b', 'd/z']);
  });

  it.each([
    [
      'lists a name twice',
      [
        { path: 'f', content: 'first' },
        { path: 'f', content: 'second' },
      ],
    ],
    [
      'replaces a directory it wrote into',
      [
        { path: 'd/f', content: 'in d' },
        { path: 'd', content: 'now a file' },
      ],
    ],
    [
      'removes a name it streamed through a hardlink',
      [
        { path: 'f', content: 'x' },
        { path: 'g', type: 'link', linkname: 'f' },
        { path: 'g', content: 'y' },
      ],
    ],
  ] as [string, LayerSpecEntry[]][])(
    'stops streaming when the top layer %s, and the merge without streaming is right',
    async (_why, top) => {
      const layers = await sources([{ path: 'base', content: 'b' }], top);
      await expect(streamed(layers)).rejects.toBeInstanceOf(SpeculationConflict);
      const viaStream = join(scratch, 'stream');
      const onDisk = join(scratch, 'disk');
      mkdirSync(viaStream);
      mkdirSync(onDisk);
      await mergeStreamingIntoDir(viaStream, layers);
      await mergeIntoDir(onDisk, layers);
      const describe = (dir: string) =>
        execFileSync(
          'sh',
          ['-c', `cd "${dir}" && find . -printf '%y %m %s %n %p\\n' | sort && cat $(find . -type f | sort)`],
          { encoding: 'utf8' },
        );
      expect(describe(viaStream)).toBe(describe(onDisk));
    },
  );

  it('refuses more names than maxNodes with MergeIndexFull (the caller unpacks on disk instead)', async () => {
    const many = Array.from({ length: 30 }, (_, i) => ({ path: `f${i}` }));
    await expect(mergeLayers(await sources(many), { spoolDir, maxNodes: 10 })).rejects.toBeInstanceOf(MergeIndexFull);
    await expect(
      mergeLayers(await sources(many.slice(0, 8), many.slice(8, 16)), {
        spoolDir: mkdtempSync(join(scratch, 's-')),
        maxNodes: 10,
      }),
    ).rejects.toBeInstanceOf(MergeIndexFull);
  });

  it('fails at once on a hostile layer while a later layer is still being downloaded', async () => {
    const hostile = source('sha256:hostile', await makeLayer([{ path: '../escape' }]));
    const never: LayerSource = {
      digest: 'sha256:never',
      mediaType: '',
      size: 1,
      open: () => new Promise(() => undefined),
    };
    await expect(mergeLayers([hostile, never], { spoolDir })).rejects.toMatchObject({
      code: 'SHIFTER_LAYER_UNSAFE_PATH',
    });
  });
});

describe('tarHeader', () => {
  it('writes PAX records for long names, long link targets and mtimes outside the octal field', async () => {
    const longName = `${'d'.repeat(150)}/${'é'.repeat(60)}`;
    const tar = Buffer.concat([
      tarHeader({ name: longName, typeflag: '0', mode: 0o644, mtime: -86_400, size: 0 }),
      tarHeader({ name: 'link', typeflag: '2', mode: 0o777, mtime: 1_700_000_000, linkname: `/${'t'.repeat(200)}` }),
      Buffer.alloc(1024),
    ]);
    const text = listing(tar);
    expect(text).toContain(longName);
    expect(text).toContain(`link -> /${'t'.repeat(200)}`);
    expect(text).toContain('1969-12-31');
    expect(text).toMatch(/^-rw-r--r-- 0\/0 /m);
  });
});
