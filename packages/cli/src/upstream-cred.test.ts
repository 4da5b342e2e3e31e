import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CredentialStore } from './credential-store.js';
import { type CredDecoder, parseUpstreamCred } from './upstream-cred.js';

const me = process.getuid!();
// A fake munged: "MUNGE:<uid>:<payload>:" decodes to that uid and payload; "MUNGE:bad" is refused.
const fakeDecoder: CredDecoder = async (credential) => {
  const match = /^MUNGE:(\d+):(.*):$/.exec(credential);
  return match ? { uid: Number(match[1]), payload: match[2]! } : null;
};

describe("upstream's ~/.udiRoot/.cred", () => {
  it('parses system:location=credential lines, the credential keeping its own : and =', () => {
    expect(
      parseUpstreamCred('sys:default=MUNGE:AwQ=:x=:\nsys:reg.example:5000=MUNGE:y:\n\ngarbage\n:x=y\nsys:=z\nsys:l=\n'),
    ).toEqual([
      { system: 'sys', location: 'default', credential: 'MUNGE:AwQ=:x=:' },
      { system: 'sys', location: 'reg.example:5000', credential: 'MUNGE:y:' },
    ]);
  });

  it("is read when credentials.json is absent: this system's logins made by the caller only", async () => {
    const home = await mkdtemp(join(tmpdir(), 'cred-up-'));
    try {
      await mkdir(join(home, '.udiRoot'), { mode: 0o700 });
      const lines = [
        `sys:default=MUNGE:${me}:alice:s3:cret:`,
        `sys:planted=MUNGE:${me + 1}:mallory:x:`,
        `other:default=MUNGE:${me}:bob:y:`,
        'sys:broken=MUNGE:bad',
        `sys:nopass=MUNGE:${me}:justaname:`,
      ];
      await writeFile(join(home, '.udiRoot', '.cred'), `${lines.join('\n')}\n`, { mode: 0o600 });
      const store = new CredentialStore(home, { upstream: fakeDecoder });
      expect(await store.read('sys')).toEqual({ default: 'alice:s3:cret' });
      expect(await store.read('other')).toEqual({ default: 'bob:y' });
      expect(await new CredentialStore(home).read('sys')).toEqual({});
      // Once the user logs in with this client, its store wins and .cred is no longer read.
      await store.save('sys', 'default', 'carol', 'z');
      expect(await store.read('sys')).toEqual({ default: 'carol:z' });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('refuses a .cred others can read', async () => {
    const home = await mkdtemp(join(tmpdir(), 'cred-up-'));
    try {
      await mkdir(join(home, '.udiRoot'), { mode: 0o700 });
      await writeFile(join(home, '.udiRoot', '.cred'), `sys:default=MUNGE:${me}:a:b:\n`, { mode: 0o644 });
      await expect(new CredentialStore(home, { upstream: fakeDecoder }).read('sys')).rejects.toMatchObject({
        code: 'SHIFTER_CONFIG_INSECURE',
      });
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
