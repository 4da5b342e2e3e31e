/**
 * Tag → id lookup through the image gateway, with the real munged. The gateway here is a small local HTTP server
 * that answers like the gateway's lookup endpoint and checks the `authentication` header with `unmunge` (a test
 * double of the gateway, the runtime itself is real): it proves the request comes from an unprivileged child
 * running as the user, the tag is URL-escaped, dead gateways are skipped and gatewayTimeout bounds a hung one.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { RuntimeEnv } from './runtime-env.js';

const enabled = haveRoot() && haveServices('user', 'registry', 'munge');

interface Seen {
  path: string;
  mungeUid: number | null;
}

describe.skipIf(!enabled)('gateway lookup from the setuid runtime', () => {
  let env: RuntimeEnv;
  let user: string;
  let busybox: string;
  let gateway: Server;
  let gatewayUrl: string;
  let deadUrl: string;
  let hung: TcpServer;
  let hungUrl: string;
  const hungSockets: Socket[] = [];
  const seen: Seen[] = [];

  beforeAll(async () => {
    user = serviceValue('user');
    env = new RuntimeEnv();
    busybox = await env.pullFromRegistry(serviceValue('registry'), 'busybox:latest');
    gateway = createServer((request, response) => {
      const credential = String(request.headers.authentication ?? '');
      const decoded = spawnSync('unmunge', [], { input: credential, encoding: 'utf8' });
      const uid = /^UID:\s+\S+\s+\((\d+)\)/m.exec(decoded.stdout);
      const ok = decoded.status === 0 && /STATUS:\s+Success/.test(decoded.stdout);
      seen.push({ path: request.url ?? '', mungeUid: ok && uid ? Number(uid[1]) : null });
      if (!ok) {
        response.writeHead(403, { 'content-type': 'application/json' }).end('{"error":"bad credential"}');
      } else if (request.url === '/api/lookup/testsys/docker/busybox%3Alatest/') {
        response
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ meta: { id: 'not-this-one' }, status: 'READY', id: busybox, tag: ['busybox:latest'] }));
      } else {
        response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      }
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
    // A port nobody listens on: connect() is refused at once.
    const probe = createTcpServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    deadUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
    await new Promise((resolve) => probe.close(resolve));
    // A gateway that accepts and never answers.
    hung = createTcpServer((socket) => hungSockets.push(socket));
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    hungUrl = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
  }, 300_000);

  afterAll(async () => {
    for (const socket of hungSockets) socket.destroy();
    await new Promise((resolve) => hung?.close(resolve));
    await new Promise((resolve) => gateway?.close(resolve));
    env?.cleanup();
  });

  it('resolves docker:busybox:latest as the user (munge credential of the caller, escaped tag) and runs it', async () => {
    env.writeConf(`imageGateway=${gatewayUrl}\nsystem=testsys\ndefaultImageType=docker\n`);
    seen.length = 0;
    const r = await env.runAs(user, [
      '--image=docker:busybox:latest',
      'sh',
      '-c',
      'echo $SHIFTER_IMAGE $SHIFTER_IMAGEREQUEST',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${busybox} docker:busybox:latest\n`);
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }));
    expect(seen).toEqual([{ path: '/api/lookup/testsys/docker/busybox%3Alatest/', mungeUid: uid }]);
    // The default image type applies to a bare tag.
    expect((await env.runAs(user, ['--image=busybox:latest', 'echo', 'ok'])).stdout).toBe('ok\n');
  });

  it('fails over from a dead gateway to a live one, whatever the shuffled order', async () => {
    env.writeConf(`imageGateway=${deadUrl} ${gatewayUrl} ${deadUrl}\nsystem=testsys\n`);
    for (let i = 0; i < 8; i++) {
      const r = await env.runAs(user, ['--image=docker:busybox:latest', 'echo', 'ok']);
      expect(r.stdout).toBe('ok\n');
    }
  });

  it('sends a fresh munge credential to each gateway it tries (a consumed credential would be a replay)', async () => {
    // This gateway decodes (and so consumes) the credential, then fails; the next one must not see a replay.
    const failing = createServer((request, response) => {
      spawnSync('unmunge', [], { input: String(request.headers.authentication ?? ''), encoding: 'utf8' });
      response.writeHead(503).end();
    });
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    const failingUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
    try {
      env.writeConf(`imageGateway=${failingUrl} ${gatewayUrl}\nsystem=testsys\n`);
      for (let i = 0; i < 6; i++) {
        seen.length = 0;
        const r = await env.runAs(user, ['--image=docker:busybox:latest', 'echo', 'ok']);
        expect(r.stdout).toBe('ok\n');
        expect(seen.every((s) => s.mungeUid !== null)).toBe(true);
      }
    } finally {
      await new Promise((resolve) => failing.close(resolve));
    }
  });

  it('reports a tag no gateway knows as not found (66) and no reachable gateway as unavailable (69)', async () => {
    env.writeConf(`imageGateway=${gatewayUrl}\nsystem=testsys\n`);
    expect((await env.runAs(user, ['--image=docker:nosuch:latest', 'true'])).status).toBe(66);
    env.writeConf(`imageGateway=${deadUrl}\nsystem=testsys\n`);
    expect((await env.runAs(user, ['--image=docker:busybox:latest', 'true'])).status).toBe(69);
  });

  it('gives up on a hung gateway after gatewayTimeout seconds', async () => {
    env.writeConf(`imageGateway=${hungUrl}\ngatewayTimeout=1\nsystem=testsys\n`);
    const r = await env.runAs(user, ['--image=docker:busybox:latest', 'true']);
    expect(r.status).toBe(69);
    expect(r.ms).toBeGreaterThanOrEqual(900);
  });

  it('needs no gateway for id: images', async () => {
    env.writeConf(`imageGateway=${deadUrl}\nsystem=testsys\n`);
    seen.length = 0;
    expect((await env.runAs(user, [`--image=id:${busybox}`, 'echo', 'ok'])).stdout).toBe('ok\n');
    expect(seen).toEqual([]);
  });

  it('refuses a lookup when the configuration names no gateway', async () => {
    env.writeConf('system=testsys\n');
    expect((await env.runAs(user, ['--image=docker:busybox:latest', 'true'])).status).toBe(78);
  });
});
