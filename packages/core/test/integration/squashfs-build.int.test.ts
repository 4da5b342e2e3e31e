import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type LayerSource, buildSquashfs } from '@shifter/core';
import { flattenLayers } from '@shifter/core/internal';
import { type LayerSpecEntry, makeLayer } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Real mksquashfs / tar2sqfs / unsquashfs on trees made by the layer applier.

const big = randomBytes(3 * 1024 * 1024);
const spec: LayerSpecEntry[][] = [
  [
    { path: 'bin/' },
    { path: 'bin/tool', content: 'tool', mode: 0o4755, mtime: 1_600_000_000 },
    { path: 'bin/same', type: 'link', linkname: 'bin/tool' },
    { path: 'etc/' },
    { path: 'etc/empty' },
    { path: 'etc/motd', content: 'hello\n', mode: 0o444 },
    { path: 'lib', type: 'symlink', linkname: 'usr/lib' },
    { path: 'usr/lib/libz.so.1', content: big },
    { path: 'tmp/', mode: 0o1777 },
    { path: 'run/fifo', type: 'fifo' },
    { path: `deep/${'x'.repeat(150)}/${'ñ'.repeat(60)}`, content: 'long' },
  ],
  [{ path: 'etc/.wh.motd' }, { path: 'opt/', mode: 0o700 }, { path: 'opt/secret', content: 's', mode: 0o600 }],
];

let work: string;
let sources: LayerSource[];
beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'shifter-squashfs-'));
  sources = await Promise.all(
    spec.map(async (layer, i) => {
      const blob = await makeLayer(layer, { compression: i === 0 ? 'gzip' : 'zstd' });
      return { digest: `sha256:${i}`, mediaType: '', size: blob.length, open: async () => Readable.from([blob]) };
    }),
  );
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function tree(name: string): Promise<string> {
  const root = join(work, name);
  mkdirSync(root);
  await flattenLayers(root, sources);
  return root;
}

/** type, mode, size, path, target, content hash of every entry; plus hardlink groups. */
function snapshot(root: string): { entries: string[]; links: string[][] } {
  const entries: string[] = [];
  const inodes = new Map<number, string[]>();
  const walk = (rel: string) => {
    for (const name of readdirSync(rel ? join(root, rel) : root).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(root, path);
      const stat = lstatSync(abs);
      const mode = (stat.mode & 0o7777).toString(8);
      if (stat.isDirectory()) {
        entries.push(`d ${mode} ${path}`);
        walk(path);
      } else if (stat.isSymbolicLink()) entries.push(`l ${path} -> ${readlinkSync(abs)}`);
      else if (stat.isFIFO()) entries.push(`p ${mode} ${path}`);
      else {
        entries.push(
          `f ${mode} ${stat.size} ${path} ${createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16)}`,
        );
        if (stat.nlink > 1) inodes.set(stat.ino, [...(inodes.get(stat.ino) ?? []), path]);
      }
    }
  };
  walk('');
  return { entries, links: [...inodes.values()].map((g) => g.sort()) };
}

function unsquash(file: string, name: string): string {
  const dir = join(work, name);
  execFileSync('unsquashfs', ['-q', '-n', '-d', dir, file], { stdio: 'pipe' });
  return dir;
}

