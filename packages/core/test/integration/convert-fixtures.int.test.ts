import { execFileSync } from 'node:child_process';
import {
  createReadStream,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConversionError, type LayerSource, convertImage, parseMeta } from '@shifter/core';
import { flattenLayers } from '@shifter/core/internal';
import { haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The harness's fixtures as OCI layouts: every tag of every fixture is converted with convertImage (LayerSources
// opening the layout's blobs) and checked against `umoci unpack` of the same image, `unsquashfs -lln` of the
// result, a second build, and the config's metadata.

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string };
  annotations?: Record<string, string>;
}

const blobPath = (layout: string, digest: string) => join(layout, 'blobs', ...digest.split(':'));
const readJson = (layout: string, digest: string) =>
  JSON.parse(readFileSync(blobPath(layout, digest), 'utf8')) as Record<string, unknown>;

/** The platform manifest (linux/amd64 from an index), its config and its layers as LayerSources. */
function loadImage(layout: string, tag: string) {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  let descriptor = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!descriptor) throw new Error(`no tag ${tag} in ${layout}`);
  if (descriptor.mediaType.includes('index') || descriptor.mediaType.includes('list')) {
    const inner = readJson(layout, descriptor.digest) as unknown as { manifests: Descriptor[] };
    descriptor = inner.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
    if (!descriptor) throw new Error(`no linux/amd64 in ${layout}:${tag}`);
  }
  const manifest = readJson(layout, descriptor.digest) as unknown as { config: Descriptor; layers: Descriptor[] };
  // umoci unpacks manifests only: for an index, use the layout's tag of the selected platform manifest.
  const platformDigest = descriptor.digest;
  const umociTag =
    index.manifests.find((m) => m.digest === platformDigest)?.annotations?.['org.opencontainers.image.ref.name'] ?? tag;
  const layers: LayerSource[] = manifest.layers.map((layer) => ({
    digest: layer.digest,
    mediaType: layer.mediaType,
    size: layer.size,
    open: async () => createReadStream(blobPath(layout, layer.digest)),
  }));
  return {
    id: descriptor.digest.split(':')[1] as string,
    config: readJson(layout, manifest.config.digest),
    layers,
    umociTag,
  };
}

function tags(layout: string): string[] {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  return [
    ...new Set(
      index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']).filter((t): t is string => !!t),
    ),
  ];
}

interface Node {
  type: string;
  mode: number;
  size: number;
  target?: string;
  ino: number;
  nlink: number;
}

/** path → node for a tree; device nodes left out (dropped by policy). */
function describeTree(root: string): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (rel: string) => {
    for (const name of readdirSync(rel ? join(root, rel) : root)) {
      const path = rel ? `${rel}/${name}` : name;
      const stat = lstatSync(join(root, path));
      if (stat.isCharacterDevice() || stat.isBlockDevice()) continue;
      const type = stat.isDirectory()
        ? 'dir'
        : stat.isSymbolicLink()
          ? 'symlink'
          : stat.isFIFO()
            ? 'fifo'
            : stat.isFile()
              ? 'file'
              : 'other';
      out.set(path, {
        type,
        mode: stat.mode & 0o7777,
        size: type === 'file' ? stat.size : 0,
        ...(type === 'symlink' ? { target: readlinkSync(join(root, path)) } : {}),
        ino: stat.ino,
        nlink: type === 'file' ? stat.nlink : 1,
      });
      if (type === 'dir') walk(path);
    }
  };
  walk('');
  return out;
}

const comparable = (tree: Map<string, Node>) =>
  [...tree.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([path, n]) => `${n.type} ${n.mode.toString(8)} ${n.size} ${path}${n.target ? ` -> ${n.target}` : ''}`);

/** Hardlink identity: the sets of paths sharing an inode. */
function inodeGroups(tree: Map<string, Node>): string[][] {
  const groups = new Map<number, string[]>();
  for (const [path, node] of tree)
    if (node.type === 'file' && node.nlink > 1) groups.set(node.ino, [...(groups.get(node.ino) ?? []), path]);
  return [...groups.values()].map((g) => g.sort()).sort((a, b) => ((a[0] ?? '') < (b[0] ?? '') ? -1 : 1));
}

