import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ShifterError } from '../errors/index.js';
import { checkDeployment, loadConfig, mergeConfigLayers, parseConfig } from './load-config.js';

const dir = mkdtempSync(join(tmpdir(), 'shifter-config-'));
const write = (name: string, value: unknown): string => {
  const file = join(dir, name);
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
};

const system = { transfer: { kind: 'local', imageDir: '/images' } };

describe('loadConfig', () => {
  it('yields the schema defaults when given nothing', async () => {
    const config = await loadConfig();
    expect(config.gateway.port).toBe(8000);
    expect(config.metadata).toEqual({ kind: 'sqlite', path: '/var/lib/shifter/gateway.db' });
    expect(config.queue.kind).toBe('in-process');
  });

  it('applies defaults < file < environment < overrides', async () => {
    const file = write('order.json', { gateway: { port: 1000, host: '0.0.0.0' }, systems: { a: system } });
    const config = await loadConfig({
      file,
      env: { SHIFTER_GATEWAY_PORT: '2000', SHIFTER_LOG_LEVEL: 'debug' },
      overrides: { logLevel: 'warn' },
    });
    expect(config.gateway.port).toBe(2000);
    expect(config.gateway.host).toBe('0.0.0.0');
    expect(config.logLevel).toBe('warn');
    expect(config.systems.a?.transfer).toEqual({ kind: 'local', imageDir: '/images' });
  });

  it('reads only the documented variables, never a prefix scan', async () => {
    const config = await loadConfig({
      env: { SHIFTER_IMAGE: 'docker:evil', SHIFTER_GATEWAY_HOST_X: 'x', SHIFTER_PORT: '1' },
    });
    expect(config.gateway.host).toBe('127.0.0.1');
    expect(config.gateway.port).toBe(8000);
  });

  it('switches the store wholesale when the environment names another kind', async () => {
    const file = write('sqlite.json', { metadata: { kind: 'sqlite', path: '/tmp/x.db' } });
    const config = await loadConfig({ file, env: { SHIFTER_MONGO_URL: 'mongodb://127.0.0.1:27017/' } });
    expect(config.metadata).toEqual({
      kind: 'mongo',
      url: 'mongodb://127.0.0.1:27017/',
      database: 'Shifter',
      lookupCacheMs: 5000,
    });
  });

  it('returns a deeply frozen config', async () => {
    const config = await loadConfig({ overrides: { systems: { a: system } } });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.systems.a?.transfer)).toBe(true);
    expect(() => {
      (config.gateway as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('lists every issue path in one SHIFTER_CONFIG_INVALID', async () => {
    const file = write('bad.json', {
      gateway: { port: 'eighty' },
      systems: { a: { transfer: { kind: 'local' } }, b: { transfer: { kind: 'ftp' } } },
      unknownKey: 1,
    });
    const error = await loadConfig({ file }).catch((e: unknown) => e);
    expect(ShifterError.isInstance(error)).toBe(true);
    const shifterError = error as ShifterError;
    expect(shifterError.code).toBe('SHIFTER_CONFIG_INVALID');
    const paths = (shifterError.details.issues as { path: string }[]).map((issue) => issue.path);
    expect(paths).toEqual(
      expect.arrayContaining(['gateway.port', 'systems.a.transfer.imageDir', 'systems.b.transfer.kind']),
    );
    expect(paths.some((path) => path === '(root)' || path.includes('unknownKey'))).toBe(true);
    expect(shifterError.message).toContain('gateway.port');
    expect(shifterError.message).toContain('systems.a.transfer.imageDir');
  });

  it('reports a missing file as SHIFTER_CONFIG_NOT_FOUND and bad JSON as SHIFTER_CONFIG_INVALID', async () => {
    await expect(loadConfig({ file: join(dir, 'absent.json') })).rejects.toMatchObject({
      code: 'SHIFTER_CONFIG_NOT_FOUND',
    });
    await expect(loadConfig({ file: write('broken.json', '{ nope') })).rejects.toMatchObject({
      code: 'SHIFTER_CONFIG_INVALID',
    });
  });

  it('rejects a badly typed environment variable with its name', async () => {
    await expect(loadConfig({ env: { SHIFTER_GATEWAY_PORT: 'http' } })).rejects.toMatchObject({
      code: 'SHIFTER_CONFIG_INVALID',
      message: expect.stringContaining('SHIFTER_GATEWAY_PORT'),
    });
    await expect(loadConfig({ env: { ENABLE_LABELS: 'perhaps' } })).rejects.toMatchObject({
      code: 'SHIFTER_CONFIG_INVALID',
    });
  });

  it('translates an upstream imagemanager.json file and reports its warnings', async () => {
    const warnings: string[] = [];
    const file = write('imagemanager.json', {
      Platforms: {
        systemb: { accesstype: 'local', local: { imageDir: '/images' }, admins: ['root'], use_external: true },
      },
      MongoDBURI: 'mongodb://localhost/',
      DefaultImageFormat: 'squashfs',
    });
    const config = await loadConfig({ file, onWarning: (w) => warnings.push(w) });
    expect(config.systems.systemb?.admins).toEqual(['root']);
    expect(config.metadata.kind).toBe('mongo');
    expect(warnings.join('\n')).toContain('use_external');
  });
});

describe('mergeConfigLayers', () => {
  it('replaces arrays instead of concatenating them', () => {
    expect(mergeConfigLayers({ a: [1, 2] }, { a: [3] })).toEqual({ a: [3] });
  });
});

describe('checkDeployment', () => {
  const embedded = parseConfig({ systems: { a: system } });
  const distributed = parseConfig({
    systems: { a: system },
    metadata: { kind: 'mongo', url: 'mongodb://x/' },
    queue: { kind: 'redis', url: 'redis://x' },
    gateway: { instances: 2 },
  });

  it('accepts one serve on the embedded store', () => {
    expect(() => checkDeployment(embedded, 'serve')).not.toThrow();
  });

  it('refuses a worker or several serve instances without mongo + redis', () => {
    expect(() => checkDeployment(embedded, 'worker', 'a')).toThrow(/metadata.kind[\s\S]*queue.kind/);
    const many = parseConfig({ systems: { a: system }, gateway: { instances: 3 } });
    expect(() => checkDeployment(many, 'serve')).toThrow(expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }));
  });

  it('accepts a worker for a configured system on mongo + redis and refuses an unknown system', () => {
    expect(() => checkDeployment(distributed, 'worker', 'a')).not.toThrow();
    expect(() => checkDeployment(distributed, 'serve')).not.toThrow();
    expect(() => checkDeployment(distributed, 'worker', 'nope')).toThrow(/not configured/);
  });

  it('refuses a per-address connection cap that is not below the global one', () => {
    const greedy = parseConfig({
      systems: { a: system },
      gateway: { maxConnections: 100, maxConnectionsPerAddress: 100 },
    });
    expect(() => checkDeployment(greedy, 'serve')).toThrow(/maxConnectionsPerAddress/);
  });
});