describe.each(['mksquashfs', 'tar2sqfs'] as const)('buildSquashfs with %s', (tool) => {
  it('holds exactly the tree (types, modes incl. setuid, sizes, contents, symlinks, hardlinks), root-owned', async () => {
    const root = await tree(`${tool}-tree`);
    const out = join(work, `${tool}.squashfs`);
    const result = await buildSquashfs(root, out, { conversion: { tool } });
    expect(result).toMatchObject({ path: out, tool });
    expect(result.bytes).toBeGreaterThan(0);
    const expected = snapshot(root);
    const toolHash = createHash('sha256').update('tool').digest('hex').slice(0, 16);
    expect(expected.entries).toContain(`f 4755 4 bin/tool ${toolHash}`);
    expect(expected.links).toEqual([['bin/same', 'bin/tool']]);
    expect(expected.entries.some((e) => e.startsWith('f ') && e.includes('etc/motd'))).toBe(false);
    expect(snapshot(unsquash(out, `${tool}-extracted`))).toEqual(expected);
    const listing = execFileSync('unsquashfs', ['-lln', out], { encoding: 'utf8' });
    for (const line of listing.split('\n').filter((l) => /^[dlp-]/.test(l))) expect(line.split(/\s+/)[1]).toBe('0/0');
  });

  it('is reproducible: two trees flattened in different directories give identical bytes', async () => {
    const a = await buildSquashfs(await tree(`${tool}-a`), join(work, `${tool}-a.squashfs`), { conversion: { tool } });
    const b = await buildSquashfs(await tree(`${tool}-b`), join(work, `${tool}-b.squashfs`), { conversion: { tool } });
    expect(readFileSync(a.path).equals(readFileSync(b.path))).toBe(true);
  });

  it('leaves no file when the tool is missing', async () => {
    const out = join(work, `${tool}-missing`);
    mkdirSync(out);
    await expect(
      buildSquashfs(join(work, `${tool}-a`), join(out, 'x.squashfs'), {
        conversion: { tool, mksquashfsPath: '/nonexistent/mksquashfs', tar2sqfsPath: '/nonexistent/tar2sqfs' },
      }),
    ).rejects.toMatchObject({ code: 'SHIFTER_TOOL_NOT_FOUND' });
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('buildSquashfs', () => {
  it('mksquashfs and tar2sqfs hold the same tree', async () => {
    expect(snapshot(join(work, 'mksquashfs-extracted'))).toEqual(snapshot(join(work, 'tar2sqfs-extracted')));
  });

  const compressors = ['gzip', 'lz4', 'xz', 'lzo', 'zstd'] as const;
  it.each(
    compressors.flatMap((compression) =>
      (['tar2sqfs', 'mksquashfs'] as const).map((tool) => [compression, tool] as const),
    ),
  )('builds with %s (%s)', async (compression, tool) => {
    const out = join(work, `${compression}-${tool}.squashfs`);
    const built = await buildSquashfs(join(work, 'mksquashfs-a'), out, { conversion: { compression, tool } });
    expect(built.tool).toBe(compression === 'lz4' ? 'mksquashfs' : tool);
    expect(execFileSync('unsquashfs', ['-s', out], { encoding: 'utf8' })).toContain(`Compression ${compression}`);
    // The whole image is readable, not just its superblock (tar2sqfs 1.2's lz4 images are not: lz4 uses mksquashfs).
    expect(execFileSync('unsquashfs', ['-l', out], { encoding: 'utf8' })).toContain('squashfs-root/');
  });

  it('replaces an existing file atomically and leaves no partial file when the tool fails', async () => {
    const dir = join(work, 'replace');
    mkdirSync(dir);
    const out = join(dir, 'img.squashfs');
    await buildSquashfs(join(work, 'mksquashfs-a'), out);
    const before = readFileSync(out);
    await expect(
      buildSquashfs(join(work, 'does-not-exist'), out, { conversion: { tool: 'mksquashfs' } }),
    ).rejects.toMatchObject({
      code: 'SHIFTER_CONVERSION_FAILED',
      details: { tool: 'mksquashfs' },
    });
    // tar2sqfs is fed by our own reader of the tree, which reports the missing tree itself.
    await expect(
      buildSquashfs(join(work, 'does-not-exist'), out, { conversion: { tool: 'tar2sqfs' } }),
    ).rejects.toMatchObject({
      code: 'SHIFTER_IO_FAILED',
    });
    expect(readdirSync(dir)).toEqual(['img.squashfs']);
    expect(readFileSync(out).equals(before)).toBe(true);
  });
});
