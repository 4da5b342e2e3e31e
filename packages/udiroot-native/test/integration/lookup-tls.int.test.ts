/**
 * Tag lookups through `https://` image gateways, from the setuid runtime's unprivileged child. A test CA made here
 * with `openssl` signs the gateways' certificates; `gatewayCaPath` in udiRoot.conf names it. The real gateway
 * (`shifter-gateway serve`, SQLite store) listens on plain HTTP and is fronted by a small TLS proxy (node:tls), as a
 * site fronts it with a TLS terminator; a TLS gateway double checks the munge credential to show who asked.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayClient } from '@shifter/core';
import { freePort, haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { RuntimeEnv, credentialOf, startRuntimeGateway, type RuntimeGateway } from './runtime-env.js';

const execFileAsync = promisify(execFile);
const enabled = haveRoot() && haveServices('user', 'registry', 'munge');
const system = 'testsys';

/** A CA (`name`-ca.pem/-key.pem) and, signed by it, server certificates for the given subjectAltNames. */
function makeCa(
  dir: string,
  name: string,
): { ca: string; sign: (leaf: string, san: string) => { key: string; cert: string } } {
  const ca = join(dir, `${name}-ca.pem`);
  const caKey = join(dir, `${name}-ca-key.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name} test CA`,
      '-keyout',
      caKey,
      '-out',
      ca,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign',
    ],
    { stdio: 'pipe' },
  );
  chmodSync(ca, 0o644);
  return {
    ca,
    sign(leaf, san) {
      const key = join(dir, `${leaf}-key.pem`);
      const csr = join(dir, `${leaf}.csr`);
      const cert = join(dir, `${leaf}.pem`);
      const ext = join(dir, `${leaf}.ext`);
      writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
      execFileSync(
        'openssl',
        [
          'req',
          '-new',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-subj',
          `/CN=${leaf}`,
          '-keyout',
          key,
          '-out',
          csr,
        ],
        { stdio: 'pipe' },
      );
      execFileSync(
        'openssl',
        [
          'x509',
          '-req',
          '-in',
          csr,
          '-CA',
          ca,
          '-CAkey',
          caKey,
          '-CAcreateserial',
          '-days',
          '2',
          '-extfile',
          ext,
          '-out',
          cert,
        ],
        { stdio: 'pipe' },
      );
      return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
    },
  };
}

async function listening<
  T extends { listen: (port: number, host: string, cb: () => void) => unknown; address: () => unknown },
