import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate } from './www-authenticate.js';
import { registryNetworkError, registryResponseError } from './registry-errors.js';
import { backoffDelay, isRetryableNetworkError, parseRetryAfter } from './retry-policy.js';
import { isLoopbackHost, proxyFor, resolveRegistryEndpoint } from './registry-endpoint.js';

describe('parseWwwAuthenticate', () => {
  it.each([
    [
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.docker.io/token',
            service: 'registry.docker.io',
            scope: 'repository:library/ubuntu:pull',
          },
        },
      ],
    ],
    [
      'Bearer realm="http://127.0.0.1:5003/token",service="test",scope="repository:a:pull,push",error="insufficient_scope"',
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'http://127.0.0.1:5003/token',
            service: 'test',
            scope: 'repository:a:pull,push',
            error: 'insufficient_scope',
          },
        },
      ],
    ],
    ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['basic REALM=unquoted , charset="UTF-8"', [{ scheme: 'basic', params: { realm: 'unquoted', charset: 'UTF-8' } }]],
    [
      'Basic realm="a, b", Bearer realm="https://t/x",scope="s"',
      [
        { scheme: 'basic', params: { realm: 'a, b' } },
        { scheme: 'bearer', params: { realm: 'https://t/x', scope: 's' } },
      ],
    ],
    ['Bearer realm="quote \\" inside"', [{ scheme: 'bearer', params: { realm: 'quote " inside' } }]],
    ['Negotiate dXNlcjpwYXNz==', [{ scheme: 'negotiate', params: { token68: 'dXNlcjpwYXNz==' } }]],
    ['', []],
    ['===,,,', []],
  ])('parses %s', (header, expected) => {
    expect(parseWwwAuthenticate(header)).toEqual(expected);
  });
  it('merges repeated headers and tolerates absence', () => {
    expect(parseWwwAuthenticate(['Basic realm=x', 'Bearer realm=y']).map((c) => c.scheme)).toEqual(['basic', 'bearer']);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });
  it('stays bounded on hostile input', () => {
    expect(() => parseWwwAuthenticate(`Bearer realm="${'x'.repeat(100_000)}`)).not.toThrow();
  });
});

describe('registryResponseError', () => {
  const body = (code: string) =>
    Buffer.from(
      JSON.stringify({ errors: [{ code, message: `${code.toLowerCase()} happened`, detail: { secret: 'no' } }] }),
    );
  it.each([
    [404, body('MANIFEST_UNKNOWN'), 'manifest', 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN'],
    [404, body('NAME_UNKNOWN'), 'manifest', 'SHIFTER_REGISTRY_NAME_UNKNOWN'],
    [404, body('BLOB_UNKNOWN'), 'blob', 'SHIFTER_REGISTRY_BLOB_UNKNOWN'],
    [401, body('UNAUTHORIZED'), 'manifest', 'SHIFTER_REGISTRY_AUTH_FAILED'],
    [403, body('DENIED'), 'manifest', 'SHIFTER_REGISTRY_DENIED'],
    [429, body('TOOMANYREQUESTS'), 'manifest', 'SHIFTER_REGISTRY_RATE_LIMITED'],
    [400, body('NAME_INVALID'), 'manifest', 'SHIFTER_REGISTRY_PROTOCOL'],
    [401, undefined, 'manifest', 'SHIFTER_REGISTRY_AUTH_FAILED'],
    [403, undefined, 'token', 'SHIFTER_REGISTRY_DENIED'],
    [404, undefined, 'manifest', 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN'],
    [404, undefined, 'blob', 'SHIFTER_REGISTRY_BLOB_UNKNOWN'],
    [404, undefined, 'token', 'SHIFTER_REGISTRY_PROTOCOL'],
    [429, Buffer.from('slow down'), 'blob', 'SHIFTER_REGISTRY_RATE_LIMITED'],
    [500, undefined, 'manifest', 'SHIFTER_REGISTRY_UNAVAILABLE'],
    [503, Buffer.from('<html>'), 'blob', 'SHIFTER_REGISTRY_UNAVAILABLE'],
    [418, undefined, 'manifest', 'SHIFTER_REGISTRY_PROTOCOL'],
  ] as const)('maps %i %s (%s) to %s', (status, responseBody, kind, code) => {
    const error = registryResponseError({
      status,
      headers: {},
      ...(responseBody ? { body: responseBody } : {}),
      kind,
      what: 'manifest x:y on reg',
    });
    expect(error.code).toBe(code);
    expect(error.registryStatus).toBe(status);
    expect(error.details.registryStatus).toBe(status);
    expect(error.message).toMatch(new RegExp(`^manifest x:y on reg: registry answered ${status}`));
    expect(JSON.stringify(error.details)).not.toContain('secret');
  });
  it('lets the body code win over the status', () => {
    expect(
      registryResponseError({ status: 401, headers: {}, body: body('DENIED'), kind: 'manifest', what: 'm' }).code,
    ).toBe('SHIFTER_REGISTRY_DENIED');
  });
  it('keeps only text from a hostile error body (no "[object Object]")', () => {
    const hostile = Buffer.from(
      JSON.stringify({
        errors: [
          { code: { toString: 'x' }, message: ['a'] },
          { code: 'DENIED', message: 42 },
        ],
      }),
    );
    const error = registryResponseError({ status: 403, headers: {}, body: hostile, kind: 'manifest', what: 'm' });
    expect(error.details.registryErrors).toEqual([
      { code: '', message: '' },
      { code: 'DENIED', message: '42' },
    ]);
  });
});

describe('registryNetworkError', () => {
  it('marks resets retryable and TLS failures not', () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(registryNetworkError(reset, 'x')).toMatchObject({ code: 'SHIFTER_REGISTRY_UNAVAILABLE', retryable: true });
    const tls = Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(registryNetworkError(tls, 'x')).toMatchObject({
      code: 'SHIFTER_REGISTRY_UNAVAILABLE',
      retryable: false,
      message: expect.stringMatching(/TLS verification failed/),
    });
  });
  it('recognises retryable errors through causes', () => {
    expect(
      isRetryableNetworkError(
        new Error('fetch failed', { cause: Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }) }),
      ),
    ).toBe(true);
    expect(isRetryableNetworkError(Object.assign(new Error('x'), { code: 'ENOTFOUND' }))).toBe(false);
  });
});

