import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshTransfer } from '@shifter/core';
import {
  createNetworkNamespace,
  describeTransferContract,
  haveRoot,
  startSshServer,
  type NetworkNamespace,
  type SshServer,
} from '@shifter/core/testing';

// Real Debian OpenSSH servers with throw-away keys: one on loopback, one inside a network namespace reached over a
// veth pair (the set-up the distributed gateway test reuses).
const root = haveRoot();

function transferFor(
  server: SshServer,
  imageDir: string,
  extra: Partial<ConstructorParameters<typeof SshTransfer>[0]> = {},
): SshTransfer {
  return new SshTransfer({
    host: server.host,
    port: server.port,
    username: server.username,
    key: server.keyFile,
    knownHostsFile: server.knownHostsFile,
    imageDir,
    ...extra,
  });
}

describe.skipIf(!root)('SshTransfer to sshd on loopback', () => {
  let server: SshServer;
  beforeAll(async () => {
    server = await startSshServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  describeTransferContract('SshTransfer (loopback)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-ssh-images-'));
    return {
      transfer: transferFor(server, dir),
      inspectDir: dir,
      teardown: async () => rmSync(dir, { recursive: true, force: true }),
    };
  });

  it('refuses a host whose key is not the known one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-ssh-images-'));
    const knownHosts = join(dir, 'other_known_hosts');
    writeFileSync(
      knownHosts,
      `[${server.host}]:${server.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`,
    );
    try {
      const transfer = transferFor(server, join(dir, 'images'), { knownHostsFile: knownHosts });
      await expect(transfer.exists('ab'.repeat(32))).rejects.toMatchObject({ code: 'SHIFTER_TRANSFER_FAILED' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('falls back to the next host when the first refuses connections', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-ssh-images-'));
    try {
      // 127.0.0.2 is loopback too but sshd does not listen there.
      const knownHosts = join(dir, 'known_hosts');
      writeFileSync(knownHosts, readKnownHosts(server));
      const transfer = transferFor(server, dir, {
        host: ['127.0.0.2', server.host],
        knownHostsFile: knownHosts,
        connectTimeoutSeconds: 2,
      });
      const image = join(dir, 'src-img');
      const meta = join(dir, 'src-meta');
      writeFileSync(image, 'image');
      writeFileSync(meta, 'meta');
      await transfer.put(image, meta, 'ef'.repeat(32));
      expect(await transfer.exists('ef'.repeat(32))).toBe(true);
      expect(readdirSync(dir).sort()).toEqual([
        `${'ef'.repeat(32)}.meta`,
        `${'ef'.repeat(32)}.squashfs`,
        'known_hosts',
        'src-img',
        'src-meta',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports SHIFTER_TRANSFER_FAILED when no host can be reached', async () => {
    const transfer = transferFor(server, '/tmp/unused', { host: ['127.0.0.2'], connectTimeoutSeconds: 2 });
    await expect(transfer.exists('ab'.repeat(32))).rejects.toMatchObject({
      code: 'SHIFTER_TRANSFER_FAILED',
      retryable: true,
    });
  });
});

function readKnownHosts(server: SshServer): string {
  // Same key, listed for the fallback host as well as the real one.
  const line = readFileSync(server.knownHostsFile, 'utf8');
  return line + line.replace(`[${server.host}]`, '[127.0.0.2]');
}

describe.skipIf(!root)('SshTransfer to sshd inside a network namespace', () => {
  let ns: NetworkNamespace;
  let server: SshServer;
  beforeAll(async () => {
    ns = await createNetworkNamespace();
    server = await startSshServer({ netns: ns });
  });
  afterAll(async () => {
    await server?.stop();
    await ns?.remove();
  });

  it('listens on the namespace address only', async () => {
    expect(server.host).toBe(ns.address);
    expect(server.host).toMatch(/^10\.200\./);
    const { stdout } = await ns.exec('ip', ['-4', 'addr', 'show']);
    expect(stdout).toContain(ns.address);
  });

  describeTransferContract('SshTransfer (network namespace over veth)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shifter-ssh-images-'));
    return {
      transfer: transferFor(server, dir),
      inspectDir: dir,
      teardown: async () => rmSync(dir, { recursive: true, force: true }),
    };
  });
});
