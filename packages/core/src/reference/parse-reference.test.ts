import { describe, expect, it } from 'vitest';
import { ShifterError } from '../errors/index.js';
import { parseReference, referenceTarget } from './parse-reference.js';

const SHA = `sha256:${'a'.repeat(64)}`;
const SHA512 = `sha512:${'b'.repeat(128)}`;

describe('parseReference', () => {
  const valid: Array<
    [
      string,
      { registry: string; repository: string; tag?: string; digest?: string; canonical: string; familiar: string },
    ]
  > = [
    [
      'ubuntu',
      {
        registry: 'docker.io',
        repository: 'library/ubuntu',
        tag: 'latest',
        canonical: 'docker.io/library/ubuntu:latest',
        familiar: 'ubuntu:latest',
      },
    ],
    [
      'ubuntu:22.04',
      {
        registry: 'docker.io',
        repository: 'library/ubuntu',
        tag: '22.04',
        canonical: 'docker.io/library/ubuntu:22.04',
        familiar: 'ubuntu:22.04',
      },
    ],
    [
      'library/ubuntu',
      {
        registry: 'docker.io',
        repository: 'library/ubuntu',
        tag: 'latest',
        canonical: 'docker.io/library/ubuntu:latest',
        familiar: 'ubuntu:latest',
      },
    ],
    [
      'docker.io/ubuntu',
      {
        registry: 'docker.io',
        repository: 'library/ubuntu',
        tag: 'latest',
        canonical: 'docker.io/library/ubuntu:latest',
        familiar: 'ubuntu:latest',
      },
    ],
    [
      'index.docker.io/nersc/shifter:1',
      {
        registry: 'docker.io',
        repository: 'nersc/shifter',
        tag: '1',
        canonical: 'docker.io/nersc/shifter:1',
        familiar: 'nersc/shifter:1',
      },
    ],
    [
      'nersc/shifter',
      {
        registry: 'docker.io',
        repository: 'nersc/shifter',
        tag: 'latest',
        canonical: 'docker.io/nersc/shifter:latest',
        familiar: 'nersc/shifter:latest',
      },
    ],
    [
      '127.0.0.1:5000/test/busybox:latest',
      {
        registry: '127.0.0.1:5000',
        repository: 'test/busybox',
        tag: 'latest',
        canonical: '127.0.0.1:5000/test/busybox:latest',
        familiar: '127.0.0.1:5000/test/busybox:latest',
      },
    ],
    [
      'private:5000/repo',
      {
        registry: 'private:5000',
        repository: 'repo',
        tag: 'latest',
        canonical: 'private:5000/repo:latest',
        familiar: 'private:5000/repo:latest',
      },
    ],
    [
      'localhost/repo:tag',
      {
        registry: 'localhost',
        repository: 'repo',
        tag: 'tag',
        canonical: 'localhost/repo:tag',
        familiar: 'localhost/repo:tag',
      },
    ],
    [
      'localhost:5000/a/b/c',
      {
        registry: 'localhost:5000',
        repository: 'a/b/c',
        tag: 'latest',
        canonical: 'localhost:5000/a/b/c:latest',
        familiar: 'localhost:5000/a/b/c:latest',
      },
    ],
    [
      '[::1]:5000/x',
      {
        registry: '[::1]:5000',
        repository: 'x',
        tag: 'latest',
        canonical: '[::1]:5000/x:latest',
        familiar: '[::1]:5000/x:latest',
      },
    ],
    [
      'Registry.Example.org/x',
      {
        registry: 'Registry.Example.org',
        repository: 'x',
        tag: 'latest',
        canonical: 'Registry.Example.org/x:latest',
        familiar: 'Registry.Example.org/x:latest',
      },
    ],
    [
      `ubuntu@${SHA}`,
      {
        registry: 'docker.io',
        repository: 'library/ubuntu',
        digest: SHA,
        canonical: `docker.io/library/ubuntu@${SHA}`,
        familiar: `ubuntu@${SHA}`,
      },
    ],
    [
      `ubuntu:22.04@${SHA}`,
      {
        registry: 'docker.io',
        repository: 'library/ubuntu',
        tag: '22.04',
        digest: SHA,
        canonical: `docker.io/library/ubuntu:22.04@${SHA}`,
        familiar: `ubuntu:22.04@${SHA}`,
      },
    ],
    [
      `reg.io:443/a@${SHA512}`,
      {
        registry: 'reg.io:443',
        repository: 'a',
        digest: SHA512,
        canonical: `reg.io:443/a@${SHA512}`,
        familiar: `reg.io:443/a@${SHA512}`,
      },
    ],
    [
      'a_b/c__d/e-f/g--h/i.j:T_a.g-1',
      {
        registry: 'docker.io',
        repository: 'a_b/c__d/e-f/g--h/i.j',
        tag: 'T_a.g-1',
        canonical: 'docker.io/a_b/c__d/e-f/g--h/i.j:T_a.g-1',
        familiar: 'a_b/c__d/e-f/g--h/i.j:T_a.g-1',
      },
    ],
    [
      `x:${'t'.repeat(128)}`,
      {
        registry: 'docker.io',
        repository: 'library/x',
        tag: 't'.repeat(128),
        canonical: `docker.io/library/x:${'t'.repeat(128)}`,
        familiar: `x:${'t'.repeat(128)}`,
      },
    ],
    [
      'localhost:5000',
      {
        registry: 'docker.io',
        repository: 'library/localhost',
        tag: '5000',
        canonical: 'docker.io/library/localhost:5000',
        familiar: 'localhost:5000',
      },
    ],
  ];
  it.each(valid)('parses %s', (input, expected) => {
    const parsed = parseReference(input);
    expect({ ...parsed }).toEqual(expected);
    expect(Object.isFrozen(parsed)).toBe(true);
  });

  const hostile: Array<[string, string, RegExp]> = [
    ['empty', '', /empty/],
    ['parent directory', '../x', /registry host "\.\."/],
    ['nested parent directory', 'a/../b', /path component/],
    ['encoded dots', '%2e%2e/x', /path component/],
    ['uppercase repository', 'Ubuntu', /lowercase/],
    ['uppercase after host', 'reg.io/Ubuntu', /lowercase/],
    ['leading space', ' ubuntu', /whitespace/],
    ['inner space', 'ubu ntu', /whitespace/],
    ['newline', 'ubuntu\n:latest', /whitespace/],
    ['NUL byte', 'ubuntu\u0000', /control/],
    ['300-char tag', `x:${'t'.repeat(300)}`, /tag longer than 128/],
    ['129-char tag', `x:${'t'.repeat(129)}`, /tag longer than 128/],
    ['tag starting with a dot', 'x:.bad', /malformed tag/],
    ['tag with slash', 'x:a/b', /registry host/],
    ['empty tag', 'x:', /malformed tag/],
    ['empty digest', 'x@', /malformed digest/],
    ['short digest', 'x@sha256:abc', /malformed digest/],
    ['uppercase digest hex', `x@sha256:${'A'.repeat(64)}`, /malformed digest/],
    ['md5 digest', `x@md5:${'a'.repeat(32)}`, /unsupported digest algorithm/],
    ['double slash', 'a//b', /empty path component/],
    ['trailing slash', 'a/b/', /empty path component/],
    ['leading slash', '/a', /empty path component/],
    ['only a tag', ':latest', /no repository/],
    ['bad port', 'reg.io:99999/x', /registry host/],
    ['bad host label', 'reg-.io/x', /registry host/],
    ['leading separator', '_x', /path component/],
    ['trailing separator', 'x-', /path component/],
    ['triple underscore', 'a___b', /path component/],
    ['overlong repository', `a/${'b'.repeat(300)}`, /longer than 255/],
    ['overlong input', 'a'.repeat(5000), /longer than 1024/],
    ['unicode', 'ubüntu', /path component/],
    ['backslash', 'a\\b', /path component/],
  ];
  it.each(hostile)('refuses %s with SHIFTER_REF_INVALID', (_name, input, message) => {
    let caught: unknown;
    try {
      parseReference(input);
    } catch (error) {
      caught = error;
    }
    expect(ShifterError.isInstance(caught)).toBe(true);
    const error = caught as ShifterError;
    expect(error.code).toBe('SHIFTER_REF_INVALID');
    expect(error.name).toBe('InvalidReferenceError');
    expect(error.message).toMatch(message);
    expect(error.details.problem).toBeTypeOf('string');
  });

  it('refuses non-string input with a typed error', () => {
    expect(() => parseReference(undefined as unknown as string)).toThrow(/not a string/);
  });

  describe('location prefixes', () => {
    const locations = {
      urltest: { url: 'https://registry.example.org:8443' },
      'index.docker.io': { url: 'https://registry-1.docker.io' },
      site: {},
    };
    it('selects the registry of a configured location', () => {
      const parsed = parseReference('urltest/ubuntu:latest', { locations });
      expect(parsed).toMatchObject({
        registry: 'registry.example.org:8443',
        repository: 'ubuntu',
        tag: 'latest',
        location: 'urltest',
      });
      expect(parsed.canonical).toBe('registry.example.org:8443/ubuntu:latest');
      expect(parsed.familiar).toBe('urltest/ubuntu:latest');
    });
    it('normalises a location that points at Docker Hub', () => {
      const parsed = parseReference('index.docker.io/busybox', { locations });
      expect(parsed).toMatchObject({
        registry: 'docker.io',
        repository: 'library/busybox',
        location: 'index.docker.io',
      });
    });
    it('uses the location name as host when it has no url', () => {
      expect(parseReference('site/x', { locations }).registry).toBe('site');
    });
    it('uses the default location for names without a registry', () => {
      const parsed = parseReference('ubuntu:1', { locations, defaultLocation: 'urltest' });
      expect(parsed).toMatchObject({
        registry: 'registry.example.org:8443',
        repository: 'ubuntu',
        tag: '1',
        location: 'urltest',
        familiar: 'ubuntu:1',
      });
    });
    it('lets an explicit host win over the default location', () => {
      const parsed = parseReference('127.0.0.1:5000/x', { locations, defaultLocation: 'urltest' });
      expect(parsed.registry).toBe('127.0.0.1:5000');
      expect(parsed.location).toBeUndefined();
    });
    it('treats a one-component name equal to a location as a repository', () => {
      expect(parseReference('urltest', { locations }).repository).toBe('library/urltest');
    });
    it('ignores inherited property names', () => {
      expect(parseReference('constructor/x', { locations }).registry).toBe('docker.io');
    });
    it('refuses a location with an unusable url', () => {
      expect(() => parseReference('bad/x', { locations: { bad: { url: 'not a url' } } })).toThrow(/unusable url/);
    });
  });
});

describe('referenceTarget', () => {
  it('prefers the digest over the tag', () => {
    expect(referenceTarget(parseReference(`x:1@${SHA}`))).toBe(SHA);
    expect(referenceTarget(parseReference('x:1'))).toBe('1');
  });
});
