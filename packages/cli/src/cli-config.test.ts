import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_UDIROOT_CONF, loadCliConfig, resolveConfigPath } from './cli-config.js';

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
      await expect(loadCliConfig(file)).rejects.toMatchObject({
        code: 'SHIFTER_CONFIG_INVALID',
        details: { key: 'imageGateway' },
      });
      await writeFile(file, 'imageGateway=http://a\n');
      await expect(loadCliConfig(file)).rejects.toMatchObject({
        code: 'SHIFTER_CONFIG_INVALID',
        details: { key: 'system' },
      });
      await expect(loadCliConfig(join(dir, 'missing.conf'))).rejects.toMatchObject({
        code: 'SHIFTER_CONFIG_NOT_FOUND',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads gatewayCaPath only when a gateway is https://, as the runtime does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cli-conf-'));
    try {
      const file = join(dir, 'udiRoot.conf');
      const ca = join(dir, 'ca.pem');
      const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
      await writeFile(ca, pem);
      await writeFile(file, `imageGateway=http://a:8000 https://b:8443\nsystem=cluster\ngatewayCaPath=${ca}\n`);
      expect((await loadCliConfig(file)).gatewayCa).toEqual([pem]);
      // Only plain http gateways: the path is not read at all (a missing file is no error).
      await writeFile(file, `imageGateway=http://a:8000\nsystem=cluster\ngatewayCaPath=${join(dir, 'missing.pem')}\n`);
      expect((await loadCliConfig(file)).gatewayCa).toBeUndefined();
      await writeFile(file, `imageGateway=https://b:8443\nsystem=cluster\ngatewayCaPath=${join(dir, 'missing.pem')}\n`);
      await expect(loadCliConfig(file)).rejects.toMatchObject({
        code: 'SHIFTER_CONFIG_INVALID',
        details: { key: 'gatewayCaPath' },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