>(server: T): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe.skipIf(!enabled)('gateway lookup over https from the setuid runtime', () => {
  let env: RuntimeEnv;
  let user: string;
  let uid: number;
  let user2: string;
  let uid2: number;
  let gateway: RuntimeGateway | undefined;
  const log = () => gateway?.log() ?? '';
  let httpUrl: string; // the real gateway, plain HTTP
  let httpsUrl: string; // the real gateway behind the TLS proxy (certificate for 127.0.0.1 and localhost)
  let doubleUrl: string; // TLS gateway double that decodes the credential
  let otherNameUrl: string; // TLS server whose certificate names another host
  let abruptUrl: string; // answers, then drops the connection without a TLS close_notify
  let truncatedUrl: string; // the same, with fewer bytes than its Content-Length
  let deadHttps: string;
  let deadHttp: string;
  let testCa: string;
  let testCaDir: string; // a hashed CA directory (openssl rehash) holding the test CA
  let wrongCa: string;
  let tag: string;
  let imageId: string;
  const servers: Array<TlsServer | HttpsServer> = [];
  const sockets: Socket[] = [];
  const seenUids: Array<number | null> = [];

  beforeAll(async () => {
    user = serviceValue('user');
    uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }));
    user2 = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
    uid2 = Number(execFileSync('id', ['-u', user2], { encoding: 'utf8' }));
    env = new RuntimeEnv();
    const tlsDir = join(env.dir, 'tls');
    mkdirSync(tlsDir, { mode: 0o755 });
    const good = makeCa(tlsDir, 'site');
    const wrong = makeCa(tlsDir, 'wrong');
    testCa = good.ca;
    wrongCa = wrong.ca;
    testCaDir = join(tlsDir, 'ca-dir');
    mkdirSync(testCaDir, { mode: 0o755 });
    copyFileSync(testCa, join(testCaDir, 'site-ca.pem'));
    execFileSync('openssl', ['rehash', testCaDir], { stdio: 'pipe' });
    const serverCert = good.sign('gateway', 'IP:127.0.0.1,DNS:localhost');
    const otherCert = good.sign('other', 'DNS:gateway.other.example');

    // The real gateway on plain HTTP.
    const port = await freePort();
    httpUrl = `http://127.0.0.1:${port}`;
    gateway = await startRuntimeGateway(env, system, { port, concurrency: 1 });

    // TLS in front of it: each TLS connection becomes one TCP connection to the gateway.
    const proxy = createTlsServer({ key: serverCert.key, cert: serverCert.cert }, (client) => {
      const upstream = connect(port, '127.0.0.1');
      sockets.push(client, upstream);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    servers.push(proxy);
    httpsUrl = `https://127.0.0.1:${await listening(proxy)}`;

    // A TLS double that records whose credential it got, then answers like /api/lookup.
    const double = createHttpsServer({ key: serverCert.key, cert: serverCert.cert }, (request, response) => {
      const decoded = spawnSync('unmunge', [], {
        input: String(request.headers.authentication ?? ''),
        encoding: 'utf8',
      });
      const who = /^UID:\s+\S+\s+\((\d+)\)/m.exec(decoded.stdout);
      seenUids.push(decoded.status === 0 && who ? Number(who[1]) : null);
      if (request.url === '/api/lookup/testsys/docker/double%3Alatest/') {
        response
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ status: 'READY', id: imageId }));
      } else {
        response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      }
    });
    servers.push(double);
    doubleUrl = `https://localhost:${await listening(double)}`;

    // Raw TLS servers that answer and then destroy the socket: no close_notify, as some TLS terminators do.
    const abrupt = (body: string, contentLength: number) =>
      createTlsServer({ key: serverCert.key, cert: serverCert.cert }, (socket) => {
        sockets.push(socket);
        socket.on('error', () => socket.destroy());
        socket.once('data', () => {
          socket.write(
            `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${contentLength}\r\n\r\n${body}`,
            () => socket.destroy(),
          );
        });
      });
    const whole = JSON.stringify({ status: 'READY', id: 'ab'.repeat(32) });
    const abruptServer = abrupt(whole, whole.length);
    servers.push(abruptServer);
    abruptUrl = `https://127.0.0.1:${await listening(abruptServer)}`;
    const truncatedServer = abrupt(whole, whole.length + 100);
    servers.push(truncatedServer);
    truncatedUrl = `https://127.0.0.1:${await listening(truncatedServer)}`;

    const other = createTlsServer({ key: otherCert.key, cert: otherCert.cert }, (socket) => socket.destroy());
    servers.push(other);
    otherNameUrl = `https://127.0.0.1:${await listening(other)}`;

    // Ports nobody listens on.
    const probe = createTcpServer();
    deadHttps = `https://127.0.0.1:${await listening(probe)}`;
    await new Promise((resolve) => probe.close(resolve));
    const probe2 = createTcpServer();
    deadHttp = `http://127.0.0.1:${await listening(probe2)}`;
    await new Promise((resolve) => probe2.close(resolve));

    // A public image pulled through the real gateway (over plain HTTP by the test's client).
    tag = `${serviceValue('registry')}/test/busybox:latest`;
    const client = new GatewayClient({
      urls: [httpUrl],
      system,
      timeoutMs: 120_000,
      authenticate: (payload) => credentialOf(user, payload || undefined),
    });
    const image = await client.pullAndWait('docker', tag);
    expect(image.status, log()).toBe('READY');
    imageId = image.id;
  }, 300_000);

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    for (const server of servers) await new Promise((resolve) => server.close(resolve));
    await gateway?.stop();
    env?.cleanup();
  });

  const conf = (gateways: string, ca: string | null) =>
    env.writeConf(
      `imageGateway=${gateways}\nsystem=${system}\ndefaultImageType=docker\ngatewayTimeout=20\n${ca ? `gatewayCaPath=${ca}\n` : ''}`,
    );

  it('looks a tag up through the real gateway behind TLS, verified against gatewayCaPath (file or directory), and runs it', async () => {
    conf(httpsUrl, testCa);
    const r = await env.runAs(user, [`--image=docker:${tag}`, 'sh', '-c', 'echo $SHIFTER_IMAGE']);
    expect(r.stderr, log()).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${imageId}\n`);
    // gatewayCaPath may also be a hashed directory, read lazily.
    conf(httpsUrl, testCaDir);
    const fromDir = await env.runAs(user, [`--image=docker:${tag}`, 'sh', '-c', 'echo $SHIFTER_IMAGE']);
    expect(fromDir.stderr).toBe('');
    expect(fromDir.stdout).toBe(`${imageId}\n`);
  });

  it("sends the caller's own munge credential over TLS (the lookup runs as that user, for either user) and checks a host name", async () => {
    conf(doubleUrl, testCa);
    seenUids.length = 0;
    const r = await env.runAs(user, ['--image=docker:double:latest', 'echo', 'ok']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('ok\n');
    expect(seenUids).toEqual([uid]);
    // Another user's lookup carries that user's credential, never the first one's (nor root's).
    seenUids.length = 0;
    expect((await env.runAs(user2, ['--image=docker:double:latest', 'echo', 'ok'])).stdout).toBe('ok\n');
    expect(seenUids).toEqual([uid2]);
    // Over TLS, a tag the gateway does not know is still "not found".
    expect((await env.runAs(user, ['--image=docker:nosuch:latest', 'true'])).status).toBe(66);
  });

  it('fails over across mixed http/https URLs with dead ones, whatever the shuffled order', async () => {
    for (const gateways of [
      `${deadHttps} ${deadHttp} ${httpsUrl}`,
      `${deadHttps} ${httpUrl}`,
      `${deadHttp} ${httpsUrl} ${httpUrl}`,
    ]) {
      conf(gateways, testCa);
      for (let i = 0; i < 4; i++) {
        const r = await env.runAs(user, [`--image=${tag}`, 'sh', '-c', 'echo $SHIFTER_IMAGE']);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe(`${imageId}\n`);
      }
    }
    conf(`${deadHttps} ${deadHttp}`, testCa);
    expect((await env.runAs(user, [`--image=${tag}`, 'true'])).status).toBe(69);
  });

  it('refuses a gateway whose certificate the CA does not sign: a clear message and exit 78', async () => {
    conf(httpsUrl, wrongCa);
    const r = await env.runAs(user, [`--image=${tag}`, 'echo', 'reached']);
    expect(r.status).toBe(78);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      `gateway ${httpsUrl}: TLS certificate not trusted: unable to get local issuer certificate (trust anchors: ${wrongCa})`,
    );
    expect(r.stderr).toContain('check imageGateway and gatewayCaPath in udiRoot.conf');
    const emptyDir = join(env.dir, 'tls', 'empty-ca-dir');
    mkdirSync(emptyDir, { mode: 0o755 });
    conf(httpsUrl, emptyDir);
    expect((await env.runAs(user, [`--image=${tag}`, 'true'])).status).toBe(78);
    // Without gatewayCaPath the system trust store applies, which does not know the test CA either.
    conf(httpsUrl, null);
    const system = await env.runAs(user, [`--image=${tag}`, 'true']);
    expect(system.status).toBe(78);
    expect(system.stderr).toContain('(trust anchors: the system store)');
  });

  it('takes an answer whose connection ends without close_notify when it is complete, and refuses a truncated one', async () => {
    // The id this server answers is not in imagePath, so a successful lookup ends in "image not found" (66) after it.
    conf(abruptUrl, testCa);
    const complete = await env.runAs(user, ['--image=docker:any:latest', 'true']);
    expect(complete.stderr).toContain(`image ${'ab'.repeat(32)} not found`);
    expect(complete.status).toBe(66);
    conf(truncatedUrl, testCa);
    const truncated = await env.runAs(user, ['--image=docker:any:latest', '--verbose', 'true']);
    expect(truncated.status).toBe(69);
    expect(truncated.stderr).toContain('answer shorter than its Content-Length');
  });

  it('refuses a certificate for another host name, even one the CA signed', async () => {
    conf(otherNameUrl, testCa);
    const r = await env.runAs(user, [`--image=${tag}`, 'true']);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('TLS certificate not trusted: IP address mismatch');
  });

  it('an untrusted gateway is skipped when another one answers (a warning names it)', async () => {
    conf(`${httpsUrl} ${httpUrl}`, wrongCa);
    for (let i = 0; i < 4; i++) {
      const r = await env.runAs(user, [`--image=${tag}`, 'sh', '-c', 'echo $SHIFTER_IMAGE']);
      expect(r.stdout).toBe(`${imageId}\n`);
      expect(r.status).toBe(0);
      // The shuffled order decides whether the untrusted one was tried first.
      expect([
        '',
        `shifter: warning: gateway ${httpsUrl}: TLS certificate not trusted: unable to get local issuer certificate (trust anchors: ${wrongCa})\n`,
      ]).toContain(r.stderr);
    }
  });

  it('says so when the user cannot read gatewayCaPath, or it holds no certificate (exit 78)', async () => {
    const unreadable = join(env.dir, 'tls', 'root-only-ca.pem');
    writeFileSync(unreadable, readFileSync(testCa), { mode: 0o600 });
    conf(httpsUrl, unreadable);
    const r = await env.runAs(user, [`--image=${tag}`, 'true']);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain(`gatewayCaPath ${unreadable}: Permission denied (it must be readable by users)`);
    const notPem = join(env.dir, 'tls', 'not-a-ca.pem');
    writeFileSync(notPem, 'not a certificate\n', { mode: 0o644 });
    conf(httpsUrl, notPem);
    const bad = await env.runAs(user, [`--image=${tag}`, 'true']);
    expect(bad.status).toBe(78);
    expect(bad.stderr).toContain(`gatewayCaPath ${notPem}: no PEM certificate could be loaded`);
  });

  it('shifterimg lookup verifies https gateways against the same gatewayCaPath (file or directory), as the user', async () => {
    const cliBin = fileURLToPath(new URL('../../../cli/bin/run.cjs', import.meta.url));
    // Asynchronous: the TLS proxy runs in this process and must keep forwarding while the client waits.
    const lookup = (who: string) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(
          'runuser',
          ['-u', who, '--', 'env', '-i', 'PATH=/usr/bin:/bin', `HOME=/tmp`, `SHIFTER_CONFIG=${env.confPath}`].concat([
            `SHIFTER_MUNGE_SOCKET=${serviceValue('munge')}`,
            process.execPath,
            cliBin,
            'lookup',
            tag,
          ]),
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
        child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        child.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    for (const ca of [testCa, testCaDir]) {
      conf(httpsUrl, ca);
      for (const who of [user, user2]) {
        const r = await lookup(who);
        expect(r.stderr).toBe('');
        expect([r.status, r.stdout]).toEqual([0, `${imageId}\n`]);
      }
    }
    // A gateway the anchors do not sign is skipped for one they do; alone, it is a configuration error (78).
    conf(`${otherNameUrl} ${httpsUrl}`, testCa);
    expect((await lookup(user)).stdout).toBe(`${imageId}\n`);
    conf(httpsUrl, wrongCa);
    const untrusted = await lookup(user);
    expect(untrusted.status).toBe(78);
    expect(untrusted.stderr).toMatch(/certificate not trusted[\s\S]*gatewayCaPath/);
    // The anchors must be readable by the user who runs the lookup.
    const unreadable = join(env.dir, 'tls', 'root-only-ca-cli.pem');
    writeFileSync(unreadable, readFileSync(testCa), { mode: 0o600 });
    conf(httpsUrl, unreadable);
    const denied = await lookup(user);
    expect(denied.status).toBe(78);
    expect(denied.stderr).toContain(`gatewayCaPath ${unreadable}: cannot be read (EACCES)`);
  });
});
