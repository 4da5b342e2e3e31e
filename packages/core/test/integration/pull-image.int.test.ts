import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ExitCode, parseMeta, pullImage, RegistryClient, type PullImageProgress } from '@shifter/core';
import { haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// End-to-end pullImage against the harness registries: every small fixture from the plain registry, one from each
// authenticated registry, cache reuse, concurrent pulls sharing one cache, and examples/pull-and-convert.ts run as
// a child process the way a site script would run it.

const enabled = haveServices('registry', 'registryBasic', 'registryToken', 'fixtures');
const execFileAsync = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

const FIXTURE_TAGS: Array<[string, string]> = [
  ['busybox', 'latest'],
  ['busybox', 'v2s2'],
  ['whiteout', 'latest'],
  ['multiarch', 'latest'],
  ['multiarch', 'list'],
  ['weird', 'latest'],
];

/** Paths in a squashfs image, from `unsquashfs -lln` (the squashfs-root/ prefix removed). */
function squashfsPaths(file: string): string[] {
  const listing = execFileSync('unsquashfs', ['-lln', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return listing
    .split('\n')
    .map((line) => /squashfs-root(\/.*?)(?: -> .*)?$/.exec(line)?.[1])
    .filter((path): path is string => path !== undefined);
}

describe.skipIf(!enabled)('pullImage end to end', () => {
  let work: string;
  let cacheDir: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'shifter-pull-int-'));
    cacheDir = join(work, 'cache');
  });
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it.each(FIXTURE_TAGS)('pulls test/%s:%s into <id>.squashfs and <id>.meta', async (fixture, tag) => {
    const outDir = join(work, `out-${fixture}-${tag}`);
    const events: PullImageProgress[] = [];
    const result = await pullImage(`${serviceValue('registry')}/test/${fixture}:${tag}`, {
      cacheDir,
      outDir,
      expandDir: join(work, 'expand'),
      onProgress: (event) => events.push(event),
    });
    expect(result.id).toMatch(/^[a-f0-9]{64}$/);
    expect(result.id).toBe(result.manifestDigest.slice('sha256:'.length));
    expect(result.squashfsPath).toBe(join(outDir, `${result.id}.squashfs`));
    expect(result.metaPath).toBe(join(outDir, `${result.id}.meta`));
    expect(readdirSync(outDir).sort()).toEqual([`${result.id}.meta`, `${result.id}.squashfs`]);
    expect(result.usedCredentials).toBe(false);
    const meta = parseMeta(readFileSync(result.metaPath, 'utf8'));
    expect(meta.format).toBe('squashfs');
    const paths = squashfsPaths(result.squashfsPath);
    expect(paths.length).toBeGreaterThan(1);
    if (fixture === 'busybox' || fixture === 'multiarch') expect(paths).toContain('/bin/busybox');
    expect(events[0]).toMatchObject({ phase: 'resolve' });
    expect(events.at(-1)).toEqual({ phase: 'done', id: result.id });
    expect(events.filter((e) => e.phase === 'downloaded')).toHaveLength(
      result.layers.downloaded + result.layers.cached,
    );
    // The expand directory is scratch only.
    expect(readdirSync(join(work, 'expand'))).toEqual([]);
  });

  // The large fixtures exist once the harness finished its second phase (it sets SHIFTER_TEST_HARNESS_PARTIAL=1 before).
  it.skipIf(process.env.SHIFTER_TEST_HARNESS_PARTIAL === '1').each([
    ['big', ['/bin/busybox', '/data/random/blob-1.bin']],
    ['debian', ['/usr/bin/python3', '/usr/bin/gcc', '/etc/debian_version']],
  ] as const)('pulls the large fixture test/%s:latest', async (fixture, expectedPaths) => {
    const result = await pullImage(`${serviceValue('registry')}/test/${fixture}:latest`, {
      cacheDir: join(work, 'cache-large'),
      outDir: join(work, `out-${fixture}`),
      expandDir: join(work, 'expand'),
    });
    const paths = new Set(squashfsPaths(result.squashfsPath));
    for (const path of expectedPaths) expect(paths.has(path), path).toBe(true);
    expect(result.conversion.entries).toBeGreaterThan(1000);
    rmSync(join(work, `out-${fixture}`), { recursive: true, force: true });
  });

  it('uses the blob cache on a second pull and rebuilds byte-identical files', async () => {
    const ref = `${serviceValue('registry')}/test/whiteout:latest`;
    const first = await pullImage(ref, { cacheDir, outDir: join(work, 'again-1'), expandDir: join(work, 'expand') });
    const second = await pullImage(ref, { cacheDir, outDir: join(work, 'again-2'), expandDir: join(work, 'expand') });
    expect(second.layers).toEqual({ downloaded: 0, cached: first.layers.downloaded + first.layers.cached, bytes: 0 });
    expect(readFileSync(second.squashfsPath).equals(readFileSync(first.squashfsPath))).toBe(true);
    expect(readFileSync(second.metaPath, 'utf8')).toBe(readFileSync(first.metaPath, 'utf8'));
  });

  it('downloads each layer once when pulls run concurrently on a shared cache', async () => {
    const shared = join(work, 'shared-cache');
    const client = new RegistryClient();
    try {
      const ref = `${serviceValue('registry')}/test/weird:latest`;
      const results = await Promise.all(
        [1, 2, 3].map((n) =>
          pullImage(ref, {
            cacheDir: shared,
            outDir: join(work, `concurrent-${n}`),
            expandDir: join(work, 'expand'),
            registryClient: client,
          }),
        ),
      );
      const layerCount = results[0]!.layers.downloaded + results[0]!.layers.cached;
      expect(results.reduce((sum, r) => sum + r.layers.downloaded, 0)).toBe(layerCount);
      expect(readdirSync(join(shared, 'sha256')).filter((name) => !name.startsWith('.'))).toHaveLength(layerCount);
    } finally {
      await client.close();
    }
  });

  it('pulls from the Basic + TLS registry and marks the image private with ACLs', async () => {
    const result = await pullImage(`basic/test/busybox:latest`, {
      cacheDir: join(work, 'cache-basic'),
      outDir: join(work, 'out-basic'),
      expandDir: join(work, 'expand'),
      registries: {
        basic: { url: `https://${serviceValue('registryBasic')}`, caFile: process.env.SHIFTER_TEST_CA_FILE! },
      },
      credentials: () => ({
        username: process.env.SHIFTER_TEST_REGISTRY_USER!,
        password: process.env.SHIFTER_TEST_REGISTRY_PASSWORD!,
      }),
      userACL: [2001],
      groupACL: [2001],
    });
    expect(result.usedCredentials).toBe(true);
    expect(readFileSync(result.metaPath, 'utf8')).toMatch(/^USERACL: 2001$/m);
  });

  it('pulls anonymous and private images from the token registry', async () => {
    const options = { cacheDir: join(work, 'cache-token'), expandDir: join(work, 'expand') };
    const anonymous = await pullImage(`${serviceValue('registryToken')}/test/multiarch:list`, {
      ...options,
      outDir: join(work, 'out-token'),
    });
    expect(anonymous.usedCredentials).toBe(false);
    const privateImage = await pullImage(`${serviceValue('registryToken')}/private/busybox:latest`, {
      ...options,
      outDir: join(work, 'out-token-private'),
      credentials: () => ({
        username: process.env.SHIFTER_TEST_REGISTRY_USER!,
        password: process.env.SHIFTER_TEST_REGISTRY_PASSWORD!,
      }),
      userACL: [2002],
    });
    expect(privateImage.usedCredentials).toBe(true);
    expect(readFileSync(privateImage.metaPath, 'utf8')).toMatch(/^USERACL: 2002$/m);
  });

  it('fails cleanly on an unknown tag and leaves no output', async () => {
    const outDir = join(work, 'out-missing');
    await expect(
      pullImage(`${serviceValue('registry')}/test/busybox:missing`, {
        cacheDir,
        outDir,
        expandDir: join(work, 'expand'),
      }),
    ).rejects.toMatchObject({
      code: 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN',
    });
    expect(existsSync(outDir) ? readdirSync(outDir) : []).toEqual([]);
  });

  describe('examples/pull-and-convert.ts as a child process', () => {
    // Run from source: node resolves @shifter/core to src/ through the @shifter/source condition, tsx compiles TS.
    const run = (args: string[], env: Record<string, string> = {}) =>
      execFileAsync(
        process.execPath,
        ['--conditions=@shifter/source', '--import', 'tsx', join(repoRoot, 'examples/pull-and-convert.ts'), ...args],
        {
          cwd: repoRoot,
          env: { ...process.env, SHIFTER_CACHE_DIR: join(work, 'example-cache'), ...env },
        },
      );

    it('prints the id as its last line and writes both files', async () => {
      const outDir = join(work, 'example-out');
      const { stdout } = await run([`${serviceValue('registry')}/test/busybox:latest`, outDir]);
      const id = stdout.trim().split('\n').at(-1)!;
      expect(id).toMatch(/^[a-f0-9]{64}$/);
      expect(readdirSync(outDir).sort()).toEqual([`${id}.meta`, `${id}.squashfs`]);
      expect(readdirSync(join(work, 'example-cache', 'sha256')).length).toBeGreaterThan(0);
    });

    it('prints CODE: message and exits with the catalogue exit code on failure', async () => {
      const failure = await run([`${serviceValue('registry')}/test/busybox:missing`, join(work, 'example-fail')]).catch(
        (error: unknown) => error as { code: number; stderr: string },
      );
      expect(failure).toMatchObject({ code: ExitCode.NOINPUT });
      expect((failure as { stderr: string }).stderr).toMatch(/^SHIFTER_REGISTRY_MANIFEST_UNKNOWN: /m);
      const invalid = await run(['Not/A/Valid:Ref!', join(work, 'example-fail')]).catch(
        (error: unknown) => error as { code: number; stderr: string },
      );
      expect(invalid).toMatchObject({
        code: ExitCode.DATAERR,
        stderr: expect.stringMatching(/^SHIFTER_REF_INVALID: /m),
      });
    });
  });
});
