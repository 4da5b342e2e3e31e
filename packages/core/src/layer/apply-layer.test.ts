import { execFileSync } from 'node:child_process';
import {
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LayerSource } from './layer-source.js';
import { type LayerSpecEntry, makeLayer } from '../testing/make-layer.js';
import { applyLayer, flattenLayers } from './apply-layer.js';
import { mergeIntoDir, mergeStreamingIntoDir } from './merge-to-dir.test-support.js';

let scratch: string;
let root: string;
beforeEach(() => {
  scratch = mkdtempSync(join(tmpdir(), 'shifter-layer-'));
  root = join(scratch, 'root');
  mkdirSync(root);
});
afterEach(() => rmSync(scratch, { recursive: true, force: true }));

function source(digest: string, blob: Buffer, mediaType = 'application/vnd.oci.image.layer.v1.tar'): LayerSource {
  return { digest, mediaType, size: blob.length, open: async () => Readable.from([blob]) };
}

// Every flattenLayers case also runs through the in-memory merge (mergeLayers → one tar → extracted by GNU tar).
const implementations = {
  'on disk': flattenLayers,
  'merged in memory': mergeIntoDir,
  'merged, top layer streamed': mergeStreamingIntoDir,
};
let implementation: (root: string, sources: LayerSource[]) => Promise<{ dropped: { reason: string }[] }> =
  flattenLayers;

async function flatten(...layers: LayerSpecEntry[][]) {
  const sources = await Promise.all(layers.map(async (spec, i) => source(`sha256:${i}`, await makeLayer(spec))));
  return implementation(root, sources);
}

/** Every path under root, sorted, with a type letter. */
function tree(dir = root, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const stat = lstatSync(join(dir, name));
    const rel = `${prefix}${name}`;
    if (stat.isDirectory()) out.push(`${rel}/`, ...tree(join(dir, name), `${rel}/`));
    else if (stat.isSymbolicLink()) out.push(`${rel} -> ${readlinkSync(join(dir, name))}`);
    else out.push(rel);
  }
  return out;
}

