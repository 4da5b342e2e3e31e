import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.js';
import { parseReference } from '../reference/index.js';
import { allowedRegistrySet, checkRegistryAllowed } from './registry-policy.js';

const config = (extra: Record<string, unknown>) => parseConfig({ systems: {}, ...extra });

describe('allowedRegistries', () => {
  it('defaults to the configured locations plus Docker Hub (no defaultRegistry), refusing any other host', () => {
    const site = config({ registries: { site: { url: 'https://registry.site.org' } } });
    expect(site.allowedRegistries).toBe('configured');
    expect([...allowedRegistrySet(site)!].sort()).toEqual(['docker.io', 'registry.site.org', 'site']);
    expect(() => checkRegistryAllowed(parseReference('ubuntu:22.04'), site)).not.toThrow();
    expect(() => checkRegistryAllowed(parseReference('registry.site.org/team/app:1'), site)).not.toThrow();
    expect(() => checkRegistryAllowed(parseReference('attacker.example:5000/x:1'), site)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_REGISTRY_NOT_ALLOWED' }),
    );
    // A loopback registry is anyone's on a shared gateway host: refused unless configured.
    expect(() => checkRegistryAllowed(parseReference('127.0.0.1:7601/x:1'), site)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_REGISTRY_NOT_ALLOWED' }),
    );
  });

  it('leaves Docker Hub out when the site names its own default location', () => {
    const site = config({ registries: { site: { url: 'https://registry.site.org' } }, defaultRegistry: 'site' });
    expect(allowedRegistrySet(site)!.has('docker.io')).toBe(false);
    expect(() => checkRegistryAllowed(parseReference('docker.io/library/ubuntu:22.04'), site)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_REGISTRY_NOT_ALLOWED' }),
    );
  });

  it('takes an explicit host list, or "any"', () => {
    const listed = config({ allowedRegistries: ['Quay.io', '127.0.0.1:5000'] });
    expect(() => checkRegistryAllowed(parseReference('quay.io/a/b:1'), listed)).not.toThrow();
    expect(() => checkRegistryAllowed(parseReference('127.0.0.1:5000/a/b:1'), listed)).not.toThrow();
    expect(() => checkRegistryAllowed(parseReference('ubuntu'), listed)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_REGISTRY_NOT_ALLOWED' }),
    );
    expect(allowedRegistrySet(config({ allowedRegistries: 'any' }))).toBeNull();
  });
});
