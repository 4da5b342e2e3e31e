/**
 * Users must not be able to read, take or block each other's images: the attacks of the isolation issue, played
 * against the real gateway process (`shifter-gateway serve`) by two real unprivileged users with real munge
 * credentials. The victim is SHIFTER_TEST_USER2 (shiftertest2), the attacker SHIFTER_TEST_USER (shiftertest).
 *
 * Registries: the harness's plain (:5000) and Basic+TLS (:5001) registries, which hold identical fixtures, and small
 * registries in this process on loopback (@shifter/core/testing `startFakeRegistry`): the victim's private one
 * (Basic auth, unique content, blob answers that can be held back) and the attacker's own — one that names the
 * victim's private layer and never serves it, and one that answers 200 to every request.
 *
 * After each attack: the gateway still serves (a lookup answers) and is the same process, nothing of the victim's is
 * readable by the attacker or hidden from the victim, and no partial file is left in the image or scratch directory.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseMeta } from '@shifter/core';
import {
  buildFakeImage,
  haveRoot,
  haveServices,
  makeLayer,
  serviceValue,
  startFakeRegistry,
  type FakeImage,
  type FakeRegistry,
} from '@shifter/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  freePort,
  mungeCredential,
  pullUntilDone,
  startGatewayProcess,
  tempDir,
  type Answer,
  type GatewayProcess,
} from './gateway-process.js';

const enabled = haveServices('registry', 'registryBasic', 'munge', 'user') && haveRoot();
const backends = [
  { name: 'embedded (SQLite + in-process)', enabled, distributed: false },
  { name: 'distributed (FerretDB + Redis)', enabled: enabled && haveServices('mongo', 'redis'), distributed: true },
];
const SYSTEM = 'cluster';
const IN_FLIGHT = ['INIT', 'PENDING', 'PULLING', 'EXAMINATION', 'CONVERSION', 'TRANSFER', 'HASHING'];

for (const backend of backends) {
  describe.skipIf(!backend.enabled)(`gateway isolation, ${backend.name}: two users, one hostile`, () => {
    const attacker = process.env.SHIFTER_TEST_USER ?? 'shiftertest';
    const victim = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
    let attackerUid: number;
    let victimUid: number;
    let dir: string;
    let imageDir: string;
    let expandDir: string;
    let gateway: GatewayProcess;
    let pid: number;
    let victimRegistry: FakeRegistry;
    const fakes: FakeRegistry[] = [];
    const run = `${process.pid}${Date.now().toString(36)}`;
    const victimLogin = { username: 'victim', password: randomBytes(12).toString('hex') };
    const secretText = `victim's secret ${randomBytes(16).toString('hex')}\n`;
    let secretImage: FakeImage;
    let slowImage: FakeImage;
    let knownImage: FakeImage;
    let secretTag: string;
    let secretId: string;

    const credential = (user: string, locations?: Record<string, string>) => () =>
      mungeCredential({ user, ...(locations ? { payload: JSON.stringify({ authorized_locations: locations }) } : {}) });
    const asAttacker = credential(attacker);
    const asVictim = credential(victim);
    const asVictimWithLogin = () =>
      credential(victim, { default: `${victimLogin.username}:${victimLogin.password}` })();
    const basicLogin = `${process.env.SHIFTER_TEST_REGISTRY_USER}:${process.env.SHIFTER_TEST_REGISTRY_PASSWORD}`;

    const path = (kind: string, itype: string, tag: string) =>
      `/api/${kind}/${SYSTEM}/${itype}/${encodeURIComponent(tag)}/`;
    const lookup = async (as: () => Promise<string>, tag: string, itype = 'docker') =>
      call(gateway.url, 'GET', path('lookup', itype, tag), { credential: await as() });
    const list = async (as: () => Promise<string>) =>
      (await call(gateway.url, 'GET', `/api/list/${SYSTEM}/`, { credential: await as() })).body.list as {
        id: string;
        tag: string[];
        userACL: number[];
      }[];
    const metaOf = (id: string) => parseMeta(readFileSync(join(imageDir, `${id}.meta`), 'utf8'));
    const modeOf = (id: string) => statSync(join(imageDir, `${id}.squashfs`)).mode & 0o777;

    async function fake(options: Parameters<typeof startFakeRegistry>[0]): Promise<FakeRegistry> {
      const registry = await startFakeRegistry(options);
      fakes.push(registry);
      return registry;
    }

    /** Poll a POST (pull or import) until it leaves the working states. */
    async function postUntilDone(
      kind: 'pull' | 'doimport',
      itype: string,
      tag: string,
      as: () => Promise<string>,
      body?: unknown,
    ): Promise<Answer> {
      let answer: Answer | undefined;
      for (let i = 0; i < 240; i++) {
        answer = await call(gateway.url, 'POST', path(kind, itype, tag), {
          credential: await as(),
          ...(body ? { body } : {}),
        });
        if (answer.status !== 200 || !IN_FLIGHT.includes(answer.body.status)) return answer;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const problems = gateway
        .output()
        .split('\n')
        .filter((line) => /"level":(40|50)/.test(line));
      throw new Error(
        `${kind} of ${tag} did not finish: ${JSON.stringify(answer?.body)}\n${problems.slice(-5).join('\n')}`,
      );
    }

    /** What must hold after every attack. */
    async function victimIntact(): Promise<void> {
      // The same gateway process, still answering.
      expect(gateway.child.exitCode).toBeNull();
      expect(gateway.child.pid).toBe(pid);
      expect((await call(gateway.url, 'GET', '/api/status')).status).toBe(200);
      // The victim still has their private image, and only they.
      const own = await lookup(asVictim, secretTag);
      expect(own.status, JSON.stringify(own.body)).toBe(200);
      expect(own.body).toMatchObject({ status: 'READY', id: secretId, userACL: [victimUid] });
      expect(metaOf(secretId).userACL).toEqual([victimUid]);
      expect(modeOf(secretId)).toBe(0o600);
      expect((await lookup(asAttacker, secretTag)).status).toBe(404);
      const seen = await list(asAttacker);
      expect(seen.some((image) => image.id === secretId || image.tag.includes(secretTag))).toBe(false);
      expect(JSON.stringify(seen)).not.toContain(secretImage.layers[0]!.digest.slice(7));
      // No partial file: only complete <id>.squashfs + <id>.meta pairs; no scratch left behind by finished jobs.
      const files = readdirSync(imageDir);
      for (const file of files) {
        expect(file).toMatch(/^[0-9a-f]{64}\.(squashfs|meta)$/);
        const other = file.endsWith('.meta')
          ? file.replace(/\.meta$/, '.squashfs')
          : file.replace(/\.squashfs$/, '.meta');
        expect(files).toContain(other);
      }
      const queue = await call(gateway.url, 'GET', `/api/queue/${SYSTEM}/`, { credential: await asVictim() });
      if (queue.body.list.length === 0)
        expect(readdirSync(expandDir).filter((entry) => entry.startsWith('job-'))).toEqual([]);
    }

    beforeAll(async () => {
      attackerUid = Number(execFileSync('id', ['-u', attacker]).toString());
      victimUid = Number(execFileSync('id', ['-u', victim]).toString());
      secretImage = buildFakeImage([
        await makeLayer([{ path: 'secret/' }, { path: 'secret/key.txt', content: secretText }]),
      ]);
      slowImage = buildFakeImage([
        await makeLayer([{ path: 'slow/' }, { path: 'slow/data.bin', content: randomBytes(256 * 1024) }]),
      ]);
      knownImage = buildFakeImage([
        await makeLayer([{ path: 'known/' }, { path: 'known/data.bin', content: randomBytes(300 * 1024) }]),
      ]);
      victimRegistry = await fake({
        images: { 'victim/secret:1': secretImage, 'victim/slow:1': slowImage, 'victim/known:1': knownImage },
        basicAuth: victimLogin,
      });
      secretTag = `${victimRegistry.host}/victim/secret:1`;
      secretId = secretImage.digest.slice(7);

      dir = tempDir('shifter-gw-iso-');
      chmodSync(dir, 0o755);
      imageDir = join(dir, 'images');
      expandDir = join(dir, 'expand');
      mkdirSync(imageDir);
      gateway = await startGatewayProcess(
        {
          gateway: { host: '127.0.0.1', port: await freePort(), bodyLimit: 4096 },
          storage: { cacheDir: join(dir, 'cache'), expandDir },
          registries: {
            basic: { url: `https://${serviceValue('registryBasic')}`, caFile: process.env.SHIFTER_TEST_CA_FILE },
          },
          // The attacks assume the worst case: a site that lets its users pull from any registry, their own included.
          allowedRegistries: 'any',
          systems: {
            [SYSTEM]: { transfer: { kind: 'local', imageDir }, admins: ['root'], importUsers: [attacker, victim] },
          },
          metadata: backend.distributed
            ? { kind: 'mongo', url: serviceValue('mongo'), database: `iso${run}` }
            : { kind: 'sqlite', path: join(dir, 'gateway.db') },
          queue: backend.distributed
            ? { kind: 'redis', url: serviceValue('redis'), prefix: `iso${run}` }
            : { kind: 'in-process', concurrency: 2 },
          jobs: { pullUpdateTimeout: 300, leaseMs: 10_000, heartbeatMs: 2000 },
          conversion: { compression: 'lz4' },
        },
        { dir, args: backend.distributed ? ['--with-workers'] : [] },
      );
      pid = gateway.child.pid!;

      // The victim pulls their private image: it is theirs alone, and its layer is now in the shared blob cache.
      const pulled = await pullUntilDone(gateway.url, SYSTEM, secretTag, asVictimWithLogin);
      expect(pulled.body.status, JSON.stringify(pulled.body)).toBe('READY');
      expect(pulled.body).toMatchObject({ id: secretId, userACL: [victimUid] });
      await victimIntact();
    }, 300_000);

    afterAll(async () => {
      await gateway?.stop();
      for (const registry of fakes) await registry.close();
    });

    describe('1: private content through the shared blob cache', () => {
      it("a registry of the attacker's own that names the victim's private layer and never serves it gets nothing", async () => {
        const layer = secretImage.layers[0]!;
        // A manifest of the attacker's own naming the victim's layer, and the victim's very manifest (the "image already
        // on the system" path): both served, the layer never.
        const own = buildFakeImage([], { layerDescriptors: [{ digest: layer.digest, size: layer.bytes.length }] });
        const thief = await fake({
          images: { 'attacker/steal:own': own, 'attacker/steal:exact': secretImage },
          withhold: [layer.digest],
        });
        for (const tag of [`${thief.host}/attacker/steal:own`, `${thief.host}/attacker/steal:exact`]) {
          const answer = await pullUntilDone(gateway.url, SYSTEM, tag, asAttacker, 120_000);
          expect(answer.body.status, JSON.stringify(answer.body)).toBe('FAILURE');
          expect(answer.body.code).toBe('SHIFTER_REGISTRY_BLOB_UNKNOWN');
          expect((await lookup(asAttacker, tag)).status).toBe(404);
        }
        // The gateway asked the attacker's registry for the layer's bytes (it did not trust the cache).
        expect(thief.requests.some((request) => request.path.endsWith(`/blobs/${layer.digest}`))).toBe(true);
        await victimIntact();
      });

      it('a registry that answers 200 to every request proves nothing', async () => {
        const layer = secretImage.layers[0]!;
        const own = buildFakeImage([], { layerDescriptors: [{ digest: layer.digest, size: layer.bytes.length }] });
        const yesMan = await fake({
          images: { 'attacker/yes:own': own, 'attacker/yes:exact': secretImage },
          withhold: [layer.digest],
          yesMan: true,
        });
        for (const tag of [`${yesMan.host}/attacker/yes:own`, `${yesMan.host}/attacker/yes:exact`]) {
          const answer = await pullUntilDone(gateway.url, SYSTEM, tag, asAttacker, 120_000);
          expect(answer.body.status, JSON.stringify(answer.body)).toBe('FAILURE');
          expect(answer.body.code).toBe('SHIFTER_BLOB_UNPROVEN');
          expect((await lookup(asAttacker, tag)).status).toBe(404);
        }
        // Its blob answers were asked for a byte range of the layer, and the 200 was not taken as proof.
        expect(
          yesMan.requests.some(
            (request) => request.path.endsWith(`/blobs/${layer.digest}`) && request.range !== undefined,
          ),
        ).toBe(true);
        await victimIntact();
      });

      it('a registry that really serves the bytes gets the cached content (the proof is a comparison, not a refusal)', async () => {
        // Another private image of the victim's, whose bytes the attacker does have: then they prove it, and learn
        // nothing they did not have. The victim's tag stays theirs alone.
        const knownTag = `${victimRegistry.host}/victim/known:1`;
        const victims = await pullUntilDone(gateway.url, SYSTEM, knownTag, asVictimWithLogin);
        expect(victims.body.status, JSON.stringify(victims.body)).toBe('READY');
        const mirror = await fake({ images: { 'attacker/mirror:1': knownImage } });
        const mirrorTag = `${mirror.host}/attacker/mirror:1`;
        const answer = await pullUntilDone(gateway.url, SYSTEM, mirrorTag, asAttacker, 120_000);
        expect(answer.body.status, JSON.stringify(answer.body)).toBe('READY');
        expect(answer.body.id).toBe(knownImage.digest.slice(7));
        expect(answer.body.tag).toEqual([mirrorTag]);
        // Ranged requests only: the cached copy was compared, not downloaded again.
        const blobRequests = mirror.requests.filter((request) =>
          request.path.endsWith(`/blobs/${knownImage.layers[0]!.digest}`),
        );
        expect(blobRequests.length).toBeGreaterThan(0);
        expect(blobRequests.every((request) => request.range !== undefined)).toBe(true);
        // The mirror proved the content public: the file is public now, the victim's tag is not.
        expect((await lookup(asAttacker, knownTag)).status).toBe(404);
        expect((await lookup(asVictim, knownTag)).body.tag).toEqual([knownTag, mirrorTag]);
        expect(metaOf(answer.body.id).userACL ?? []).toEqual([]);
        await victimIntact();
      });
    });

    describe('2: access belongs to a tag at a location', () => {
      const plain = () => serviceValue('registry');
      const basic = () => serviceValue('registryBasic');

      it('a public tag stays public for every client when identical content is pulled privately from another registry', async () => {
        const publicTag = `${plain()}/test/busybox:latest`;
        const privateTag = `${basic()}/test/busybox:latest`;
        const pub = await pullUntilDone(gateway.url, SYSTEM, publicTag, asAttacker);
        expect(pub.body.status, JSON.stringify(pub.body)).toBe('READY');
        const priv = await pullUntilDone(gateway.url, SYSTEM, privateTag, credential(victim, { default: basicLogin }));
        expect(priv.body.status, JSON.stringify(priv.body)).toBe('READY');
        expect(priv.body.id).toBe(pub.body.id);
        expect(priv.body.userACL).toEqual([]); // the victim sees the public tag too, so the record they see is public
        for (const anyone of [asAttacker, asVictim]) {
          const found = await lookup(anyone, publicTag);
          expect(found.status).toBe(200);
          expect(found.body).toMatchObject({ userACL: [], groupACL: [] });
        }
        expect((await lookup(asAttacker, publicTag)).body.tag).toEqual([publicTag]);
        expect((await lookup(asAttacker, privateTag)).status).toBe(404);
        expect((await list(asAttacker)).flatMap((image) => image.tag)).not.toContain(privateTag);
        expect((await lookup(asVictim, privateTag)).body.tag).toEqual([publicTag, privateTag]);
        expect(metaOf(pub.body.id).userACL ?? []).toEqual([]);
        expect(modeOf(pub.body.id)).toBe(0o644);
        await victimIntact();
      });

      it('a private tag stays hidden when identical content is later pulled publicly; the public puller gets the image', async () => {
        const privateTag = `${basic()}/test/whiteout:latest`;
        const publicTag = `${plain()}/test/whiteout:latest`;
        const priv = await pullUntilDone(gateway.url, SYSTEM, privateTag, credential(victim, { default: basicLogin }));
        expect(priv.body.status, JSON.stringify(priv.body)).toBe('READY');
        expect(metaOf(priv.body.id).userACL).toEqual([victimUid]);
        expect(modeOf(priv.body.id)).toBe(0o600);
        expect((await lookup(asAttacker, privateTag)).status).toBe(404);
        const pub = await pullUntilDone(gateway.url, SYSTEM, publicTag, asAttacker);
        expect(pub.body.status, JSON.stringify(pub.body)).toBe('READY');
        expect(pub.body.tag).toEqual([publicTag]);
        expect((await lookup(asAttacker, privateTag)).status).toBe(404);
        expect((await list(asAttacker)).flatMap((image) => image.tag)).not.toContain(privateTag);
        expect((await lookup(asVictim, privateTag)).status).toBe(200);
        // The public pull proved the content public: the file is, the victim's tag is not.
        expect(metaOf(pub.body.id).userACL ?? []).toEqual([]);
        expect(modeOf(pub.body.id)).toBe(0o644);
        await victimIntact();
      });

      it('identical imports in both directions: a public import stays public, a private one stays hidden', async () => {
        const source = join(dir, `import-src-${run}`);
        mkdirSync(join(source, 'etc'), { recursive: true });
        const squash = (name: string, content: string) => {
          writeFileSync(join(source, 'etc', 'hello'), content);
          const file = join(dir, `${name}.squashfs`);
          execFileSync('mksquashfs', [source, file, '-noappend', '-quiet', '-no-progress', '-all-root']);
          return file;
        };
        const ownedCopy = (file: string, user: string, uid: number) => {
          const copy = `${file}.${user}`;
          copyFileSync(file, copy);
          chownSync(copy, uid, uid);
          chmodSync(copy, 0o600);
          return copy;
        };
        // Public first, then a private import of the same bytes by the other user.
        const first = squash('first', `first ${run}\n`);
        const pub = await postUntilDone('doimport', 'custom', `pub-${run}`, asAttacker, {
          filepath: ownedCopy(first, attacker, attackerUid),
        });
        expect(pub.body.status, JSON.stringify(pub.body)).toBe('READY');
        const priv = await postUntilDone('doimport', 'custom', `priv-${run}`, asVictim, {
          filepath: ownedCopy(first, victim, victimUid),
          allowed_uids: String(victimUid),
        });
        expect(priv.body.status, JSON.stringify(priv.body)).toBe('READY');
        expect(priv.body.id).toBe(pub.body.id);
        expect((await lookup(asAttacker, `pub-${run}`, 'custom')).body).toMatchObject({ status: 'READY', userACL: [] });
        expect((await lookup(asAttacker, `priv-${run}`, 'custom')).status).toBe(404);
        expect(metaOf(pub.body.id).userACL ?? []).toEqual([]);
        expect(modeOf(pub.body.id)).toBe(0o644);
        // Private first, then a public import of the same bytes.
        const second = squash('second', `second ${run}\n`);
        const priv2 = await postUntilDone('doimport', 'custom', `priv2-${run}`, asVictim, {
          filepath: ownedCopy(second, victim, victimUid),
          allowed_uids: String(victimUid),
        });
        expect(priv2.body.status, JSON.stringify(priv2.body)).toBe('READY');
        expect(metaOf(priv2.body.id).userACL).toEqual([victimUid]);
        expect((await lookup(asAttacker, `priv2-${run}`, 'custom')).status).toBe(404);
        const pub2 = await postUntilDone('doimport', 'custom', `pub2-${run}`, asAttacker, {
          filepath: ownedCopy(second, attacker, attackerUid),
        });
        expect(pub2.body.status, JSON.stringify(pub2.body)).toBe('READY');
        expect(pub2.body.tag).toEqual([`pub2-${run}:latest`]);
        expect((await lookup(asAttacker, `priv2-${run}`, 'custom')).status).toBe(404);
        expect((await list(asAttacker)).flatMap((image) => image.tag)).not.toContain(`priv2-${run}:latest`);
        expect((await lookup(asVictim, `priv2-${run}`, 'custom')).status).toBe(200);
        await victimIntact();
      });
    });

    describe('4: denial by failing first', () => {
      it('a first-failing unauthenticated POST does not deny the tag to an authenticated one', async () => {
        const tag = `${serviceValue('registryBasic')}/test/multiarch:latest`;
        const failed = await pullUntilDone(gateway.url, SYSTEM, tag, asAttacker, 120_000);
        expect(failed.body.status).toBe('FAILURE');
        expect(failed.body.code).toBe('SHIFTER_REGISTRY_AUTH_FAILED');
        // Within the failure's hold time, the victim's POST with a login starts an attempt of its own.
        const first = await call(gateway.url, 'POST', path('pull', 'docker', tag), {
          credential: await credential(victim, { default: basicLogin })(),
        });
        expect(first.body.status).not.toBe('FAILURE');
        const done = await pullUntilDone(gateway.url, SYSTEM, tag, credential(victim, { default: basicLogin }));
        expect(done.body.status, JSON.stringify(done.body)).toBe('READY');
        // The attacker still gets only their own failure, and never the victim's image.
        expect(
          (await call(gateway.url, 'POST', path('pull', 'docker', tag), { credential: await asAttacker() })).body.code,
        ).toBe('SHIFTER_REGISTRY_AUTH_FAILED');
        expect((await lookup(asAttacker, tag)).status).toBe(404);
        await victimIntact();
      });

      it('an in-flight anonymous attempt is not joined by a caller with a login', async () => {
        const tag = `${serviceValue('registryBasic')}/test/weird:latest`;
        const anonymous = await call(gateway.url, 'POST', path('pull', 'docker', tag), {
          credential: await asAttacker(),
        });
        expect(anonymous.status).toBe(200);
        const done = await pullUntilDone(gateway.url, SYSTEM, tag, credential(victim, { default: basicLogin }));
        expect(done.body.status, JSON.stringify(done.body)).toBe('READY');
        await victimIntact();
      });
    });

    describe('6: what outsiders see', () => {
      it('every route read as an outsider during a private pull shows nothing of it', async () => {
        const slowTag = `${victimRegistry.host}/victim/slow:1`;
        const layerHex = slowImage.layers[0]!.digest.slice(7);
        const held = victimRegistry.hold();
        const started = await call(gateway.url, 'POST', path('pull', 'docker', slowTag), {
          credential: await asVictimWithLogin(),
        });
        expect(started.status).toBe(200);
        await held;
        // The victim's pull is now waiting for its layer; the victim sees it in flight.
        const mine = await call(gateway.url, 'GET', `/api/queue/${SYSTEM}/`, { credential: await asVictim() });
        expect(mine.body.list.map((entry: { image: string }) => entry.image)).toContain(slowTag);

        const outsider = async (method: string, route: string, body?: unknown) => {
          const answer = await call(gateway.url, method, route, {
            credential: await asAttacker(),
            ...(body ? { body } : {}),
          });
          const text = JSON.stringify(answer.body);
          expect(text, route).not.toContain(layerHex);
          expect(text, route).not.toContain('victim/slow');
          expect(text, route).not.toContain('victim/secret');
          return answer;
        };
        const anonymousRoutes = ['/api/status', '/api/openapi.json'];
        for (const route of anonymousRoutes) expect((await call(gateway.url, 'GET', route)).status).toBe(200);
        const metrics = await fetch(`${gateway.url}/metrics`);
        expect(await metrics.text()).not.toContain('victim');
        expect((await outsider('GET', `/api/queue/${SYSTEM}/`)).body.list).toEqual([]);
        expect((await outsider('GET', `/api/list/${SYSTEM}/`)).status).toBe(200);
        expect(
          (
            await outsider(
              'GET',
              path('lookup', 'docker', slowTag).replace(
                encodeURIComponent(slowTag),
                encodeURIComponent('127.0.0.1:1/x/y:1'),
              ),
            )
          ).status,
        ).toBe(404);
        expect((await outsider('GET', `/api/metrics/${SYSTEM}/`)).status).toBe(403);
        expect((await outsider('GET', `/api/autoexpire/${SYSTEM}/`)).status).toBe(403);
        // The tag itself, as the outsider would probe it: lookup, expire, pull (their own attempt, which fails).
        const probe = await call(gateway.url, 'GET', path('lookup', 'docker', slowTag), {
          credential: await asAttacker(),
        });
        expect(probe.status).toBe(404);
        expect(JSON.stringify(probe.body)).not.toContain(layerHex);
        expect(
          (await call(gateway.url, 'GET', path('expire', 'docker', slowTag), { credential: await asAttacker() }))
            .status,
        ).toBe(403);
        const post = await call(gateway.url, 'POST', path('pull', 'docker', slowTag), {
          credential: await asAttacker(),
        });
        expect(post.status).toBe(200);
        expect(post.body.userACL).toEqual([attackerUid]);
        expect(post.body.id).toBe('MISSING');
        expect(['INIT', 'PENDING', 'PULLING', 'FAILURE']).toContain(post.body.status);
        expect(JSON.stringify(post.body)).not.toContain(layerHex);
        expect(JSON.stringify(post.body)).not.toContain(String(victimUid));
        const theirs = await pullUntilDone(gateway.url, SYSTEM, slowTag, asAttacker, 120_000);
        expect(theirs.body.code).toBe('SHIFTER_REGISTRY_AUTH_FAILED');
        expect(JSON.stringify(theirs.body)).not.toContain(layerHex);
        // Someone else with another (wrong) login for the victim's registry: their own attempt, their own failure.
        const wrong = await pullUntilDone(
          gateway.url,
          SYSTEM,
          slowTag,
          credential(attacker, { default: 'victim:guess' }),
          120_000,
        );
        expect(wrong.body.code).toBe('SHIFTER_REGISTRY_AUTH_FAILED');
        expect(JSON.stringify(wrong.body)).not.toContain(layerHex);
        expect(
          (await outsider('GET', `/api/queue/${SYSTEM}/`)).body.list.map((entry: { image: string }) => entry.image),
        ).not.toContain(slowTag);

        victimRegistry.release();
        const done = await pullUntilDone(gateway.url, SYSTEM, slowTag, asVictimWithLogin);
        expect(done.body.status, JSON.stringify(done.body)).toBe('READY');
        expect((await lookup(asAttacker, slowTag)).status).toBe(404);
        expect(JSON.stringify(await list(asAttacker))).not.toContain('victim/slow');
        expect(existsSync(join(imageDir, `${done.body.id}.squashfs`))).toBe(true);
        await victimIntact();
      });
    });
  });
}