describe.each(Object.keys(implementations) as (keyof typeof implementations)[])('flattening %s', (name) => {
  beforeEach(() => {
    implementation = implementations[name];
  });

  describe('flattenLayers: whiteouts', () => {
    it('a whiteout removes a lower file and is never extracted', async () => {
      await flatten([{ path: 'a/' }, { path: 'a/x', content: '1' }, { path: 'a/y' }], [{ path: 'a/.wh.x' }]);
      expect(tree()).toEqual(['a/', 'a/y']);
    });
    it('a whiteout removes a lower directory with its subtree', async () => {
      await flatten([{ path: 'd/' }, { path: 'd/e/' }, { path: 'd/e/f' }, { path: 'k' }], [{ path: '.wh.d' }]);
      expect(tree()).toEqual(['k']);
    });
    it('an opaque marker removes lower children and keeps the directory', async () => {
      await flatten(
        [{ path: 'o/' }, { path: 'o/old' }, { path: 'o/sub/' }, { path: 'o/sub/f' }],
        [{ path: 'o/.wh..wh..opq' }, { path: 'o/new' }],
      );
      expect(tree()).toEqual(['o/', 'o/new']);
    });
    it('keeps a file re-added before its whiteout in the same layer', async () => {
      await flatten([{ path: 'f', content: 'old' }], [{ path: 'f', content: 'new' }, { path: '.wh.f' }]);
      expect(readFileSync(join(root, 'f'), 'utf8')).toBe('new');
    });
    it('keeps a file re-added after its whiteout in the same layer', async () => {
      await flatten([{ path: 'f', content: 'old' }], [{ path: '.wh.f' }, { path: 'f', content: 'new' }]);
      expect(readFileSync(join(root, 'f'), 'utf8')).toBe('new');
    });
    it('an opaque marker after same-layer children keeps them but removes lower ones', async () => {
      await flatten([{ path: 'o/' }, { path: 'o/lower' }], [{ path: 'o/upper' }, { path: 'o/.wh..wh..opq' }]);
      expect(tree()).toEqual(['o/', 'o/upper']);
    });
    it('a whiteout of a directory after a same-layer child removes only the lower children', async () => {
      await flatten([{ path: 'd/' }, { path: 'd/lower' }], [{ path: 'd/upper' }, { path: '.wh.d' }]);
      expect(tree()).toEqual(['d/', 'd/upper']);
    });
    it('a whiteout after a same-layer hardlink to the lower file removes the lower name only', async () => {
      await flatten(
        [{ path: 'old', content: 'data' }],
        [{ path: 'new', type: 'link', linkname: 'old' }, { path: '.wh.old' }],
      );
      expect(tree()).toEqual(['new']);
      expect(readFileSync(join(root, 'new'), 'utf8')).toBe('data');
    });
    it('a whiteout after a same-layer symlink and FIFO keeps them', async () => {
      await flatten(
        [
          { path: 's', content: 'lower' },
          { path: 'p', content: 'lower' },
        ],
        [
          { path: 's', type: 'symlink', linkname: 'target' },
          { path: 'p', type: 'fifo' },
          { path: '.wh.s' },
          { path: '.wh.p' },
        ],
      );
      expect(tree()).toEqual(['p', 's -> target']);
    });
    it('a whiteout of something that does not exist is harmless', async () => {
      await flatten([{ path: 'a' }], [{ path: 'nothere/.wh.x' }, { path: '.wh.y' }]);
      expect(tree()).toEqual(['a']);
    });
    it('drops aufs metadata entries', async () => {
      const summary = await flatten([{ path: '.wh..wh.plnk/' }, { path: '.wh..wh.aufs' }, { path: 'x' }]);
      expect(tree()).toEqual(['x']);
      expect(summary.dropped.map((d) => d.reason)).toEqual(['aufs-metadata', 'aufs-metadata']);
    });
  });

  describe('flattenLayers: replacement and links', () => {
    it('a file replaces a directory subtree', async () => {
      await flatten([{ path: 't/' }, { path: 't/child' }], [{ path: 't', content: 'file now' }]);
      expect(tree()).toEqual(['t']);
    });
    it('a directory replaces a file and a symlink', async () => {
      await flatten(
        [
          { path: 'a', content: 'x' },
          { path: 'b', type: 'symlink', linkname: 'a' },
        ],
        [{ path: 'a/' }, { path: 'b/' }, { path: 'b/c' }],
      );
      expect(tree()).toEqual(['a/', 'b/', 'b/c']);
    });
    it('a directory over a directory updates its mode and keeps its children', async () => {
      await flatten([{ path: 'd/', mode: 0o755 }, { path: 'd/keep' }], [{ path: 'd/', mode: 0o700 }]);
      expect(tree()).toEqual(['d/', 'd/keep']);
      expect(lstatSync(join(root, 'd')).mode & 0o7777).toBe(0o700);
    });
    it('a replaced file does not change its other hardlink', async () => {
      await flatten(
        [
          { path: 'a', content: 'one' },
          { path: 'b', type: 'link', linkname: 'a' },
        ],
        [{ path: 'a', content: 'two' }],
      );
      expect(readFileSync(join(root, 'a'), 'utf8')).toBe('two');
      expect(readFileSync(join(root, 'b'), 'utf8')).toBe('one');
    });
    it('resolves a hardlink into a lower layer', async () => {
      await flatten(
        [{ path: 'usr/' }, { path: 'usr/bin/' }, { path: 'usr/bin/x', content: 'bin' }],
        [{ path: 'y', type: 'link', linkname: './usr/bin/x' }],
      );
      expect(lstatSync(join(root, 'y')).ino).toBe(lstatSync(join(root, 'usr/bin/x')).ino);
    });
    it('writes through a symlinked parent inside the root (merged /usr)', async () => {
      await flatten(
        [{ path: 'usr/' }, { path: 'usr/lib/' }, { path: 'lib', type: 'symlink', linkname: 'usr/lib' }],
        [{ path: 'lib/libx.so', content: 'so' }],
      );
      expect(readFileSync(join(root, 'usr/lib/libx.so'), 'utf8')).toBe('so');
      expect(lstatSync(join(root, 'lib')).isSymbolicLink()).toBe(true);
    });
    it('directories listed after their children get their own mode and mtime', async () => {
      await flatten([
        { path: 'late/child', mtime: 1_600_000_000 },
        { path: 'late/', mode: 0o750, mtime: 1_500_000_000 },
      ]);
      const stat = lstatSync(join(root, 'late'));
      expect(stat.mode & 0o7777).toBe(0o750);
      expect(Math.floor(stat.mtimeMs / 1000)).toBe(1_500_000_000);
    });
    it('keeps setuid/setgid/sticky bits, FIFOs, symlink targets and mtimes', async () => {
      await flatten([
        { path: 'suid', mode: 0o4755, mtime: 1_234_567_890 },
        { path: 'sgid', mode: 0o2711 },
        { path: 'tmp/', mode: 0o1777 },
        { path: 'fifo', type: 'fifo', mode: 0o600 },
        { path: 'abs', type: 'symlink', linkname: '/etc/hostname', mtime: 1_111_111_111 },
      ]);
      expect(lstatSync(join(root, 'suid')).mode & 0o7777).toBe(0o4755);
      expect(Math.floor(lstatSync(join(root, 'suid')).mtimeMs / 1000)).toBe(1_234_567_890);
      expect(lstatSync(join(root, 'sgid')).mode & 0o7777).toBe(0o2711);
      expect(lstatSync(join(root, 'tmp')).mode & 0o7777).toBe(0o1777);
      expect(lstatSync(join(root, 'fifo')).isFIFO()).toBe(true);
      expect(readlinkSync(join(root, 'abs'))).toBe('/etc/hostname');
      expect(Math.floor(lstatSync(join(root, 'abs')).mtimeMs / 1000)).toBe(1_111_111_111);
    });
    it('implicit parents and the root get mtime 0 and mode 0755 (reproducible)', async () => {
      await flatten([{ path: 'a/b/c' }]);
      for (const dir of [root, join(root, 'a'), join(root, 'a/b')]) {
        expect(lstatSync(dir).mtimeMs).toBe(0);
        expect(lstatSync(dir).mode & 0o7777).toBe(0o755);
      }
    });
    it('reads PAX long and non-ASCII names and long link targets', async () => {
      const long = `${'d'.repeat(120)}/${'é'.repeat(90)}`;
      await flatten([
        { path: long, content: 'x' },
        { path: 's', type: 'symlink', linkname: `/${'t'.repeat(200)}` },
        { path: 'h', type: 'link', linkname: long },
      ]);
      expect(readFileSync(join(root, long), 'utf8')).toBe('x');
      expect(readlinkSync(join(root, 's'))).toBe(`/${'t'.repeat(200)}`);
      expect(lstatSync(join(root, 'h')).nlink).toBe(2);
    });
  });
});

