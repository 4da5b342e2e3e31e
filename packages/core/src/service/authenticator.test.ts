import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.js';
import { AuthError } from '../errors/index.js';
import type { MungeVerifier } from '../auth/index.js';
import { createAuthenticator } from './authenticator.js';
import { createGroupResolver } from './group-resolver.js';

const passwd =
  'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n';
const group = 'root:x:0:\nalice:x:1000:\nbob:x:1001:\nproject:x:3000:alice,carol\nops:x:3001:bob,alice\n';

describe('createGroupResolver', () => {
  it('parses passwd and group once per lifetime and answers names and groups', async () => {
    let reads = 0;
    let now = 0;
    const resolver = createGroupResolver({
      ttlSeconds: 60,
      now: () => now,
      readTables: async () => (reads++, { passwd, group }),
    });
    expect(await resolver.user(1000)).toEqual({ name: 'alice', uid: 1000, gid: 1000 });
    expect(await resolver.groupsOf(1000)).toEqual([1000, 3000, 3001]);
    expect(await resolver.groupsOf(4242)).toEqual([]);
    expect(await Promise.all([resolver.user(0), resolver.user(1001)])).toHaveLength(2);
    expect(reads).toBe(1);
    now += 61_000;
    await resolver.user(0);
    expect(reads).toBe(2);
  });

  it('reads the real NSS of this host', async () => {
    const resolver = createGroupResolver();
    expect((await resolver.user(0))?.name).toBe('root');
  });
});

describe('createAuthenticator', () => {
  const config = parseConfig({
    systems: {
      a: { transfer: { kind: 'local', imageDir: '/a' }, mungeSocketPath: '/sock/a' },
      b: { transfer: { kind: 'local', imageDir: '/b' }, mungeSocketPath: '/sock/b' },
    },
  });
  const sockets: string[] = [];
  const verifierFor = (socketPath: string): MungeVerifier => {
    sockets.push(socketPath);
    return {
      socketPath,
      async verify(credential) {
        if (credential === 'bad') throw new AuthError('SHIFTER_AUTH_INVALID', 'bad');
        return {
          uid: 1000,
          gid: 1000,
          payload: '',
          encodeTime: 0,
          decodeTime: 0,
          authorizedLocations: { default: 'u:p' },
        };
      },
    };
  };
  const authenticator = createAuthenticator({
    config,
    verifierFor,
    groups: createGroupResolver({ readTables: async () => ({ passwd, group }) }),
  });

  it("verifies against the system's own socket and resolves name and groups", async () => {
    const caller = await authenticator.authenticate('b', 'cred');
    expect(caller).toEqual({
      uid: 1000,
      gid: 1000,
      user: 'alice',
      groups: [1000, 3000, 3001],
      authorizedLocations: { default: 'u:p' },
    });
    await authenticator.authenticate('b', 'cred2');
    expect(sockets).toEqual(['/sock/b']);
  });

  it('refuses unknown systems, missing, oversized and bad credentials with their codes', async () => {
    await expect(authenticator.authenticate('zzz', 'cred')).rejects.toMatchObject({ code: 'SHIFTER_SYSTEM_UNKNOWN' });
    await expect(authenticator.authenticate('__proto__', 'cred')).rejects.toMatchObject({
      code: 'SHIFTER_SYSTEM_UNKNOWN',
    });
    await expect(authenticator.authenticate('a', undefined)).rejects.toMatchObject({ code: 'SHIFTER_AUTH_REQUIRED' });
    await expect(authenticator.authenticate('a', '  ')).rejects.toMatchObject({ code: 'SHIFTER_AUTH_REQUIRED' });
    await expect(authenticator.authenticate('a', 'x'.repeat(70_000))).rejects.toMatchObject({
      code: 'SHIFTER_AUTH_INVALID',
    });
    await expect(authenticator.authenticate('a', 'bad')).rejects.toMatchObject({ code: 'SHIFTER_AUTH_INVALID' });
  });
});
