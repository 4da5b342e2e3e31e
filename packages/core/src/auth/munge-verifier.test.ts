import { describe, expect, it } from 'vitest';
import { parseAuthorizedLocations, registryLoginFor } from './munge-verifier.js';

describe('parseAuthorizedLocations', () => {
  it('reads the locations of a payload', () => {
    const payload = JSON.stringify({
      authorized_locations: { default: 'alice:s3cret', 'registry.example.org': 'bob:pa:ss', bad: 3 },
    });
    expect({ ...parseAuthorizedLocations(payload) }).toEqual({
      default: 'alice:s3cret',
      'registry.example.org': 'bob:pa:ss',
    });
  });

  it('answers null for payloads without them', () => {
    for (const payload of [
      '',
      'plain text',
      '{',
      '[]',
      'null',
      '{"authorized_locations": []}',
      '{"authorized_locations": "x"}',
      '{"other": 1}',
    ]) {
      expect(parseAuthorizedLocations(payload)).toBeNull();
    }
  });

  it('does not let a payload set prototype properties', () => {
    const locations = parseAuthorizedLocations('{"authorized_locations": {"__proto__": "x:y", "default": "a:b"}}');
    expect(Object.getPrototypeOf(locations)).toBeNull();
    expect(registryLoginFor(locations, 'toString')).toEqual({ username: 'a', password: 'b' });
  });
});

describe('registryLoginFor', () => {
  const locations = { default: 'alice:s3cret', private: 'bob:pa:ss:word', broken: 'nocolon' };
  it('prefers the location, falls back to default, splits at the first colon', () => {
    expect(registryLoginFor(locations, 'private')).toEqual({ username: 'bob', password: 'pa:ss:word' });
    expect(registryLoginFor(locations, 'elsewhere')).toEqual({ username: 'alice', password: 's3cret' });
    expect(registryLoginFor(locations, 'broken')).toBeNull();
    expect(registryLoginFor({ only: 'x:y' }, 'other')).toBeNull();
    expect(registryLoginFor(null, 'x')).toBeNull();
  });
});
