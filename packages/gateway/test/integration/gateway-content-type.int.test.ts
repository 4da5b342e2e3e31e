/**
 * Upstream's C client (`shifterimg`, and the runtime and SPANK plugin through it) takes a gateway answer as JSON only
 * when its Content-Type is exactly `application/json`; with anything else it prints nothing and the runtime fails
 * every lookup. These black-box tests read the raw HTTP bytes of a listening `shifter-gateway serve` on every JSON
 * route, successful or not, and check that `last_pull` is written as upstream writes it (always with a fraction).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, mungeCredential, startGatewayProcess, tempDir, type GatewayProcess } from './gateway-process.js';

const ready = haveServices('registry', 'munge', 'user') && haveRoot();
const SYSTEM = 'cluster';

/** One raw HTTP exchange: the status line and header block exactly as sent, and the body text. */
interface RawAnswer {
  readonly status: number;
  readonly head: string;
  readonly body: string;
}

/** Send one HTTP/1.1 request over a plain socket and read the answer until the server closes. */
function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      socket.end();
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const head = text.slice(0, split + 2);
      resolve({
        status: Number(head.slice(9, 12)),
        head,
        body: Buffer.from(text.slice(split + 4), 'latin1').toString('utf8'),
      });
    });
    const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: close', 'Accept: */*'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    if (body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n${body ?? ''}`);
  });
}

/** The Content-Type header lines of an answer, as sent (name case-insensitive, value byte-exact). */
function contentTypes(answer: RawAnswer): string[] {
  return answer.head.split('\r\n').filter((line) => /^content-type:/i.test(line));
}

