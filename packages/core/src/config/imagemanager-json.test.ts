import { describe, expect, it } from 'vitest';
import type { ShifterError } from '../errors/index.js';
import { parseConfig } from './load-config.js';
import { IMAGEMANAGER_KEY_MAP, isImageManagerConfig, translateImageManagerConfig } from './imagemanager-json.js';

// Shaped like upstream's imagemanager.json.example / test.json.example.
const upstream = {
  DefaultImageLocation: 'index.docker.io',
  DefaultImageFormat: 'squashfs',
  PullUpdateTimeout: 300,
  ImageExpirationTimeout: '90:00:00:00',
  MongoDBURI: 'mongodb://localhost/',
  MongoDB: 'Shifter',
  CacheDirectory: '/images/cache/',
  ExpandDirectory: '/images/expand/',
  Metrics: true,
  WorkerThreads: 4,
  ImportUsers: ['alice'],
  examiner: '/usr/libexec/scan',
  ConverterOptions: { squashfs: '-comp xz -Xbcj x86' },
  Locations: {
    'index.docker.io': { remotetype: 'dockerv2', authentication: 'http' },
    urltest: {
      remotetype: 'dockerv2',
      url: 'https://registry.example.org',
      sslcacert: '/etc/ca.pem',
      authMethod: 'basic',
    },
  },
  Platforms: {
    systema: {
      mungeSocketPath: '/var/run/munge/munge.socket.2',
      accesstype: 'remote',
      admins: 'root',
      host: ['login1', 'login2'],
      ssh: { username: 'shifter', key: '/etc/ssh_key', imageDir: '/images', sshCmdOptions: ['-x'], scpCmdOptions: [] },
      use_external: true,
    },
    systemb: {
      mungeSocketPath: '/var/run/munge/munge.socket.2',
      accesstype: 'local',
      admins: ['root', 'adm'],
      local: { imageDir: '/images/b' },
      platform: 'linux/arm64',
    },
  },
};

