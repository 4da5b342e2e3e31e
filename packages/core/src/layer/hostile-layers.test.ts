import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LayerSource } from './layer-source.js';
import { type LayerSpecEntry, makeLayer } from '../testing/make-layer.js';
import { flattenLayers } from './apply-layer.js';
import { mergeIntoDir, mergeStreamingIntoDir } from './merge-to-dir.test-support.js';

// Each hostile layer must either be refused with its code or be contained (land inside the root). After every case
// we prove nothing was written outside: the sentinel directory next to the root is unchanged, the scratch directory
// holds only root/ and sentinel/, no host path named by the hostile layers exists, and /etc/shadow's link count and
// ctime are unchanged.

const marker = `shifter-hostile-${randomBytes(4).toString('hex')}`;
const outside = join(tmpdir(), marker);
let scratch: string;
let root: string;
let sentinel: string;
const shadow = existsSync('/etc/shadow') ? statSync('/etc/shadow') : null;

beforeEach(() => {
  scratch = mkdtempSync(join(tmpdir(), 'shifter-hostile-scratch-'));
  root = join(scratch, 'root');
  sentinel = join(scratch, 'sentinel');
  mkdirSync(root);
  mkdirSync(sentinel);
  writeFileSync(join(sentinel, 'keep'), 'x');
});
afterEach(() => {
  expect(readdirSync(scratch).sort()).toEqual(['root', 'sentinel']);
  expect(readdirSync(sentinel)).toEqual(['keep']);
  expect(readdirSync(tmpdir()).filter((name) => name.startsWith(marker))).toEqual([]);
  expect(existsSync(`/${marker}`)).toBe(false);
  expect(existsSync('/pwned')).toBe(false);
  if (shadow) {
    const now = statSync('/etc/shadow');
    expect(now.nlink).toBe(shadow.nlink);
    expect(now.ctimeMs).toBe(shadow.ctimeMs);
  }
  rmSync(scratch, { recursive: true, force: true });
});

const source = (digest: string, blob: Buffer, mediaType = 'application/vnd.oci.image.layer.v1.tar'): LayerSource => ({
  digest,
  mediaType,
  size: blob.length,
  open: async () => Readable.from([blob]),
});

// Every case runs against both ways of flattening: on disk, and merged in memory (then extracted by GNU tar).
const implementations = {
  'on disk': flattenLayers,
  'merged in memory': mergeIntoDir,
  'merged, top layer streamed': mergeStreamingIntoDir,
};
type Flatten = (
  root: string,
  sources: LayerSource[],
  limits?: { maxEntries?: number; maxUnpackedBytes?: number },
) => Promise<{ dropped: unknown[] }>;
let implementation: Flatten = flattenLayers;

async function run(
  layers: (LayerSpecEntry[] | Buffer)[],
  limits: { maxEntries?: number; maxUnpackedBytes?: number } = {},
) {
  const sources = await Promise.all(
    layers.map(async (layer, i) => source(`sha256:layer${i}`, Buffer.isBuffer(layer) ? layer : await makeLayer(layer))),
  );
  return implementation(root, sources, limits);
}

async function refused(layers: (LayerSpecEntry[] | Buffer)[], code: string, entry?: string, limits = {}) {
  const error = await run(layers, limits).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toMatchObject({ code });
  const details = (error as { details: Record<string, unknown> }).details;
  expect(details.layer).toMatch(/^sha256:layer\d$/);
  if (entry !== undefined) expect(details.entry).toBe(entry);
  return error;
}

/** Rewrite the typeflag of the first tar header and fix its checksum. */
function withTypeflag(tar: Buffer, flag: string): Buffer {
  const out = Buffer.from(tar);
  out[156] = flag.charCodeAt(0);
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i] as number;
  out.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return out;
}