describe.skipIf(!ready)('gateway answers upstream clients can read (raw HTTP)', () => {
  let dir: string;
  let gateway: GatewayProcess;
  let port: number;
  const user = process.env.SHIFTER_TEST_USER ?? 'shiftertest';
  const asUser = () => mungeCredential({ user });
  const asRoot = () => mungeCredential();
  const seen: { route: string; answer: RawAnswer }[] = [];

  /** Call a route and remember the answer for the header assertions. */
  async function hit(
    route: string,
    method: string,
    path: string,
    credential?: string,
    body?: string,
    contentType = 'application/json',
  ): Promise<RawAnswer> {
    const headers: Record<string, string> = {};
    if (credential !== undefined) headers.authentication = credential;
    if (body !== undefined) headers['Content-Type'] = contentType;
    const answer = await raw(port, method, path, headers, body);
    seen.push({ route, answer });
    return answer;
  }

  beforeAll(async () => {
    dir = tempDir('shifter-gw-ct-');
    chmodSync(dir, 0o755);
    const imageDir = join(dir, 'images');
    mkdirSync(imageDir);
    port = await freePort();
    gateway = await startGatewayProcess(
      {
        gateway: { host: '127.0.0.1', port, bodyLimit: 4096 },
        storage: { cacheDir: join(dir, 'cache'), expandDir: join(dir, 'expand') },
        // The harness registry is no configured location (allowedRegistries defaults to "configured").
        allowedRegistries: 'any',
        systems: {
          [SYSTEM]: { transfer: { kind: 'local', imageDir }, admins: ['root'], importUsers: [user] },
          // A system whose munged cannot be reached: its requests fail with 503.
          nomunge: { transfer: { kind: 'local', imageDir }, mungeSocketPath: join(dir, 'no-such-socket') },
        },
        metadata: { kind: 'sqlite', path: join(dir, 'gateway.db') },
        queue: { kind: 'in-process', concurrency: 1 },
        jobs: { pullUpdateTimeout: 300, imageExpirationTimeout: '1:00:00:00' },
        metrics: true,
      },
      { dir },
    );
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('answers every JSON route, successful or refused, with exactly `Content-Type: application/json`', async () => {
    // An imported squashfs gives a READY image without a registry: lookup, list and expire then have a subject.
    const source = join(dir, 'src');
    mkdirSync(join(source, 'etc'), { recursive: true });
    writeFileSync(join(source, 'etc', 'hello'), 'hello\n');
    const file = join(dir, 'ct.squashfs');
    execFileSync('mksquashfs', [source, file, '-noappend', '-quiet', '-no-progress', '-all-root']);
    const uid = Number(execFileSync('id', ['-u', user]).toString());
    chownSync(file, uid, uid);
    const importBody = JSON.stringify({ filepath: file, format: 'squashfs' });
    expect(
      (await hit('doimport', 'POST', `/api/doimport/${SYSTEM}/custom/ct/`, await asUser(), importBody)).status,
    ).toBe(200);
    let state = '';
    for (let i = 0; i < 120 && state !== 'READY' && state !== 'FAILURE'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      state = JSON.parse(
        (
          await raw(
            port,
            'POST',
            `/api/doimport/${SYSTEM}/custom/ct/`,
            { authentication: await asUser(), 'Content-Type': 'application/json' },
            importBody,
          )
        ).body,
      ).status;
    }
    expect(state).toBe('READY');

    const lookup = await hit('lookup', 'GET', `/api/lookup/${SYSTEM}/custom/ct/`, await asUser());
    expect(lookup.status).toBe(200);
    const list = await hit('list', 'GET', `/api/list/${SYSTEM}/`, await asUser());
    expect(list.status).toBe(200);
    // A pull of an absent registry tag is accepted (200) and fails later; its first answer is what clients parse.
    const registry = serviceValue('registry');
    const pull = await hit(
      'pull',
      'POST',
      `/api/pull/${SYSTEM}/docker/${encodeURIComponent(`${registry}/test/absent-ct:latest`)}/`,
      await asUser(),
      '{}',
    );
    expect(pull.status).toBe(200);
    expect((await hit('status', 'GET', '/api/status')).status).toBe(200);
    expect((await hit('openapi', 'GET', '/api/openapi.json')).status).toBe(200);
    expect((await hit('queue', 'GET', `/api/queue/${SYSTEM}/`, await asUser())).status).toBe(200);
    expect((await hit('metrics', 'GET', `/api/metrics/${SYSTEM}/?limit=5`, await asRoot())).status).toBe(200);
    expect((await hit('autoexpire', 'GET', `/api/autoexpire/${SYSTEM}/`, await asRoot())).status).toBe(200);
    expect((await hit('expire', 'GET', `/api/expire/${SYSTEM}/custom/ct/`, await asRoot())).status).toBe(200);

    // Errors, each through a different path of the server.
    expect((await hit('401 no credential', 'GET', `/api/list/${SYSTEM}/`)).status).toBe(401);
    expect((await hit('401 forged credential', 'GET', `/api/list/${SYSTEM}/`, 'garbage')).status).toBe(401);
    expect((await hit('403 not admin', 'GET', `/api/metrics/${SYSTEM}/`, await asUser())).status).toBe(403);
    expect(
      (await hit('404 unknown image', 'GET', `/api/lookup/${SYSTEM}/docker/nothing%3Ahere/`, await asUser())).status,
    ).toBe(404);
    expect((await hit('404 unknown system', 'GET', '/api/list/nosuchsystem/', await asUser())).status).toBe(404);
    expect((await hit('404 unknown route', 'GET', '/api/nothing/here')).status).toBe(404);
    expect(
      (
        await hit(
          '400 malformed body',
          'POST',
          `/api/pull/${SYSTEM}/docker/busybox/`,
          await asUser(),
          '{"allowed_uids": ',
        )
      ).status,
    ).toBe(400);
    expect(
      (await hit('400 bad tag', 'POST', `/api/pull/${SYSTEM}/docker/..%2F..%2Fetc/`, await asUser(), '{}')).status,
    ).toBe(400);
    expect(
      (
        await hit(
          '413 body too large',
          'POST',
          `/api/pull/${SYSTEM}/docker/busybox/`,
          await asUser(),
          JSON.stringify({ allowed_uids: '1,'.repeat(4000) }),
        )
      ).status,
    ).toBe(413);
    expect((await hit('503 munged unreachable', 'GET', '/api/list/nomunge/', await asUser())).status).toBe(503);
    expect(
      (
        await hit(
          '400 form-encoded garbage',
          'POST',
          `/api/pull/${SYSTEM}/docker/busybox/`,
          await asUser(),
          'a=b',
          'application/x-www-form-urlencoded',
        )
      ).status,
    ).toBe(400);

    for (const { route, answer } of seen) {
      expect(contentTypes(answer), `${route}: ${answer.head}`).toEqual(['content-type: application/json']);
      expect(answer.head, route).toContain('\r\ncontent-type: application/json\r\n');
      expect(() => JSON.parse(answer.body), route).not.toThrow();
    }
  });

  it('writes last_pull with a fractional part on lookup, list and pull, and metrics time likewise', async () => {
    const answers = seen.filter(({ route }) => ['lookup', 'list', 'pull', 'doimport', 'metrics'].includes(route));
    expect(answers.map(({ route }) => route).sort()).toEqual(['doimport', 'list', 'lookup', 'metrics', 'pull']);
    for (const { route, answer } of answers) {
      const key = route === 'metrics' ? 'time' : 'last_pull';
      const numbers = [...answer.body.matchAll(new RegExp(`"${key}":(-?[0-9.eE+]+)`, 'g'))].map((match) => match[1]!);
      expect(numbers.length, `${route}: ${answer.body}`).toBeGreaterThan(0);
      for (const number of numbers) expect(number, route).toMatch(/^\d+\.\d+$/);
    }
  });
});