describe('applyLayer: GNU tar archives', () => {
  it('reads GNU long names (L) and long link targets (K) written by GNU tar', async () => {
    const src = join(scratch, 'src');
    const longDir = 'd'.repeat(120);
    const longName = `${longDir}/${'f'.repeat(110)}`;
    mkdirSync(join(src, longDir), { recursive: true });
    writeFileSync(join(src, longName), 'gnu');
    linkSync(join(src, longName), join(src, 'hard'));
    symlinkSync(`/${'t'.repeat(150)}`, join(src, 'sym'));
    // Sorted so the long name comes first and `hard` becomes the hardlink entry with a long (K) target.
    const blob = execFileSync('tar', ['--format=gnu', '--sort=name', '-C', src, '-cf', '-', longDir, 'hard', 'sym']);
    expect(blob.includes(Buffer.from('././@LongLink'))).toBe(true);
    await applyLayer(root, Readable.from([blob]), { layer: 'sha256:gnu' });
    expect(readFileSync(join(root, longName), 'utf8')).toBe('gnu');
    expect(lstatSync(join(root, 'hard')).ino).toBe(lstatSync(join(root, longName)).ino);
    expect(readlinkSync(join(root, 'sym'))).toBe(`/${'t'.repeat(150)}`);
  });
});