describe('translateImageManagerConfig', () => {
  it('maps every documented key onto a valid Shifter config', () => {
    const { config, warnings } = translateImageManagerConfig(upstream);
    const parsed = parseConfig(config);
    expect(parsed.systems.systema?.transfer).toEqual({
      kind: 'ssh',
      host: ['login1', 'login2'],
      username: 'shifter',
      key: '/etc/ssh_key',
      imageDir: '/images',
      sshOptions: ['-x'],
      scpOptions: [],
    });
    expect(parsed.systems.systema?.admins).toEqual(['root']);
    expect(parsed.systems.systemb).toMatchObject({
      transfer: { kind: 'local', imageDir: '/images/b' },
      platform: 'linux/arm64',
      admins: ['root', 'adm'],
      mungeSocketPath: '/var/run/munge/munge.socket.2',
    });
    expect(parsed.registries['index.docker.io']?.url).toBe('https://index.docker.io');
    expect(parsed.registries.urltest).toMatchObject({
      url: 'https://registry.example.org',
      caFile: '/etc/ca.pem',
      authMethod: 'basic',
    });
    expect(parsed.defaultRegistry).toBe('index.docker.io');
    expect(parsed.metadata).toEqual({
      kind: 'mongo',
      url: 'mongodb://localhost/',
      database: 'Shifter',
      lookupCacheMs: 5000,
    });
    expect(parsed.storage).toMatchObject({ cacheDir: '/images/cache/', expandDir: '/images/expand/' });
    expect(parsed.allowedRegistries).toBe('configured');
    expect(parsed.jobs.pullUpdateTimeout).toBe(300);
    expect(parsed.jobs.imageExpirationTimeout).toBe('90:00:00:00');
    expect(parsed.queue).toMatchObject({ kind: 'in-process', concurrency: 4 });
    expect(parsed.conversion.extraArgs).toEqual(['-comp', 'xz', '-Xbcj', 'x86']);
    expect(parsed.importUsers).toEqual(['alice']);
    expect(parsed.metrics).toBe(true);
    expect(parsed.examiner).toBe('/usr/libexec/scan');
    expect(warnings).toEqual([expect.stringContaining('use_external')]);
  });

  it('honours PullUpdateTimeout alone (upstream needed PullUpdateTime too) and reads PullUpdateTime as an alias', () => {
    const base = { Platforms: {} };
    expect(translateImageManagerConfig({ ...base, PullUpdateTimeout: 42 }).config.jobs).toEqual({
      pullUpdateTimeout: 42,
    });
    const alias = translateImageManagerConfig({ ...base, PullUpdateTime: 17 });
    expect(alias.config.jobs).toEqual({ pullUpdateTimeout: 17 });
    expect(alias.warnings.join()).toContain('PullUpdateTime');
    expect(translateImageManagerConfig({ ...base, PullUpdateTime: 1, PullUpdateTimeout: 2 }).config.jobs).toEqual({
      pullUpdateTimeout: 2,
    });
  });

  it('accepts the ConvertOptions misspelling and list-valued options', () => {
    const result = translateImageManagerConfig({ Platforms: {}, ConvertOptions: { squashfs: ['-comp', 'gzip'] } });
    expect(result.config.conversion).toEqual({ tool: 'mksquashfs', extraArgs: ['-comp', 'gzip'] });
    expect(result.warnings.join()).toContain('ConvertOptions');
  });

  it('reads Broker as a Redis queue', () => {
    expect(translateImageManagerConfig({ Platforms: {}, Broker: 'redis://r:6379' }).config.queue).toEqual({
      kind: 'redis',
      url: 'redis://r:6379',
    });
  });

  it('refuses mock authentication, other formats, unknown keys and access types, listing each', () => {
    let caught: ShifterError | undefined;
    try {
      translateImageManagerConfig({
        Authentication: 'mock',
        DefaultImageFormat: 'cramfs',
        Bogus: 1,
        Locations: { x: { remotetype: 'dockerhub' } },
        Platforms: { s: { accesstype: 'carrier-pigeon', frobnicate: true } },
      });
    } catch (error) {
      caught = error as ShifterError;
    }
    expect(caught?.code).toBe('SHIFTER_CONFIG_INVALID');
    const paths = (caught?.details.issues as { path: string }[]).map((issue) => issue.path).sort();
    expect(paths).toEqual([
      'Authentication',
      'Bogus',
      'DefaultImageFormat',
      'Locations.x.remotetype',
      'Platforms.s.accesstype',
      'Platforms.s.frobnicate',
    ]);
    expect(caught?.message).toContain('mock authentication is not supported');
  });

  it('lets the schema report badly typed values at their Shifter path', () => {
    const { config } = translateImageManagerConfig({
      Platforms: { s: { accesstype: 'local', local: {} } },
      Metrics: 'yes',
    });
    expect(() => parseConfig(config)).toThrow(/systems\.s\.transfer\.imageDir[\s\S]*metrics/);
  });

  it('detects upstream files by their Platforms key and documents every handled key', () => {
    expect(isImageManagerConfig({ Platforms: {} })).toBe(true);
    expect(isImageManagerConfig({ systems: {} })).toBe(false);
    const documented = IMAGEMANAGER_KEY_MAP.map((row) => row.upstream).join(' ');
    for (const key of [
      'Platforms',
      'Locations',
      'DefaultImageLocation',
      'DefaultImageFormat',
      'MongoDBURI',
      'MongoDB',
      'CacheDirectory',
      'ExpandDirectory',
      'PullUpdateTimeout',
      'PullUpdateTime',
      'ImageExpirationTimeout',
      'ConverterOptions',
      'ConvertOptions',
      'ImportUsers',
      'Metrics',
      'examiner',
      'WorkerThreads',
      'admins',
      'mungeSocketPath',
      'accesstype',
      'local',
      'ssh',
      'host',
      'use_external',
      'Authentication',
    ]) {
      expect(documented).toContain(key);
    }
  });
});