/** `unsquashfs -lln` as `type mode size path [-> target]` lines, comparable with {@link comparable}. */
function squashfsListing(file: string): string[] {
  const text = execFileSync('unsquashfs', ['-lln', '-d', '', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^([dlpcbs-])([rwxsStT-]{9}) (\S+) +(\d+|\d+, *\d+) \S+ \S+ (.*)$/.exec(line);
    if (!m) continue;
    const [, t, perms, owner, size, rest] = m as unknown as string[];
    expect(owner).toBe('0/0');
    let path = rest as string;
    let target: string | undefined;
    if (t === 'l') [path, target] = path.split(' -> ') as [string, string];
    path = path.replace(/^\//, '');
    if (path === '' || t === 'c' || t === 'b') continue;
    const type = { d: 'dir', l: 'symlink', p: 'fifo', '-': 'file', s: 'socket' }[t as 'd'] ?? 'other';
    lines.push(
      `${type} ${permsToMode(perms as string).toString(8)} ${type === 'file' ? size : 0} ${path}${target !== undefined ? ` -> ${target}` : ''}`,
    );
  }
  return lines.sort((a, b) => (a.split(' ').slice(3).join(' ') < b.split(' ').slice(3).join(' ') ? -1 : 1));
}

function permsToMode(p: string): number {
  let mode = 0;
  const bit = (i: number, v: number) => (p[i] !== '-' && p[i] !== 'S' && p[i] !== 'T' ? v : 0);
  mode |=
    bit(0, 0o400) |
    bit(1, 0o200) |
    bit(2, 0o100) |
    bit(3, 0o40) |
    bit(4, 0o20) |
    bit(5, 0o10) |
    bit(6, 0o4) |
    bit(7, 0o2) |
    bit(8, 0o1);
  if (p[2] === 's' || p[2] === 'S') mode |= 0o4000;
  if (p[5] === 's' || p[5] === 'S') mode |= 0o2000;
  if (p[8] === 't' || p[8] === 'T') mode |= 0o1000;
  return mode;
}

const sortByPath = (lines: string[]) =>
  [...lines].sort((a, b) => (a.split(' ').slice(3).join(' ') < b.split(' ').slice(3).join(' ') ? -1 : 1));

describe.skipIf(!haveServices('fixtures'))('convertImage on the harness fixtures', () => {
  const fixturesDir = serviceValue('fixtures');
  const small = ['busybox', 'whiteout', 'multiarch', 'weird'].filter((f) => existsSync(join(fixturesDir, f)));
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(process.env.SHIFTER_TEST_SCRATCH ?? tmpdir(), 'shifter-convert-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('has the small fixtures', () => {
    expect(small).toEqual(['busybox', 'whiteout', 'multiarch', 'weird']);
  });

  // The big (~200 MB) and debian (~500 MB unpacked) fixtures are tested too when the harness built them.
  for (const fixture of ['busybox', 'whiteout', 'multiarch', 'weird', 'big', 'debian']) {
    describe(fixture, () => {
      const layout = join(fixturesDir, fixture);
      for (const tag of existsSync(layout) ? tags(layout).filter((t) => !['amd64', 'arm64'].includes(t)) : []) {
        it(
          `${fixture}:${tag} flattens to umoci's tree, squashfs lists the same, builds reproducibly, .meta matches`,
          { timeout: 1_200_000 },
          async () => {
            const image = loadImage(layout, tag);
            const dir = join(work, `${fixture}-${tag}`);
            mkdirSync(dir);
            // Oracle: umoci unpack of the same image.
            execFileSync('umoci', ['unpack', '--image', `${layout}:${image.umociTag}`, join(dir, 'bundle')], {
              stdio: 'pipe',
            });
            const expected = describeTree(join(dir, 'bundle', 'rootfs'));
            // Ours, flattened alone (to compare the tree) …
            mkdirSync(join(dir, 'ours'));
            const flat = await flattenLayers(join(dir, 'ours'), image.layers);
            const actual = describeTree(join(dir, 'ours'));
            expect(comparable(actual)).toEqual(comparable(expected));
            expect(inodeGroups(actual)).toEqual(inodeGroups(expected));
            expect(flat.layers).toHaveLength(image.layers.length);

            // … and converted twice into different scratch and output directories.
            const out1 = join(dir, 'out1');
            const out2 = join(dir, 'out2');
            mkdirSync(out1);
            mkdirSync(out2);
            const first = await convertImage(image.layers, image.config, out1, {
              id: image.id,
              expandDir: join(dir, 'expand1'),
            });
            const second = await convertImage(image.layers, image.config, out2, {
              id: image.id,
              expandDir: join(dir, 'expand2'),
            });
            expect(readdirSync(out1).sort()).toEqual([`${image.id}.meta`, `${image.id}.squashfs`]);
            expect(readdirSync(join(dir, 'expand1'))).toEqual([]);
            expect(readFileSync(first.squashfsPath).equals(readFileSync(second.squashfsPath))).toBe(true);
            expect(readFileSync(first.metaPath, 'utf8')).toBe(readFileSync(second.metaPath, 'utf8'));

            // The squashfs holds exactly the flattened tree, all root-owned …
            expect(squashfsListing(first.squashfsPath)).toEqual(sortByPath(comparable(actual)));
            // … and, extracted, umoci's tree: hardlink identity and the mtimes of non-directories included.
            execFileSync('unsquashfs', ['-q', '-n', '-d', join(dir, 'extracted'), first.squashfsPath], {
              stdio: 'pipe',
            });
            const extracted = describeTree(join(dir, 'extracted'));
            expect(comparable(extracted)).toEqual(comparable(expected));
            expect(inodeGroups(extracted)).toEqual(inodeGroups(expected));
            const mtimes = (root: string, tree: Map<string, Node>) =>
              [...tree]
                .filter(([, n]) => n.type !== 'dir')
                .map(([path]) => `${Math.floor(lstatSync(join(root, path)).mtimeMs / 1000)} ${path}`)
                .sort();
            expect(mtimes(join(dir, 'extracted'), extracted)).toEqual(mtimes(join(dir, 'bundle', 'rootfs'), expected));

            // .meta carries the config's Env/Entrypoint/Cmd/WorkingDir.
            const config = (image.config.config ?? {}) as Record<string, unknown>;
            const meta = parseMeta(readFileSync(first.metaPath, 'utf8'));
            expect(meta.format).toBe('squashfs');
            expect(meta.env).toEqual(config.Env ?? []);
            expect(meta.entrypoint).toEqual(
              (config.Entrypoint as string[] | undefined)?.length ? config.Entrypoint : null,
            );
            expect(meta.cmd).toEqual((config.Cmd as string[] | undefined)?.length ? config.Cmd : null);
            expect(meta.workdir).toEqual(config.WorkingDir || null);
            expect(first.metadata.env).toEqual(config.Env ?? []);
          },
        );
      }
    });
  }

  it('whiteout: only the surviving files are left', async () => {
    const image = loadImage(join(fixturesDir, 'whiteout'), 'latest');
    const root = join(work, 'whiteout-check');
    mkdirSync(root);
    const summary = await flattenLayers(root, image.layers);
    expect(summary.layers.reduce((n, l) => n + l.whiteouts, 0)).toBeGreaterThan(0);
    // Every whiteout in the layers names something that is gone now (unless re-added by a later layer).
    const whiteouts = execFileSync(
      'sh',
      ['-c', image.layers.map((l) => `tar -tzf '${blobPath(join(fixturesDir, 'whiteout'), l.digest)}'`).join(';')],
      {
        encoding: 'utf8',
      },
    )
      .split('\n')
      .filter((n) => /(^|\/)\.wh\./.test(n));
    expect(whiteouts.length).toBeGreaterThan(0);
    const tree = describeTree(root);
    for (const name of tree.keys()) expect(name).not.toMatch(/(^|\/)\.wh\./);
  });

  it('weird: type changes, hardlinks into a lower layer, special modes and awkward metadata', async () => {
    const image = loadImage(join(fixturesDir, 'weird'), 'latest');
    const root = join(work, 'weird-check');
    mkdirSync(root);
    await flattenLayers(root, image.layers);
    const w = (p: string) => join(root, 'weird', p);
    expect(lstatSync(w('file-to-dir')).isDirectory()).toBe(true);
    expect(readFileSync(w('file-to-dir/child.txt'), 'utf8')).toBe('now a directory\n');
    expect(lstatSync(w('dir-to-file')).isFile()).toBe(true);
    expect(readFileSync(w('dir-to-file'), 'utf8')).toBe('now a file\n');
    expect(lstatSync(w('link-to-lower')).ino).toBe(lstatSync(w('file.txt')).ino);
    expect(lstatSync(w('hard-a')).ino).toBe(lstatSync(w('hard-b')).ino);
    // The symlink that became a directory was replaced, not followed: file.txt is untouched.
    expect(lstatSync(w('link-to-file')).isDirectory()).toBe(true);
    expect(readdirSync(w('link-to-file'))).toEqual(['now-a-dir.txt']);
    expect(readFileSync(w('file.txt'), 'utf8')).toBe('plain file\n');
    expect(lstatSync(w('setuid-file')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(w('setgid-dir')).mode & 0o7777).toBe(0o2775);
    expect(lstatSync(w('fifo')).isFIFO()).toBe(true);
    expect(readlinkSync(w('dangling'))).toBe('/does/not/exist');
    expect(readFileSync(w('日本/café/résumé-é.txt'), 'utf8')).toBe('non-ASCII\n');
    const longDir = Array.from({ length: 6 }, (_, i) => `long-directory-name-${String(i + 1).padStart(2, '0')}/`).join(
      '',
    );
    expect(readFileSync(w(`${longDir}file-at-the-end-of-a-long-path.txt`), 'utf8')).toBe('deep long path\n');
    expect(readlinkSync(w('long-target-link'))).toBe(`/weird/${longDir}file-at-the-end-of-a-long-path.txt`);

    // Quotes, spaces and a newline in the config: written in the encoded .meta form and read back exactly.
    const out = join(work, 'weird-meta');
    mkdirSync(out);
    const result = await convertImage(image.layers, image.config, out, {
      id: image.id,
      expandDir: join(work, 'weird-expand'),
    });
    const text = readFileSync(result.metaPath, 'utf8');
    const config = image.config.config as { Env: string[]; Entrypoint: string[]; Cmd: string[] };
    expect(text).toMatch(/^ENV: %/m);
    expect(parseMeta(text)).toMatchObject({
      env: config.Env,
      entrypoint: config.Entrypoint,
      cmd: config.Cmd,
      workdir: '/weird',
    });
  });

  it.each([
    ['mksquashfs', '-no-such-option', /invalid option/],
    ['tar2sqfs', '--no-such-option', /unrecognized option/],
  ] as const)('a failing %s leaves no file in the output directory and no scratch', async (tool, option, message) => {
    const image = loadImage(join(fixturesDir, 'busybox'), 'latest');
    const out = join(work, `failing-${tool}-out`);
    const expand = join(work, `failing-${tool}-expand`);
    mkdirSync(out);
    const error = await convertImage(image.layers, image.config, out, {
      id: image.id,
      expandDir: expand,
      conversion: { tool, extraArgs: [option] },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversionError);
    expect(error).toMatchObject({ code: 'SHIFTER_CONVERSION_FAILED', details: { tool } });
    expect((error as ConversionError).details.stderr).toMatch(message);
    expect(readdirSync(out)).toEqual([]);
    expect(readdirSync(expand)).toEqual([]);
  });
});