describe('applyLayer: compression', () => {
  for (const compression of ['none', 'gzip', 'zstd'] as const) {
    it(`detects ${compression} from the bytes whatever the media type says`, async () => {
      const blob = await makeLayer([{ path: 'hello', content: 'world' }], { compression });
      const summary = await applyLayer(root, Readable.from([blob]), {
        layer: 'sha256:c',
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      });
      expect(readFileSync(join(root, 'hello'), 'utf8')).toBe('world');
      expect(summary).toMatchObject({ entries: 1, bytes: 5 });
    });
  }
  it('accepts an empty blob as an empty layer', async () => {
    const summary = await applyLayer(root, Readable.from([Buffer.alloc(0)]), { layer: 'sha256:e' });
    expect(summary.entries).toBe(0);
  });
});

describe('flattenLayers with a spool directory (next layer decompressed ahead)', () => {
  it('gives the same tree as without, and leaves the spool empty', async () => {
    const specs: LayerSpecEntry[][] = [
      [{ path: 'a/' }, { path: 'a/x', content: '1' }, { path: 'keep' }],
      [{ path: 'a/.wh.x' }, { path: 'b', content: 'two' }],
      [
        { path: 'b', content: 'three' },
        { path: 'h', type: 'link', linkname: 'keep' },
      ],
    ];
    const spool = join(scratch, 'spool');
    mkdirSync(spool);
    const sources = await Promise.all(
      specs.map(async (spec, i) =>
        source(`sha256:${i}`, await makeLayer(spec, { compression: i % 2 ? 'zstd' : 'gzip' })),
      ),
    );
    const summary = await flattenLayers(root, sources, { spoolDir: spool });
    expect(summary.layers.map((l) => l.layer)).toEqual(['sha256:0', 'sha256:1', 'sha256:2']);
    expect(tree()).toEqual(['a/', 'b', 'h', 'keep']);
    expect(readFileSync(join(root, 'b'), 'utf8')).toBe('three');
    expect(readdirSync(spool)).toEqual([]);
  });
  it('reports a corrupt later layer with its own digest and cleans the spool', async () => {
    const spool = join(scratch, 'spool');
    mkdirSync(spool);
    const good = await makeLayer([{ path: 'f', content: 'x'.repeat(100_000) }], { compression: 'gzip' });
    const bad = good.subarray(0, good.length - 40);
    await expect(
      flattenLayers(root, [source('sha256:good', good), source('sha256:bad', bad)], { spoolDir: spool }),
    ).rejects.toMatchObject({
      code: 'SHIFTER_LAYER_CORRUPT',
      details: { layer: 'sha256:bad' },
    });
    expect(readdirSync(spool)).toEqual([]);
  });
  it('stops reading ahead when the current layer fails', async () => {
    const spool = join(scratch, 'spool');
    mkdirSync(spool);
    const hostile = await makeLayer([{ path: '../escape' }]);
    const next = await makeLayer([{ path: 'big', content: 'y'.repeat(1_000_000) }], { compression: 'gzip' });
    await expect(
      flattenLayers(root, [source('sha256:h', hostile), source('sha256:n', next)], { spoolDir: spool }),
    ).rejects.toMatchObject({
      code: 'SHIFTER_LAYER_UNSAFE_PATH',
    });
    expect(readdirSync(spool)).toEqual([]);
  });
});
