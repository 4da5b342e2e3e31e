/**
 * `shifter-gateway migrate-upstream` as a site would run it: upstream's MongoDB (FerretDB, seeded from
 * test/fixtures/upstream in upstream's schema) and an image directory of upstream-format `<id>.squashfs` (built with
 * mksquashfs) + `<id>.meta` files. After the migration the real gateway lists and looks up the images and the setuid
 * runtime runs them as the unprivileged test users; a second run changes nothing, a dry run writes nothing, odd and
 * hostile records are skipped with their reasons, and upstream's collections are left as they were. Both store
 * backends: SQLite, and MongoDB in the very database upstream uses (the collection names never meet).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GatewayClient, ShifterError, type MigrationReport } from '@shifter/core';
import { MongoMetadataStore } from '@shifter/core/mongo';
import { freePort, haveRoot, haveServices, serviceValue } from '@shifter/core/testing';
import { Double, MongoClient, ObjectId } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeEnv, startGatewayOn } from './runtime-env.js';

const execFileAsync = promisify(execFile);
const ready = haveServices('mongo', 'munge', 'user') && haveRoot();
const SYSTEM = 'testsys';
const fixtures = fileURLToPath(new URL('../../../gateway/test/fixtures/upstream/', import.meta.url));
const GATEWAY_CLI = fileURLToPath(new URL('../../../gateway/src/cli.ts', import.meta.url));
const NODE_ARGS = ['--conditions=@shifter/source', '--import', import.meta.resolve('tsx')];

/** The fixtures' MongoDB Extended JSON: `{"$oid"}` is an ObjectId, `{"$numberDouble"}` a double (as Python writes floats). */
function readFixture(name: string): Record<string, unknown>[] {
  return JSON.parse(readFileSync(join(fixtures, name), 'utf8'), (_key, value: unknown) => {
    if (value && typeof value === 'object' && '$oid' in value) return new ObjectId((value as { $oid: string }).$oid);
    if (value && typeof value === 'object' && '$numberDouble' in value)
      return new Double(Number((value as { $numberDouble: string }).$numberDouble));
    return value;
  }) as Record<string, unknown>[];
}
const upstreamImages = () => readFixture('images.json');
const upstreamMetrics = () => readFixture('metrics.json');
/** Documents as text with every BSON type named (Int32 1 and Double 1.0 differ), to compare before and after. */
const ejson = (documents: unknown[]) =>
  JSON.stringify(documents, function (this: Record<string, unknown>, key: string, value: unknown) {
    const raw = this[key] as { _bsontype?: string; toString(): string } | undefined;
    return raw && typeof raw === 'object' && raw._bsontype ? `${raw._bsontype}:${raw.toString()}` : value;
  });

const idOf = (tag: string) =>
  upstreamImages().find((d) => (Array.isArray(d.tag) ? d.tag.includes(tag) : d.tag === tag))!.id as string;

/** An upstream-made image: a busybox root squashed with upstream's options, and its `.meta` in upstream's format. */
function writeUpstreamImage(dir: string, work: string, id: string, meta: string, marker: string): void {
  const root = join(work, `root-${id.slice(0, 8)}`);
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'etc'));
  execFileSync('cp', ['/usr/bin/busybox', join(root, 'bin', 'busybox')]);
  for (const applet of ['sh', 'echo', 'cat', 'id', 'pwd']) symlinkSync('busybox', join(root, 'bin', applet));
  writeFileSync(join(root, 'marker'), `${marker}\n`);
  // Upstream: `mksquashfs <expanded> <out> -all-root -no-xattrs`, files 0600 in the image directory (transfer.py).
  execFileSync('mksquashfs', [
    root,
    join(dir, `${id}.squashfs`),
    '-all-root',
    '-no-xattrs',
    '-noappend',
    '-quiet',
    '-no-progress',
  ]);
  chmodSync(join(dir, `${id}.squashfs`), 0o600);
  writeFileSync(join(dir, `${id}.meta`), meta, { mode: 0o644 });
}

const backends = [
  { name: 'SQLite store', mongo: false },
  { name: "MongoDB store in upstream's own database", mongo: true },
];