describe.each(Object.keys(implementations) as (keyof typeof implementations)[])('flattening %s', (name) => {
  beforeEach(() => {
    implementation = implementations[name];
  });

  describe('hostile layers: names', () => {
    it('refuses an absolute path', async () => {
      await refused([[{ path: `/${marker}`, content: 'x' }]], 'SHIFTER_LAYER_UNSAFE_PATH', `/${marker}`);
    });
    it('refuses an absolute path in a zstd layer with the path code, not as corruption', async () => {
      await refused(
        [
          await makeLayer([{ path: 'ok', content: 'x'.repeat(100_000) }, { path: `/${marker}` }, { path: 'after' }], {
            compression: 'zstd',
          }),
        ],
        'SHIFTER_LAYER_UNSAFE_PATH',
        `/${marker}`,
      );
    });
    it('refuses a ../ escape', async () => {
      await refused([[{ path: '../pwned', content: 'x' }]], 'SHIFTER_LAYER_UNSAFE_PATH', '../pwned');
    });
    it('refuses a .. in the middle of a name', async () => {
      await refused([[{ path: 'a/../../pwned', content: 'x' }]], 'SHIFTER_LAYER_UNSAFE_PATH', 'a/../../pwned');
    });
    it('refuses a non-directory that would replace the root', async () => {
      await refused([[{ path: './', type: 'symlink', linkname: '/' }]], 'SHIFTER_LAYER_UNSAFE_PATH', './');
    });
  });

  describe('hostile layers: symlinks (contained inside the root)', () => {
    it('a write through an absolute symlink lands inside the root', async () => {
      await run([
        [
          { path: 'a', type: 'symlink', linkname: outside },
          { path: 'a/pwned', content: 'x' },
        ],
      ]);
      expect(existsSync(join(root, outside, 'pwned'))).toBe(true);
      expect(lstatSync(join(root, 'a')).isSymbolicLink()).toBe(true);
    });
    it('a write through a ../.. symlink lands at the image root', async () => {
      await run([
        [
          { path: 'b', type: 'symlink', linkname: '../../../..' },
          { path: 'b/pwned', content: 'x' },
        ],
      ]);
      expect(existsSync(join(root, 'pwned'))).toBe(true);
    });
    it('a symlink chain is resolved hop by hop inside the root', async () => {
      await run([
        [
          { path: 'c1', type: 'symlink', linkname: 'c2' },
          { path: 'c2', type: 'symlink', linkname: '../c3' },
          { path: 'c3', type: 'symlink', linkname: outside },
        ],
        [{ path: 'c1/pwned', content: 'x' }],
      ]);
      expect(existsSync(join(root, outside, 'pwned'))).toBe(true);
    });
    it('an entry named like an existing symlink replaces the symlink instead of writing through it', async () => {
      await run([[{ path: 'f', type: 'symlink', linkname: join(sentinel, 'keep') }], [{ path: 'f', content: 'mine' }]]);
      expect(lstatSync(join(root, 'f')).isFile()).toBe(true);
    });
    it('refuses a symlink loop', async () => {
      await refused(
        [
          [
            { path: 'l1', type: 'symlink', linkname: 'l2' },
            { path: 'l2', type: 'symlink', linkname: 'l1' },
            { path: 'l1/x' },
          ],
        ],
        'SHIFTER_LAYER_UNSAFE_LINK',
        'l1/x',
      );
    });
  });

  describe('hostile layers: hardlinks', () => {
    it('refuses a hardlink to /etc/shadow', async () => {
      await refused([[{ path: 'h', type: 'link', linkname: '/etc/shadow' }]], 'SHIFTER_LAYER_UNSAFE_LINK', 'h');
    });
    it('refuses a hardlink to ../x', async () => {
      await refused([[{ path: 'h', type: 'link', linkname: '../sentinel/keep' }]], 'SHIFTER_LAYER_UNSAFE_LINK', 'h');
    });
    it('a hardlink through a symlinked directory resolves inside the root (and fails when missing there)', async () => {
      await refused(
        [
          [
            { path: 'e', type: 'symlink', linkname: '/etc' },
            { path: 'h', type: 'link', linkname: 'e/shadow' },
          ],
        ],
        'SHIFTER_LAYER_CORRUPT',
        'h',
      );
    });
    it('a hardlink to a symlink pointing out links the symlink itself, never the host file', async () => {
      await run([
        [
          { path: 's', type: 'symlink', linkname: '/etc/shadow' },
          { path: 'h2', type: 'link', linkname: 's' },
        ],
      ]);
      const h2 = lstatSync(join(root, 'h2'));
      expect(h2.isSymbolicLink()).toBe(true);
      expect(h2.ino).toBe(lstatSync(join(root, 's')).ino);
    });
  });

  describe('hostile layers: whiteouts', () => {
    it.each(['.wh...', 'a/.wh..', '.wh.'])('refuses the whiteout %s', async (path) => {
      await refused([[{ path: 'a/' }, { path: 'a/x' }], [{ path }]], 'SHIFTER_LAYER_INVALID_WHITEOUT', path);
      // On disk the lower layer is already there and must be untouched; merged, a refusal writes nothing at all.
      if (name === 'on disk') expect(existsSync(join(root, 'a/x'))).toBe(true);
      else expect(readdirSync(root)).toEqual([]);
    });
    it('refuses a whiteout outside the root', async () => {
      await refused([[{ path: '../.wh.sentinel' }]], 'SHIFTER_LAYER_UNSAFE_PATH', '../.wh.sentinel');
    });
    it('a whiteout through a symlink only removes inside the root', async () => {
      await run([
        [
          { path: 'victim' },
          { path: 'w', type: 'symlink', linkname: '../..' },
          { path: 'x', type: 'symlink', linkname: sentinel },
        ],
        [{ path: 'w/.wh.victim' }, { path: 'x/.wh.keep' }],
      ]);
      expect(existsSync(join(root, 'victim'))).toBe(false);
    });
  });

  describe('hostile layers: devices, limits, corruption', () => {
    it('drops device nodes and reports them', async () => {
      const summary = await run([
        [
          { path: 'dev/' },
          { path: 'dev/sda', type: 'block', devmajor: 8 },
          { path: 'dev/mem', type: 'char', devmajor: 1, devminor: 1 },
        ],
      ]);
      expect(readdirSync(join(root, 'dev'))).toEqual([]);
      expect(summary.dropped).toEqual([
        { layer: 'sha256:layer0', entry: 'dev/sda', reason: 'device' },
        { layer: 'sha256:layer0', entry: 'dev/mem', reason: 'device' },
      ]);
    });
    it('refuses more entries than the cap', async () => {
      const many = Array.from({ length: 20 }, (_, i) => ({ path: `f${i}` }));
      await refused([many], 'SHIFTER_LAYER_LIMIT', 'f10', { maxEntries: 10 });
    });
    it('refuses more unpacked bytes than the cap before writing the entry', async () => {
      await refused(
        [
          [
            { path: 'small', content: 'x'.repeat(600) },
            { path: 'big', content: 'x'.repeat(600) },
          ],
        ],
        'SHIFTER_LAYER_LIMIT',
        'big',
        {
          maxUnpackedBytes: 1000,
        },
      );
      expect(existsSync(join(root, 'big'))).toBe(false);
    });
    it('counts the caps across layers', async () => {
      await refused(
        [[{ path: 'a', content: 'x'.repeat(600) }], [{ path: 'b', content: 'x'.repeat(600) }]],
        'SHIFTER_LAYER_LIMIT',
        'b',
        {
          maxUnpackedBytes: 1000,
        },
      );
    });
    it('refuses a truncated gzip layer', async () => {
      const blob = await makeLayer([{ path: 'f', content: randomBytes(64 * 1024) }], { compression: 'gzip' });
      await refused([blob.subarray(0, blob.length / 2)], 'SHIFTER_LAYER_CORRUPT');
    });
    it('refuses a truncated zstd layer', async () => {
      const blob = await makeLayer([{ path: 'f', content: randomBytes(64 * 1024) }], { compression: 'zstd' });
      await refused([blob.subarray(0, blob.length / 2)], 'SHIFTER_LAYER_CORRUPT');
    });
    it('refuses a truncated tar', async () => {
      const blob = await makeLayer([{ path: 'f', content: randomBytes(8192) }]);
      await refused([blob.subarray(0, 2048)], 'SHIFTER_LAYER_CORRUPT');
    });
    it('refuses a tar header with a bad checksum', async () => {
      const blob = await makeLayer([{ path: 'f', content: 'x' }]);
      blob[148] = 0x37;
      await refused([blob], 'SHIFTER_LAYER_CORRUPT');
    });
    it('refuses garbage that is not a tar', async () => {
      await refused([gzipSync(randomBytes(4096))], 'SHIFTER_LAYER_CORRUPT');
    });
    it('refuses an unsupported entry type (GNU sparse)', async () => {
      await refused(
        [withTypeflag(await makeLayer([{ path: 'sparse', content: 'x' }]), 'S')],
        'SHIFTER_LAYER_UNSUPPORTED',
        'sparse',
      );
    });
    it('refuses xz layers and non-layer media types', async () => {
      await refused([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3])], 'SHIFTER_LAYER_UNSUPPORTED');
      const helm = source(
        'sha256:layer0',
        await makeLayer([{ path: 'x' }]),
        'application/vnd.cncf.helm.chart.content.v1.tar+gzip',
      );
      await expect(implementation(root, [helm])).rejects.toMatchObject({
        code: 'SHIFTER_LAYER_UNSUPPORTED',
        details: { layer: 'sha256:layer0' },
      });
    });
  });
});
