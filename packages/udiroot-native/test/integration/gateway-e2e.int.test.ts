/**
 * The whole product on one node: the real gateway (`shifter-gateway serve`, SQLite store, local transfer into the
 * runtime's imagePath) pulls from the test registries, and the setuid runtime, run as the unprivileged test user,
 * resolves the tag through that gateway (munge-authenticated lookup from its unprivileged child) and runs the image.
 * A private image pulled by one user is refused to the other, by the gateway (lookup) and by the runtime (id:).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '@shifter/core';
import {
  buildFakeImage,
  freePort,
  haveRoot,
  haveServices,
  makeLayer,
  serviceValue,
  startFakeRegistry,
} from '@shifter/core/testing';
import { RuntimeEnv, credentialOf, startRuntimeGateway, type RuntimeGateway } from './runtime-env.js';

const enabled = haveRoot() && haveServices('user', 'registry', 'registryToken', 'munge');
const system = 'testsys';

describe.skipIf(!enabled)('registry → real gateway → setuid runtime', () => {
  let env: RuntimeEnv;
  let gateway: RuntimeGateway | undefined;
  const log = () => gateway?.log() ?? '';
  let url: string;
  let user: string;
  let user2: string;

  const client = (as: string) =>
    new GatewayClient({
      urls: [url],
      system,
      timeoutMs: 120_000,
      authenticate: (payload) => credentialOf(as, payload || undefined),
    });

  beforeAll(async () => {
    user = serviceValue('user');
    user2 = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
    env = new RuntimeEnv();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    gateway = await startRuntimeGateway(env, system, { port });
    env.writeConf(`imageGateway=${url}\nsystem=${system}\ndefaultImageType=docker\ngatewayTimeout=30\n`);
  }, 300_000);

  afterAll(async () => {
    await gateway?.stop();
    env?.cleanup();
  });

  it('pulls a public image through the gateway and runs it by tag as the user', async () => {
    const tag = `${serviceValue('registry')}/test/busybox:latest`;
    const image = await client(user).pullAndWait('docker', tag);
    expect(image.status, log()).toBe('READY');
    const r = await env.runAs(user, [
      `--image=docker:${tag}`,
      'sh',
      '-c',
      'echo $SHIFTER_IMAGE; cat /etc/os-release | head -1',
    ]);
    expect(r.stderr, log()).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(image.id);
    // The other user sees the same public image.
    expect((await env.runAs(user2, [`--image=${tag}`, 'echo', 'ok'])).stdout).toBe('ok\n');
  });

  it('a public tag stays public for the other user, by tag and by id, when identical content is pulled privately', async () => {
    // private/busybox on the token registry is byte-identical to the public test/busybox the first test pulled.
    const publicTag = `${serviceValue('registry')}/test/busybox:latest`;
    const tag = `${serviceValue('registryToken')}/private/busybox:latest`;
    const credentials = {
      default: `${process.env.SHIFTER_TEST_REGISTRY_USER}:${process.env.SHIFTER_TEST_REGISTRY_PASSWORD}`,
    };
    const image = await client(user).pullAndWait('docker', tag, { credentials });
    expect(image.status, log()).toBe('READY');
    const own = await env.runAs(user, [`--image=docker:${tag}`, 'echo', 'mine']);
    expect(own.stderr, log()).toBe('');
    expect(own.stdout).toBe('mine\n');
    // The private tag is the puller's alone: the gateway does not show it to the other user.
    const byTag = await env.runAs(user2, [`--image=docker:${tag}`, 'echo', 'stolen']);
    expect(byTag.status).toBe(66);
    // The public tag, and the public file behind both, keep working for everyone.
    const publicRun = await env.runAs(user2, [`--image=docker:${publicTag}`, 'echo', 'still public']);
    expect(publicRun.stderr, log()).toBe('');
    expect(publicRun.stdout).toBe('still public\n');
    const byId = await env.runAs(user2, [`--image=id:${image.id}`, 'echo', 'public content']);
    expect(byId.stdout).toBe('public content\n');
  });

  it('a private image of unique content pulled by one user is refused to the other by the gateway and by the runtime', async () => {
    // A private registry (Basic auth, loopback) serving busybox plus a layer of its own, public nowhere.
    const registry = serviceValue('registry');
    const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';
    const manifest = (await (
      await fetch(`http://${registry}/v2/test/busybox/manifests/latest`, { headers: { accept } })
    ).json()) as { layers: { digest: string; mediaType: string }[] };
    const base = manifest.layers.map(async (layer) => ({
      bytes: Buffer.from(await (await fetch(`http://${registry}/v2/test/busybox/blobs/${layer.digest}`)).arrayBuffer()),
      mediaType: layer.mediaType,
    }));
    const secret = await makeLayer([
      { path: 'secret/' },
      { path: 'secret/key.txt', content: `only ${user} ${randomBytes(8).toString('hex')}\n` },
    ]);
    const login = { username: 'owner', password: randomBytes(12).toString('hex') };
    const fake = await startFakeRegistry({
      images: { 'owner/secret:1': buildFakeImage([...(await Promise.all(base)), secret]) },
      basicAuth: login,
    });
    try {
      const tag = `${fake.host}/owner/secret:1`;
      const image = await client(user).pullAndWait('docker', tag, {
        credentials: { default: `${login.username}:${login.password}` },
      });
      expect(image.status, log()).toBe('READY');
      const own = await env.runAs(user, [`--image=docker:${tag}`, 'cat', '/secret/key.txt']);
      expect(own.stderr, log()).toBe('');
      expect(own.stdout).toContain(`only ${user}`);
      const byTag = await env.runAs(user2, [`--image=docker:${tag}`, 'cat', '/secret/key.txt']);
      expect(byTag.status).toBe(66); // the gateway does not show it to them
      const byId = await env.runAs(user2, [`--image=id:${image.id}`, 'cat', '/secret/key.txt']);
      expect(byId.status).toBe(77); // the runtime enforces the .meta ACL itself
      expect(byId.stdout).toBe('');
    } finally {
      await fake.close();
    }
  });
});