describe.skipIf(!ready)('migrate-upstream: an upstream site moves to this gateway', () => {
  let env: RuntimeEnv;
  let mongo: MongoClient;
  let user: string;
  let user2: string;
  const databases: string[] = [];

  beforeAll(async () => {
    user = serviceValue('user');
    user2 = process.env.SHIFTER_TEST_USER2 ?? 'shiftertest2';
    // The fixtures name the harness users' ids (upstream stores numeric ACLs).
    expect(Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }))).toBe(2001);
    env = new RuntimeEnv();
    const work = join(env.dir, 'upstream-build');
    mkdirSync(work);
    const dir = env.imagePath;
    writeUpstreamImage(
      dir,
      work,
      idOf('migrated/public:1'),
      "FORMAT: squashfs\nCMD: ['/bin/sh']\nWORKDIR: /\nENV: PATH=/bin:/usr/bin\nENV: GREETING=from upstream\n",
      'public',
    );
    writeUpstreamImage(
      dir,
      work,
      idOf('migrated/private:1'),
      "FORMAT: squashfs\nENTRY: ['/bin/sh', '-c']\nCMD: ['echo private']\nWORKDIR: /\nUSERACL: 2001\nENV: PATH=/bin\n",
      'private',
    );
    writeUpstreamImage(dir, work, idOf('mine:latest'), 'FORMAT: squashfs\nUSER: alice\n', 'imported');
    writeUpstreamImage(
      dir,
      work,
      idOf('legacy/old:1'),
      "FORMAT: squashfs\nCMD: [u'/bin/sh']\nENV: PATH=/bin\n",
      'legacy',
    );
    // odd/symlink:1 is a symlink to a real image; odd/notsquashfs:1 is not a squashfs file; gone/missing:1 has no file.
    symlinkSync(`${idOf('migrated/public:1')}.squashfs`, join(dir, `${idOf('odd/symlink:1')}.squashfs`));
    writeFileSync(join(dir, `${idOf('odd/symlink:1')}.meta`), 'FORMAT: squashfs\n');
    writeFileSync(join(dir, `${idOf('odd/notsquashfs:1')}.squashfs`), 'not an image');
    writeFileSync(join(dir, `${idOf('odd/notsquashfs:1')}.meta`), 'FORMAT: squashfs\n');
    mongo = await MongoClient.connect(serviceValue('mongo'), { serverSelectionTimeoutMS: 5000 });
  }, 300_000);

  afterAll(async () => {
    for (const name of databases)
      await mongo
        ?.db(name)
        .dropDatabase()
        .catch(() => undefined);
    await mongo?.close();
    env?.cleanup();
  });

  for (const backend of backends) {
    describe(backend.name, () => {
      let database: string;
      let configFile: string;
      let state: string;
      let port: number;

      /** Run `shifter-gateway migrate-upstream` on this backend's config; the report and the exit status. */
      async function migrate(...extra: string[]): Promise<{ report: MigrationReport; text: string }> {
        const args = [...NODE_ARGS, GATEWAY_CLI, 'migrate-upstream', '--config', configFile];
        args.push('--mongo-url', serviceValue('mongo'), '--mongo-database', database, ...extra);
        const json = await execFileAsync(process.execPath, [...args, '--json']);
        return { report: JSON.parse(json.stdout) as MigrationReport, text: json.stderr };
      }

      const snapshot = async () => ({
        images: ejson(
          await mongo.db(database).collection('images').find({}, { promoteValues: false }).sort({ _id: 1 }).toArray(),
        ),
        metrics: ejson(
          await mongo.db(database).collection('metrics').find({}, { promoteValues: false }).sort({ _id: 1 }).toArray(),
        ),
      });

      beforeAll(async () => {
        database = `drmig${backend.mongo ? 'm' : 's'}${process.pid}`;
        databases.push(database);
        await mongo.db(database).collection('images').insertMany(upstreamImages());
        await mongo.db(database).collection('metrics').insertMany(upstreamMetrics());
        state = join(env.dir, `gateway-${backend.mongo ? 'mongo' : 'sqlite'}`);
        mkdirSync(state, { mode: 0o700 });
        port = await freePort();
        configFile = join(state, 'gateway.json');
        writeFileSync(
          configFile,
          JSON.stringify({
            gateway: { host: '127.0.0.1', port },
            storage: { cacheDir: join(state, 'cache'), expandDir: join(state, 'expand') },
            systems: {
              [SYSTEM]: {
                transfer: { kind: 'local', imageDir: env.imagePath },
                mungeSocketPath: serviceValue('munge'),
                admins: ['root'],
              },
            },
            metadata: backend.mongo
              ? { kind: 'mongo', url: serviceValue('mongo'), database }
              : { kind: 'sqlite', path: join(state, 'gateway.db') },
            queue: { kind: 'in-process', concurrency: 1 },
            metrics: true,
            logLevel: 'warn',
          }),
        );
      }, 120_000);

      it('a dry run reports what it would take and skip, and writes nothing', async () => {
        const before = await snapshot();
        const { report } = await migrate('--dry-run');
        expect(report.dryRun).toBe(true);
        expect(report.images.taken.map((image) => image.tags.join(',')).sort()).toEqual([
          'legacy/old:1',
          'migrated/private:1',
          'migrated/public:1,migrated/public:latest',
          'mine:latest',
        ]);
        expect(report.metrics.taken).toBe(3);
        expect(await snapshot()).toEqual(before);
        const store = backend.mongo
          ? await MongoMetadataStore.connect({ url: serviceValue('mongo'), database })
          : new (await import('@shifter/core')).SqliteMetadataStore({ path: join(state, 'gateway.db') });
        try {
          expect(await store.list()).toEqual([]);
          expect(await store.listLookupMetrics(SYSTEM, 100)).toEqual([]);
        } finally {
          await store.close();
        }
      });

      it('takes the READY images and metrics, skips odd and hostile records with reasons, leaves upstream untouched', async () => {
        const before = await snapshot();
        const { report } = await migrate();
        expect(report.dryRun).toBe(false);
        const taken = Object.fromEntries(report.images.taken.map((image) => [image.tags[0], image]));
        expect(Object.keys(taken).sort()).toEqual([
          'legacy/old:1',
          'migrated/private:1',
          'migrated/public:1',
          'mine:latest',
        ]);
        expect(taken['migrated/private:1']).toMatchObject({ private: true, imageId: idOf('migrated/private:1') });
        expect(taken['migrated/public:1']).toMatchObject({ private: false });
        expect(taken['mine:latest']).toMatchObject({ itype: 'custom', private: false });
        const reasons = Object.fromEntries(
          report.images.skipped.map((skip) => [skip.tags.join(',') || skip.upstreamId, skip.reason]),
        );
        expect(reasons['evil/traversal:1']).toMatch(/is not a hexadecimal id/);
        expect(reasons['gone/missing:1']).toMatch(/\.squashfs is missing$/);
        expect(reasons['odd/symlink:1']).toMatch(/is not a regular file$/);
        expect(reasons['odd/notsquashfs:1']).toMatch(/is not a squashfs image$/);
        expect(reasons['broken/acl:1']).toMatch(/userACL holds "root", not an id/);
        expect(reasons['elsewhere:1']).toMatch(/system "othersys" is not configured/);
        expect(reasons['failed/pull:1']).toMatch(/^status FAILURE/);
        expect(Object.values(reasons).some((reason) => reason.startsWith('status PULLING'))).toBe(true);
        expect(report.images.skipped).toHaveLength(8);
        expect(report.metrics).toMatchObject({ taken: 3, unchanged: 0 });
        expect(report.metrics.skipped.map((skip) => skip.reason).sort()).toEqual([
          'not a metrics row of upstream (user, uid, system, type, tag, id, time)',
          'system "othersys" is not configured on this gateway',
        ]);
        // Rollback is upstream's own database, untouched.
        expect(await snapshot()).toEqual(before);
      });

      it('a second run changes nothing', async () => {
        const { report } = await migrate();
        expect(report.images.taken).toEqual([]);
        expect(report.images.unchanged.map((image) => image.tags[0]).sort()).toEqual([
          'legacy/old:1',
          'migrated/private:1',
          'migrated/public:1',
          'mine:latest',
        ]);
        expect(report.metrics).toMatchObject({ taken: 0, unchanged: 3 });
      });

      it("the gateway lists and looks up the migrated images, with upstream's access, expiry and metrics", async () => {
        const gateway = await startGatewayOn(configFile, port);
        try {
          const credentialOf = async (as: string) =>
            (
              await execFileAsync('runuser', ['-u', as, '--', 'munge', '--socket', serviceValue('munge'), '--no-input'])
            ).stdout.trim();
          const client = (as: string) =>
            new GatewayClient({
              urls: [gateway.url],
              system: SYSTEM,
              timeoutMs: 30_000,
              authenticate: () => credentialOf(as),
            });
          const listed = (await client(user).list()).flatMap((image) => image.tag).sort();
          expect(listed).toEqual([
            'legacy/old:1',
            'migrated/private:1',
            'migrated/public:1',
            'migrated/public:latest',
            'mine:latest',
          ]);
          expect((await client(user2).list()).flatMap((image) => image.tag)).not.toContain('migrated/private:1');
          const publicImage = await client(user2).lookup('docker', 'migrated/public:latest');
          expect(publicImage).toMatchObject({
            id: idOf('migrated/public:1'),
            status: 'READY',
            ENV: ['PATH=/bin:/usr/bin', 'GREETING=from upstream'],
            userACL: [],
          });
          expect(publicImage.last_pull).toBe(1_700_000_000);
          expect((await client(user).lookup('docker', 'migrated/private:1')).userACL).toEqual([2001]);
          await expect(client(user2).lookup('docker', 'migrated/private:1')).rejects.toMatchObject({
            code: 'SHIFTER_IMAGE_NOT_FOUND',
          });
          expect((await client(user).lookup('custom', 'mine')).id).toBe(idOf('mine:latest'));
          expect((await client(user).lookup('docker', 'legacy/old:1')).id).toBe(idOf('legacy/old:1'));
          // Upstream's lookup metrics came along (the lookups above add theirs after them).
          const rootCredential = async () =>
            (await execFileAsync('munge', ['--socket', serviceValue('munge'), '--no-input'])).stdout.trim();
          const metrics = await fetch(`${gateway.url}/api/metrics/${SYSTEM}/?limit=100`, {
            headers: { authentication: await rootCredential() },
          });
          const rows = (await metrics.json()) as { tag: string; time: number }[];
          expect(rows.slice(0, 3).map((row) => [row.tag, row.time])).toEqual([
            ['migrated/public:1', 1_700_000_200.5],
            ['migrated/private:1', 1_700_000_300.25],
            ['migrated/public:latest', 1_700_000_400],
          ]);

          // The setuid runtime resolves the migrated tags through this gateway and runs the upstream-made images.
          env.writeConf(`imageGateway=${gateway.url}\nsystem=${SYSTEM}\ndefaultImageType=docker\ngatewayTimeout=30\n`);
          const run = await env.runAs(user2, [
            '--image=docker:migrated/public:1',
            'sh',
            '-c',
            'cat /marker; echo "$GREETING"',
          ]);
          expect(run.stderr).toBe('');
          expect(run.stdout).toBe('public\nfrom upstream\n');
          expect((await env.runAs(user, ['--image=custom:mine', 'cat', '/marker'])).stdout).toBe('imported\n');
          expect((await env.runAs(user, ['--image=legacy/old:1', 'cat', '/marker'])).stdout).toBe('legacy\n');
          const own = await env.runAs(user, ['--image=migrated/private:1', '--entrypoint']);
          expect(own.stdout).toBe('private\n');
          // The other user: the gateway does not show the private tag, and the runtime refuses its id (.meta ACL).
          expect((await env.runAs(user2, ['--image=migrated/private:1', 'cat', '/marker'])).status).toBe(66);
          const byId = await env.runAs(user2, [`--image=id:${idOf('migrated/private:1')}`, 'cat', '/marker']);
          expect(byId.status).toBe(77);
          expect(byId.stdout).toBe('');
        } finally {
          await gateway.stop();
        }
      }, 120_000);

      if (backend.mongo) {
        it("the store refuses to start on upstream-shaped documents (when its collections would be upstream's)", async () => {
          const refused = await MongoMetadataStore.connect({
            url: serviceValue('mongo'),
            database,
            collectionPrefix: '',
          }).then(
            async (store) => {
              await store.close();
              return null;
            },
            (error: unknown) => error,
          );
          expect(ShifterError.isInstance(refused)).toBe(true);
          expect(refused).toMatchObject({ code: 'SHIFTER_STORE_FOREIGN_DATA', exitCode: 78 });
          const names = (await mongo.db(database).listCollections().toArray()).map((c) => c.name);
          expect(names).toEqual(expect.arrayContaining(['images', 'metrics', 'shifter_images', 'shifter_metrics']));
        });
      }
    });
  }
});
