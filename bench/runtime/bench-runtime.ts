/**
 * Runtime start-up benchmark: `shifter --image=id:… /bin/true` as the unprivileged test user, against `ch-run` on the
 * very same squashfs (SquashFUSE) and a bare `runuser … /bin/true` baseline, all measured in the same run with the
 * variants interleaved (so drift hits all alike). Variants: the minimal udiRoot.conf, a site-like one (siteFs, siteEnv,
 * a module with copyPath and env), the reuse path after setupRoot, and the tag lookup through a local gateway.
 *
 * With the harness's registry and munged available, a last variant resolves the tag through the real gateway
 * (`shifter-gateway serve`, SQLite store) after pulling the image through it.
 *
 * The https variants repeat both lookups over TLS (a test CA made here with `openssl`, `gatewayCaPath` naming it; the
 * real gateway fronted by a node:tls proxy), and with `gatewayCaPath` holding the whole system CA bundle plus the
 * test CA (one PEM file, the cost of a large trust store) or a hashed directory of the same anchors. With BENCH_RUNTIME_COMPARE_REV=<git revision>, the runtime of that revision
 * is built too and its `id:` start-up measured alongside (e.g. a revision from before OpenSSL was linked).
 *
 * Run as root: `bash bench/runtime/run.sh [runs]` (needs the harness fixtures and the test user; sets /dev/fuse to
 * 0666 for ch-run as documented in docs/runtime.md and puts the old mode back at the end).
 * Prints a table of medians and the ratios; writes the raw numbers to bench/out/runtime.json.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GatewayClient } from '@shifter/core';
import { RuntimeEnv } from '../../packages/udiroot-native/test/integration/runtime-env.js';

const runs = Number(process.argv[2] ?? 100);
const user = process.env.SHIFTER_TEST_USER ?? 'shiftertest';
const fixtures = process.env.SHIFTER_TEST_FIXTURES;
if (!fixtures) throw new Error('SHIFTER_TEST_FIXTURES is not set (source .state/harness.env)');
if (process.getuid?.() !== 0) throw new Error('run as root');

function once(program: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.once('close', (status) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (status !== 0) reject(new Error(`${program} ${args.join(' ')} exited ${status}: ${stderr}`));
      else resolve(ms);
    });
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const env = new RuntimeEnv();
const fuseMode = statSync('/dev/fuse').mode & 0o7777;
try {
  chmodSync('/dev/fuse', 0o666);
  const id = await env.addFixture(fixtures, 'busybox', 'latest');
  const sqfs = join(env.dir, 'same-image.sqfs');
  copyFileSync(join(env.imagePath, `${id}.squashfs`), sqfs);
  chmodSync(sqfs, 0o644);

  // Site-like configuration: two site file systems, site environment edits and a default module.
  const site = join(env.dir, 'site');
  mkdirSync(join(site, 'global'), { recursive: true });
  mkdirSync(join(site, 'project'), { recursive: true });
  mkdirSync(join(site, 'mpich', 'lib'), { recursive: true });
  writeFileSync(join(site, 'mpich', 'lib', 'libmpi.so.12'), 'not really a library\n');
  const siteConf =
    `siteFs=${site}/global:/global;${site}/project:/project:ro\n` +
    'siteEnv=SHIFTER_RUNTIME=1\nsiteEnvAppend=PATH=/opt/udiImage/bin\nsiteEnvUnset=TMOUT\n' +
    `module_mpich_copyPath=${site}/mpich\nmodule_mpich_siteEnvPrepend=LD_LIBRARY_PATH=/opt/udiImage/modules/mpich/lib\n` +
    'defaultModules=mpich\n';

  // Gateway double for the lookup variant (answers like /api/lookup; munge is checked by the integration tests).
  const gateway = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'READY', id }));
  });
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
  const gatewayLine = `imageGateway=http://127.0.0.1:${(gateway.address() as AddressInfo).port}\nsystem=bench\n`;

  // TLS: a test CA and a server certificate for 127.0.0.1 (P-256, as a site would issue today).
  const tlsDir = join(env.dir, 'tls');
  mkdirSync(tlsDir, { mode: 0o755 });
  const pem = (name: string) => join(tlsDir, name);
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
      '/CN=bench CA',
      '-keyout',
      pem('ca-key.pem'),
      '-out',
      pem('ca.pem'),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
    ],
    { stdio: 'pipe' },
  );
  writeFileSync(pem('server.ext'), 'subjectAltName=IP:127.0.0.1\n');
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
      '/CN=gateway',
      '-keyout',
      pem('server-key.pem'),
      '-out',
      pem('server.csr'),
    ],
    { stdio: 'pipe' },
  );
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      pem('server.csr'),
      '-CA',
      pem('ca.pem'),
      '-CAkey',
      pem('ca-key.pem'),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      pem('server.ext'),
      '-out',
      pem('server.pem'),
    ],
    { stdio: 'pipe' },
  );
  writeFileSync(
    pem('bundle.pem'),
    readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8') + readFileSync(pem('ca.pem'), 'utf8'),
  );
  for (const name of ['ca.pem', 'bundle.pem']) chmodSync(pem(name), 0o644);
  // The same anchors as a hashed directory (as /etc/ssl/certs is), read lazily.
  mkdirSync(pem('ca-dir'), { mode: 0o755 });
  execFileSync('sh', [
    '-c',
    `cp /etc/ssl/certs/*.pem ${pem('ca-dir')}/ 2>/dev/null; cp ${pem('ca.pem')} ${pem('ca-dir')}/bench-ca.pem; openssl rehash ${pem('ca-dir')}`,
  ]);
  const tlsOptions = { key: readFileSync(pem('server-key.pem')), cert: readFileSync(pem('server.pem')) };
  const httpsGateway = createHttpsServer(tlsOptions, (request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'READY', id }));
  });
  await new Promise<void>((resolve) => httpsGateway.listen(0, '127.0.0.1', resolve));
  const httpsUrl = `https://127.0.0.1:${(httpsGateway.address() as AddressInfo).port}`;
  const httpsLine = `imageGateway=${httpsUrl}\nsystem=bench\ngatewayCaPath=${pem('ca.pem')}\n`;
  const httpsBundleLine = `imageGateway=${httpsUrl}\nsystem=bench\ngatewayCaPath=${pem('bundle.pem')}\n`;
  const httpsDirLine = `imageGateway=${httpsUrl}\nsystem=bench\ngatewayCaPath=${pem('ca-dir')}\n`;
  const proxySockets: Socket[] = [];
  let tlsProxy: ReturnType<typeof createTlsServer> | undefined;

  // Optionally the runtime of another revision, for its id: start-up on the same configuration.
  const compareRev = process.env.BENCH_RUNTIME_COMPARE_REV;
  let compareShifter: string | undefined;
  if (compareRev) {
    const src = join(env.dir, 'compare-src');
    mkdirSync(src);
    execFileSync('sh', ['-c', `git archive ${compareRev} packages/udiroot-native/native | tar -x -C ${src}`]);
    const prefix = join(env.dir, 'compare');
    execFileSync(
      'make',
      [
        '-s',
        '-C',
        join(src, 'packages/udiroot-native/native'),
        `BUILD=${join(env.dir, 'compare-build')}`,
        `CONFIG_FILE=${env.confPath}`,
        'install',
        `PREFIX=${prefix}`,
      ],
      { stdio: 'pipe' },
    );
    compareShifter = join(prefix, 'bin', 'shifter');
  }

  // The real gateway (optional): pull through it, then look the tag up from shifter.
  let realGateway: ChildProcess | undefined;
  const gatewayOnly: number[] = [];
  let realLine: string | undefined;
  let realTlsLine: string | undefined;
  const registry = process.env.SHIFTER_TEST_REGISTRY;
  const mungeSocket = process.env.SHIFTER_TEST_MUNGE_SOCKET;
  const realTag = `${registry}/test/busybox:latest`;
  if (registry && mungeSocket) {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const state = join(env.dir, 'gateway');
    mkdirSync(state, { recursive: true, mode: 0o700 });
    writeFileSync(
      join(state, 'gateway.json'),
      JSON.stringify({
        gateway: { host: '127.0.0.1', port },
        storage: { cacheDir: join(state, 'cache'), expandDir: join(state, 'expand') },
        systems: {
          bench: {
            transfer: { kind: 'local', imageDir: env.imagePath },
            mungeSocketPath: mungeSocket,
            admins: ['root'],
          },
        },
        // The harness registry is no configured location (allowedRegistries defaults to "configured").
        allowedRegistries: 'any',
        metadata: { kind: 'sqlite', path: join(state, 'gateway.db') },
        queue: { kind: 'in-process', concurrency: 2 },
        logLevel: 'warn',
      }),
    );
    const bin = fileURLToPath(new URL('../../packages/gateway/bin/shifter-gateway.js', import.meta.url));
    realGateway = spawn(process.execPath, [bin, 'serve', '--config', join(state, 'gateway.json')], {
      env: { ...process.env, SHIFTER_GATEWAY_FROM_SOURCE: '1' },
      stdio: 'ignore',
    });
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`${url}/api/status`)).ok) break;
      } catch {
        // starting
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const run = promisify(execFile);
    const client = new GatewayClient({
      urls: [url],
      system: 'bench',
      timeoutMs: 120_000,
      authenticate: async (payload) =>
        (
          await run('runuser', [
            '-u',
            user,
            '--',
            'munge',
            '--socket',
            mungeSocket,
            ...(payload ? ['--string', payload] : ['--no-input']),
          ])
        ).stdout.trim(),
    });
    await client.pullAndWait('docker', realTag);
    realLine = `imageGateway=${url}\nsystem=bench\n`;
    // The same gateway behind TLS (each TLS connection becomes one TCP connection to it).
    tlsProxy = createTlsServer(tlsOptions, (socket) => {
      const upstream = connect(port, '127.0.0.1');
      proxySockets.push(socket, upstream);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
      socket.pipe(upstream).pipe(socket);
    });
    await new Promise<void>((resolve) => tlsProxy!.listen(0, '127.0.0.1', resolve));
    realTlsLine = `imageGateway=https://127.0.0.1:${(tlsProxy.address() as AddressInfo).port}\nsystem=bench\ngatewayCaPath=${pem('ca.pem')}\n`;
    // The gateway's own share: the same lookup over HTTP from here, credentials made beforehand (not timed).
    const lookupUrl = `${url}/api/lookup/bench/docker/${encodeURIComponent(realTag)}/`;
    for (let i = 0; i < Math.min(runs, 50); i++) {
      const credential = (
        await run('runuser', ['-u', user, '--', 'munge', '--socket', mungeSocket, '--no-input'])
      ).stdout.trim();
      const started = process.hrtime.bigint();
      const response = await fetch(lookupUrl, { headers: { authentication: credential } });
      await response.text();
      gatewayOnly.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
  }

  const asUser = (...command: string[]) => [
    '-u',
    user,
    '--',
    'env',
    '-i',
    'PATH=/usr/bin:/bin',
    `USER=${user}`,
    ...command,
  ];
  const variants: Record<string, { setup?: () => void; args: string[] }> = {
    'runuser /bin/true (baseline)': { args: asUser('/bin/true') },
    'ch-run IMG.sqfs -- /bin/true': { args: asUser('ch-run', sqfs, '--', '/bin/true') },
    'shifter minimal conf': {
      setup: () => env.writeConf(),
      args: asUser(env.shifter, `--image=id:${id}`, '/bin/true'),
    },
    'shifter site-like conf': {
      setup: () => env.writeConf(siteConf),
      args: asUser(env.shifter, `--image=id:${id}`, '/bin/true'),
    },
    'shifter lookup docker:tag (local gateway)': {
      setup: () => env.writeConf(gatewayLine),
      args: asUser(env.shifter, '--image=docker:busybox:latest', '/bin/true'),
    },
    'shifter lookup docker:tag (local gateway, https)': {
      setup: () => env.writeConf(httpsLine),
      args: asUser(env.shifter, '--image=docker:busybox:latest', '/bin/true'),
    },
    'shifter lookup (local gateway, https, CA bundle)': {
      setup: () => env.writeConf(httpsBundleLine),
      args: asUser(env.shifter, '--image=docker:busybox:latest', '/bin/true'),
    },
    'shifter lookup (local gateway, https, CA directory)': {
      setup: () => env.writeConf(httpsDirLine),
      args: asUser(env.shifter, '--image=docker:busybox:latest', '/bin/true'),
    },
  };
  if (compareShifter) {
    const program = compareShifter;
    variants[`shifter minimal conf (${compareRev})`] = {
      setup: () => env.writeConf(),
      args: asUser(program, `--image=id:${id}`, '/bin/true'),
    };
  }
  if (realLine) {
    const line = realLine;
    variants['shifter lookup docker:tag (real gateway)'] = {
      setup: () => env.writeConf(line),
      args: asUser(env.shifter, `--image=docker:${realTag}`, '/bin/true'),
    };
  }
  if (realTlsLine) {
    const line = realTlsLine;
    variants['shifter lookup docker:tag (real gateway, https)'] = {
      setup: () => env.writeConf(line),
      args: asUser(env.shifter, `--image=docker:${realTag}`, '/bin/true'),
    };
  }

  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (const [name, variant] of Object.entries(variants)) {
    variant.setup?.();
    await once('runuser', variant.args); // warm-up (page cache, first loop device)
    samples[name]!.length = 0;
  }
  // Interleave: one run of each variant per round.
  for (let i = 0; i < runs; i++) {
    for (const [name, variant] of Object.entries(variants)) {
      variant.setup?.();
      samples[name]!.push(await once('runuser', variant.args));
    }
  }

  // Reuse path: setupRoot once (as the prolog would), then shifter reuses the global root; interleaved with the baseline.
  env.writeConf();
  const uid = spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim();
  const gid = spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout.trim();
  const setupMs = await once(env.setupRoot, ['-u', user, '-U', uid, '-G', gid, 'id', id]);
  const reuseName = 'shifter reuse after setupRoot';
  const baseline2 = 'runuser /bin/true (baseline, reuse round)';
  samples[reuseName] = [];
  samples[baseline2] = [];
  await once('runuser', asUser(env.shifter, `--image=id:${id}`, '/bin/true'));
  for (let i = 0; i < runs; i++) {
    samples[baseline2]!.push(await once('runuser', asUser('/bin/true')));
    samples[reuseName]!.push(await once('runuser', asUser(env.shifter, `--image=id:${id}`, '/bin/true')));
  }
  const unsetupMs = await once(env.unsetupRoot, []);
  await new Promise((resolve) => gateway.close(resolve));
  await new Promise((resolve) => httpsGateway.close(resolve));
  for (const socket of proxySockets) socket.destroy();
  if (tlsProxy) await new Promise((resolve) => tlsProxy!.close(resolve));
  if (realGateway) {
    realGateway.kill('SIGTERM');
    await new Promise((resolve) => realGateway?.once('exit', resolve));
  }

  const med = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
  const base = med['runuser /bin/true (baseline)']!;
  const ch = med['ch-run IMG.sqfs -- /bin/true']!;
  console.log(`runtime start-up, ${runs} runs per variant, median wall time of runuser + command (ms)`);
  for (const [name, value] of Object.entries(med)) {
    console.log(
      `  ${name.padEnd(46)} ${value.toFixed(2).padStart(8)}  ×baseline ${(value / base).toFixed(2)}  ×ch-run ${(value / ch).toFixed(2)}`,
    );
  }
  const minimal = med['shifter minimal conf']!;
  const lookup = med['shifter lookup docker:tag (local gateway)']!;
  const reuse = med[reuseName]!;
  console.log(`shifter minimal / ch-run = ${(minimal / ch).toFixed(2)} (target <= 1.2)`);
  console.log(`shifter minimal - baseline = ${(minimal - base).toFixed(2)} ms`);
  console.log(`lookup overhead (docker:tag - id:) = ${(lookup - minimal).toFixed(2)} ms (budget <= 15 ms)`);
  const https = med['shifter lookup docker:tag (local gateway, https)']!;
  const bundle = med['shifter lookup (local gateway, https, CA bundle)']!;
  console.log(
    `https vs http lookup (local gateway) = +${(https - lookup).toFixed(2)} ms (x${(https / lookup).toFixed(2)})`,
  );
  console.log(
    `  gatewayCaPath = system bundle + test CA instead of the test CA alone = +${(bundle - https).toFixed(2)} ms`,
  );
  const dir = med['shifter lookup (local gateway, https, CA directory)']!;
  console.log(
    `  gatewayCaPath = hashed directory of the same anchors instead of the test CA alone = +${(dir - https).toFixed(2)} ms`,
  );
  const real = med['shifter lookup docker:tag (real gateway)'];
  if (real !== undefined) {
    console.log(`lookup overhead, real gateway = ${(real - minimal).toFixed(2)} ms (budget <= 15 ms)`);
    console.log(
      `  of which the gateway answering one lookup (HTTP from the bench, median) = ${median(gatewayOnly).toFixed(2)} ms`,
    );
  }
  const realTls = med['shifter lookup docker:tag (real gateway, https)'];
  if (real !== undefined && realTls !== undefined) {
    console.log(
      `https vs http lookup (real gateway behind a node:tls proxy) = +${(realTls - real).toFixed(2)} ms (x${(realTls / real).toFixed(2)})`,
    );
  }
  const compared = compareRev ? med[`shifter minimal conf (${compareRev})`] : undefined;
  if (compared !== undefined)
    console.log(`id: start-up, this build - ${compareRev} = ${(minimal - compared).toFixed(2)} ms`);
  console.log(`reuse - baseline = ${(reuse - med[baseline2]!).toFixed(2)} ms (target <= 2 ms)`);
  console.log(`setupRoot ${setupMs.toFixed(1)} ms, unsetupRoot ${unsetupMs.toFixed(1)} ms`);
  mkdirSync('bench/out', { recursive: true });
  writeFileSync(
    'bench/out/runtime.json',
    JSON.stringify({ runs, medians: med, samples, gatewayOnly, setupMs, unsetupMs }, null, 2),
  );
} finally {
  chmodSync('/dev/fuse', fuseMode);
  env.cleanup();
}
