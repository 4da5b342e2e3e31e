import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrustAnchors } from './trust-anchors.js';

describe('readTrustAnchors', () => {
  let dir: string;
  let pem: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trust-anchors-'));
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'].concat([
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'ca.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=site CA',
      ]),
      { stdio: 'ignore' },
    );
    pem = await readFile(join(dir, 'ca.pem'), 'utf8');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a PEM file whole (a bundle stays one text)', async () => {
    await writeFile(join(dir, 'bundle.pem'), pem + pem);
    await expect(readTrustAnchors(join(dir, 'ca.pem'))).resolves.toEqual([pem]);
    await expect(readTrustAnchors(join(dir, 'bundle.pem'))).resolves.toEqual([pem + pem]);
  });

  it('reads the <hash>.<n> entries of a directory hashed by openssl rehash, nothing else', async () => {
    const hashed = join(dir, 'hashed');
    await mkdir(hashed);
    await writeFile(join(hashed, 'site.pem'), pem);
    await writeFile(join(hashed, 'README'), 'not a certificate');
    execFileSync('openssl', ['rehash', hashed], { stdio: 'ignore' });
    await expect(readTrustAnchors(hashed)).resolves.toEqual([pem]);
  });

  it('refuses a relative path, a missing path, an empty directory and a file without a certificate', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await writeFile(join(dir, 'key-only.pem'), await readFile(join(dir, 'key.pem')));
    for (const [path, message] of [
      ['etc/ca.pem', /must be an absolute path/],
      [join(dir, 'missing.pem'), /cannot be read \(ENOENT\)/],
      [empty, /holds no PEM certificate/],
      [join(dir, 'key-only.pem'), /holds no PEM certificate/],
    ] as const) {
      await expect(readTrustAnchors(path)).rejects.toMatchObject({
        code: 'SHIFTER_CONFIG_INVALID',
        message: expect.stringMatching(message),
        details: { key: 'gatewayCaPath' },
      });
    }
  });
});