describe('retry policy', () => {
  it('parses Retry-After seconds and dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter(new Date(0).toUTCString(), 4_000)).toBe(0);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
  it('backs off exponentially with bounded jitter', () => {
    const policy = { baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelay(policy, 1, () => 0)).toBe(50);
    expect(backoffDelay(policy, 1, () => 0.999)).toBeLessThanOrEqual(100);
    expect(backoffDelay(policy, 3, () => 0)).toBe(200);
    expect(backoffDelay(policy, 10, () => 0.999)).toBeLessThanOrEqual(1000);
  });
});

describe('resolveRegistryEndpoint', () => {
  it('uses Docker Hub, loopback http and https defaults', () => {
    expect(resolveRegistryEndpoint({ registry: 'docker.io' }).baseUrl).toBe('https://registry-1.docker.io');
    expect(resolveRegistryEndpoint({ registry: '127.0.0.1:5000' }).baseUrl).toBe('http://127.0.0.1:5000');
    expect(resolveRegistryEndpoint({ registry: 'localhost:5000' }).baseUrl).toBe('http://localhost:5000');
    expect(resolveRegistryEndpoint({ registry: 'reg.example.org:8443' }).baseUrl).toBe('https://reg.example.org:8443');
  });
  it('finds configuration by location name or by host', () => {
    const registries = { site: { url: 'https://127.0.0.1:5001', caFile: '/ca.pem', authMethod: 'basic' as const } };
    expect(resolveRegistryEndpoint({ registry: '127.0.0.1:5001' }, registries)).toMatchObject({
      baseUrl: 'https://127.0.0.1:5001',
      caFile: '/ca.pem',
      location: 'site',
      authMethod: 'basic',
    });
    expect(resolveRegistryEndpoint({ registry: '127.0.0.1:5001', location: 'site' }, registries).location).toBe('site');
  });
  it('refuses plain http to a non-loopback registry unless insecure', () => {
    const registries = { lab: { url: 'http://lab.example.org:5000' } };
    expect(() => resolveRegistryEndpoint({ registry: 'lab.example.org:5000' }, registries)).toThrow(
      expect.objectContaining({ code: 'SHIFTER_REGISTRY_INSECURE_REFUSED' }),
    );
    expect(
      resolveRegistryEndpoint(
        { registry: 'lab.example.org:5000' },
        { lab: { url: 'http://lab.example.org:5000', insecure: true } },
      ).baseUrl,
    ).toBe('http://lab.example.org:5000');
  });
  it('refuses unusable urls as configuration errors', () => {
    expect(() => resolveRegistryEndpoint({ registry: 'x', location: 'bad' }, { bad: { url: 'ftp://x' } })).toThrow(
      expect.objectContaining({ code: 'SHIFTER_CONFIG_INVALID' }),
    );
  });
  it('knows loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.1.2.3:80', 'localhost', 'localhost:5000', '[::1]:5000', '::1'])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['10.0.0.1', 'example.org', '[::2]:1', '128.0.0.1'])
      expect(isLoopbackHost(host), host).toBe(false);
  });
});

describe('proxyFor', () => {
  const proxy = {
    httpProxy: 'http://proxy:3128',
    httpsProxy: 'http://sproxy:3128',
    noProxy: 'internal.org, .corp.example,10.1.2.3,svc:8443',
  };
  it.each([
    ['https://registry-1.docker.io/v2/', 'http://sproxy:3128'],
    ['http://plain.example.org/v2/', 'http://proxy:3128'],
    ['https://internal.org/v2/', undefined],
    ['https://reg.internal.org/v2/', undefined],
    ['https://a.corp.example/v2/', undefined],
    ['https://corp.example/v2/', undefined],
    ['https://10.1.2.3/v2/', undefined],
    ['https://svc:8443/v2/', undefined],
    ['https://svc:9443/v2/', 'http://sproxy:3128'],
    ['http://127.0.0.1:5000/v2/', undefined],
    ['http://localhost:5000/v2/', undefined],
  ])('%s → %s', (url, expected) => {
    expect(proxyFor(new URL(url), proxy)).toBe(expected);
  });
  it('bypasses everything with *', () => {
    expect(proxyFor(new URL('https://x.org'), { httpsProxy: 'http://p', noProxy: '*' })).toBeUndefined();
    expect(proxyFor(new URL('https://x.org'), undefined)).toBeUndefined();
  });
});
