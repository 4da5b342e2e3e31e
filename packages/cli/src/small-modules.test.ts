import { mkdtemp, rm, writeFile, mkdir, chmod, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_UDIROOT_CONF, loadCliConfig, resolveConfigPath } from './cli-config.js';
import { CredentialStore } from './credential-store.js';
import { readCliEnvironment } from './env.js';
import { parseImageArgument } from './image-argument.js';
import { resolveIds } from './resolve-ids.js';

describe('parseImageArgument', () => {
  it.each([
    ['docker:ubuntu:22.04', { type: 'docker', tag: 'ubuntu:22.04' }],
    ['ubuntu:22.04', { type: 'docker', tag: 'ubuntu:22.04' }],
    ['ubuntu', { type: 'docker', tag: 'ubuntu' }],
    ['127.0.0.1:5000/test/busybox:latest', { type: 'docker', tag: '127.0.0.1:5000/test/busybox:latest' }],
    ['custom:mine:1', { type: 'custom', tag: 'mine:1' }],
    ['id:abc', { type: 'id', tag: 'abc' }],
  ])('reads %s', (text, expected) => {
    expect(parseImageArgument(text, 'docker')).toEqual(expected);
  });

  it.each(['', 'docker:', 'a b', 'x\ty'])('refuses %j', (text) => {
    expect(() => parseImageArgument(text, 'docker')).toThrow(expect.objectContaining({ code: 'SHIFTER_REF_INVALID' }));
  });
});

describe('resolveIds', () => {
  const resolver = async (database: string, name: string) => (database === 'passwd' && name === 'alice' ? 1001 : database === 'group' && name === 'team' ? 500 : undefined);

  it('accepts names and numbers, comma lists and repeats, without duplicates', async () => {
    expect(await resolveIds(['alice,1002', '1001', ' 7 '], 'passwd', resolver)).toEqual([1001, 1002, 7]);
    expect(await resolveIds(['team'], 'group', resolver)).toEqual([500]);
    expect(await resolveIds(undefined, 'group', resolver)).toEqual([]);
  });

  it('refuses unknown names and ids out of range', async () => {
    await expect(resolveIds(['bob'], 'passwd', resolver)).rejects.toMatchObject({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT' });
    await expect(resolveIds(['4294967295'], 'passwd', resolver)).rejects.toMatchObject({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT' });
  });
});

describe('readCliEnvironment', () => {
  it('reads only the documented variables', () => {
    const environment = readCliEnvironment({
      SHIFTER_CONFIG: '/x.conf',
      SHIFTER_MUNGE_SOCKET: '',
      HOME: '/home/u',
      SHIFTER_IMAGE: 'docker:evil',
      SHIFTER_IMAGEGATEWAY: 'http://evil',
    });
    expect(environment).toEqual({ config: '/x.conf', mungeSocket: undefined, home: '/home/u' });
  });
});

describe('client configuration', () => {
  it('prefers --config, then SHIFTER_CONFIG, then the installed default', () => {
    const environment = { config: '/env.conf', mungeSocket: undefined, home: undefined };
    expect(resolveConfigPath('/flag.conf', environment)).toBe('/flag.conf');
    expect(resolveConfigPath(undefined, environment)).toBe('/env.conf');
    expect(resolveConfigPath(undefined, { ...environment, config: undefined })).toBe(DEFAULT_UDIROOT_CONF);
  });

  it('reads gateways, system, default type and timeout from udiRoot.conf', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cli-conf-'));
    try {
      const file = join(dir, 'udiRoot.conf');
      await writeFile(file, 'imageGateway=http://a:8000 \\\n http://b:8000\nsystem=cluster\ngatewayTimeout=5\n');
      expect(await loadCliConfig(file)).toEqual({
        file,
        imageGateway: ['http://a:8000', 'http://b:8000'],
        system: 'cluster',
        defaultImageType: 'docker',
        timeoutMs: 5000,
      });
      await writeFile(file, 'system=cluster\n');
      await expect(loadCliConfig(file)).rejects.toMatchObject({ code: 'SHIFTER_CONFIG_INVALID', details: { key: 'imageGateway' } });
      await writeFile(file, 'imageGateway=http://a\n');
      await expect(loadCliConfig(file)).rejects.toMatchObject({ code: 'SHIFTER_CONFIG_INVALID', details: { key: 'system' } });
      await expect(loadCliConfig(join(dir, 'missing.conf'))).rejects.toMatchObject({ code: 'SHIFTER_CONFIG_NOT_FOUND' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('CredentialStore', () => {
  it('tightens a loose existing directory and replaces logins per system and location', async () => {
    const home = await mkdtemp(join(tmpdir(), 'cred-'));
    try {
      await mkdir(join(home, '.udiRoot'), { mode: 0o755 });
      await chmod(join(home, '.udiRoot'), 0o755);
      const store = new CredentialStore(home);
      await store.save('a', 'default', 'u1', 'p1');
      await store.save('a', 'default', 'u2', 'p2');
      await store.save('a', 'reg:5000', 'u3', 'p3');
      expect((await stat(store.directory)).mode & 0o777).toBe(0o700);
      expect(await store.read('a')).toEqual({ default: 'u2:p2', 'reg:5000': 'u3:p3' });
      expect(await store.read('b')).toEqual({});
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('refuses bad user names and locations and rejects a corrupt store', async () => {
    const home = await mkdtemp(join(tmpdir(), 'cred-'));
    try {
      const store = new CredentialStore(home);
      await expect(store.save('a', 'default', 'a:b', 'p')).rejects.toMatchObject({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT' });
      await expect(store.save('a', '../x', 'u', 'p')).rejects.toMatchObject({ code: 'SHIFTER_USAGE_INVALID_ARGUMENT' });
      await mkdir(store.directory, { recursive: true, mode: 0o700 });
      await writeFile(store.path, '{"nope": true}', { mode: 0o600 });
      await expect(store.read('a')).rejects.toMatchObject({ code: 'SHIFTER_CONFIG_INVALID' });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
