/**
 * A throw-away installation of the udiRoot runtime for integration tests: a 0755 `mktemp -d` directory (so the
 * unprivileged test user can reach it) holding a copy of `shifter` built with this directory's udiRoot.conf baked in
 * (installed 4755 root), setupRoot/unsetupRoot, an image directory filled by @shifter/core (pullImage from the test
 * registry, or convertImage from the harness fixtures' OCI layouts), and helpers to run commands as the test user.
 */
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  createReadStream,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { convertImage, pullImage, type LayerSource } from '@shifter/core';
import { serviceValue } from '@shifter/core/testing';

const nativeDir = fileURLToPath(new URL('../../native', import.meta.url));

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

interface OciDescriptor {
  mediaType?: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
}

function blobPath(layout: string, digest: string): string {
  const [algorithm, hex] = digest.split(':');
  return join(layout, 'blobs', algorithm!, hex!);
}

function readJsonBlob<T>(layout: string, digest: string): T {
  return JSON.parse(readFileSync(blobPath(layout, digest), 'utf8')) as T;
}

/** Convert `<fixtures>/<name>:<tag>` with @shifter/core into `<imagePath>/<id>.{squashfs,meta}`; returns the id. */
export async function convertFixture(
  fixtures: string,
  name: string,
  tag: string,
  imagePath: string,
  scratch: string,
): Promise<string> {
  const layout = join(fixtures, name);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: OciDescriptor[] };
  let descriptor = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!descriptor) throw new Error(`fixture ${name}:${tag} not found`);
  if (descriptor.mediaType?.includes('index') || descriptor.mediaType?.includes('list')) {
    const nested = readJsonBlob<{ manifests: OciDescriptor[] }>(layout, descriptor.digest);
    descriptor = nested.manifests.find((m) => m.platform?.architecture === 'amd64') ?? nested.manifests[0]!;
  }
  const manifest = readJsonBlob<{ config: OciDescriptor; layers: OciDescriptor[] }>(layout, descriptor.digest);
  const config = readJsonBlob<unknown>(layout, manifest.config.digest);
  const layers: LayerSource[] = manifest.layers.map((layer) => ({
    digest: layer.digest,
    mediaType: layer.mediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip',
    size: layer.size,
    open: async () => createReadStream(blobPath(layout, layer.digest)),
  }));
  const id = descriptor.digest.split(':')[1]!;
  await convertImage(layers, config, imagePath, { id, expandDir: scratch });
  return id;
}

/** Run a program and wait; never throws on a non-zero status. */
export function run(
  program: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(program, args, {
      env: options.env ?? process.env,
      cwd: options.cwd ?? '/tmp',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', reject);
    child.stdin.on('error', () => undefined); // the program may exit before reading its (empty) input
    child.stdin.end(options.input ?? '');
    child.once('close', (status) => resolve({ status, stdout, stderr, ms: performance.now() - started }));
  });
}

export class RuntimeEnv {
  readonly dir: string;
  readonly imagePath: string;
  readonly confPath: string;
  readonly udiMount: string;
  readonly loopMount: string;
  readonly shifter: string;
  readonly setupRoot: string;
  readonly unsetupRoot: string;
  readonly build: string;

  constructor() {
    this.dir = mkdtempSync('/tmp/udiroot-it-');
    chmodSync(this.dir, 0o755);
    this.imagePath = join(this.dir, 'images');
    this.confPath = join(this.dir, 'udiRoot.conf');
    this.udiMount = join(this.dir, 'udiMount');
    this.loopMount = join(this.dir, 'loopMount');
    this.build = join(this.dir, 'build');
    this.shifter = join(this.dir, 'bin', 'shifter');
    this.setupRoot = join(this.dir, 'sbin', 'setupRoot');
    this.unsetupRoot = join(this.dir, 'sbin', 'unsetupRoot');
    mkdirSync(this.imagePath, { mode: 0o755 });
    mkdirSync(join(this.dir, 'scratch'), { mode: 0o700 });
    execFileSync(
      'make',
      ['-s', '-C', nativeDir, `BUILD=${this.build}`, `CONFIG_FILE=${this.confPath}`, 'install', `PREFIX=${this.dir}`],
      {
        stdio: 'pipe',
      },
    );
  }

  /** The documented minimal configuration plus `extra` lines; written root-owned 0644. */
  writeConf(extra = ''): void {
    writeFileSync(
      this.confPath,
      `udiMount=${this.udiMount}\nloopMount=${this.loopMount}\nimagePath=${this.imagePath}\nudiRootPath=${this.dir}\n` +
        `populateEtcDynamically=1\nallowLibcPwdCalls=1\nrootfsType=tmpfs\n${extra}`,
      { mode: 0o644 },
    );
    chownSync(this.confPath, 0, 0);
    chmodSync(this.confPath, 0o644);
  }

  async addFixture(fixtures: string, name: string, tag: string): Promise<string> {
    const id = await convertFixture(fixtures, name, tag, this.imagePath, join(this.dir, 'scratch'));
    chmodSync(join(this.imagePath, `${id}.squashfs`), 0o644);
    return id;
  }

  /** Pull `<registry>/test/<nameAndTag>` with @shifter/core's pullImage into the image directory; returns the id. */
  async pullFromRegistry(registry: string, nameAndTag: string): Promise<string> {
    const result = await pullImage(`${registry}/test/${nameAndTag}`, {
      cacheDir: join(this.dir, 'blob-cache'),
      outDir: this.imagePath,
      expandDir: join(this.dir, 'scratch'),
    });
    chmodSync(result.squashfsPath, 0o644);
    return result.id;
  }

  /** Another id for the same squashfs with a different .meta (hard link: the runtime opens images O_NOFOLLOW). */
  aliasImage(sourceId: string, newId: string, meta: string, mode = 0o644): void {
    const target = join(this.imagePath, `${newId}.squashfs`);
    rmSync(target, { force: true });
    execFileSync('cp', ['--reflink=auto', join(this.imagePath, `${sourceId}.squashfs`), target]);
    chmodSync(target, mode);
    writeFileSync(join(this.imagePath, `${newId}.meta`), meta, { mode: 0o644 });
  }

  /** Run `shifter` (or another program) as the test user through runuser, with a controlled environment. */
  runAs(
    user: string,
    args: string[],
    options: { env?: Record<string, string>; cwd?: string; program?: string; input?: string } = {},
  ): Promise<RunResult> {
    const env = Object.entries({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...options.env }).map(([k, v]) => `${k}=${v}`);
    return run('runuser', ['-u', user, '--', 'env', '-i', ...env, options.program ?? this.shifter, ...args], {
      cwd: options.cwd,
      input: options.input,
    });
  }

  /** Mount points (global namespace) at or below this installation. */
  mounts(): string[] {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4] ?? '')
      .filter((mp) => mp.startsWith(this.dir));
  }

  /** Loop devices whose backing file is inside this installation. */
  loopDevices(): string[] {
    const out = spawnSync('losetup', ['-a', '-O', 'NAME,BACK-FILE', '-n'], { encoding: 'utf8' }).stdout;
    return out.split('\n').filter((line) => line.includes(this.dir));
  }

  cleanup(): void {
    spawnSync(this.unsetupRoot, [], { stdio: 'ignore' });
    // Per-job roots (setupRoot -j, the Slurm plugin's prolog) left by a job whose epilog did not run.
    const jobs = `${this.udiMount}.jobs`;
    if (existsSync(jobs))
      for (const job of readdirSync(jobs)) spawnSync(this.unsetupRoot, ['-j', job], { stdio: 'ignore' });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A munge credential made by `user` (with `munge` run as that user, on the harness's munged), carrying `payload`
 * when given: what the runtime's lookup child or a client sends as that user.
 */
export async function credentialOf(user: string, payload?: string): Promise<string> {
  const args = [
    '-u',
    user,
    '--',
    'munge',
    '--socket',
    serviceValue('munge'),
    ...(payload ? ['--string', payload] : ['--no-input']),
  ];
  return (await promisify(execFile)('runuser', args)).stdout.trim();
}

const gatewayBin = fileURLToPath(new URL('../../../gateway/bin/shifter-gateway.js', import.meta.url));

/** The real gateway started by {@link startRuntimeGateway}. */
export interface RuntimeGateway {
  readonly url: string;
  /** What the gateway printed so far (for assertion messages). */
  log(): string;
  /** SIGTERM and wait; idempotent. */
  stop(): Promise<void>;
}

/**
 * Start the real gateway (`shifter-gateway serve`, from source) as the runtime tests use it: embedded defaults
 * (SQLite store, in-process queue), one system delivering into `env.imagePath` by local transfer, munge from the
 * harness, root as admin, and any registry allowed (the harness registry is no configured location). State lives
 * in `<env.dir>/gateway` and survives a restart on the same port. Resolves once /api/status answers.
 */
export async function startRuntimeGateway(
  env: RuntimeEnv,
  system: string,
  options: { port: number; concurrency?: number },
): Promise<RuntimeGateway> {
  const state = join(env.dir, 'gateway');
  mkdirSync(state, { recursive: true, mode: 0o700 });
  const config = join(state, 'gateway.json');
  writeFileSync(
    config,
    JSON.stringify({
      gateway: { host: '127.0.0.1', port: options.port },
      storage: { cacheDir: join(state, 'cache'), expandDir: join(state, 'expand') },
      allowedRegistries: 'any',
      systems: {
        [system]: {
          transfer: { kind: 'local', imageDir: env.imagePath },
          mungeSocketPath: serviceValue('munge'),
          admins: ['root'],
        },
      },
      metadata: { kind: 'sqlite', path: join(state, 'gateway.db') },
      queue: { kind: 'in-process', concurrency: options.concurrency ?? 2 },
      logLevel: 'warn',
    }),
  );
  return startGatewayOn(config, options.port);
}

/** `shifter-gateway serve --config <config>` from source, listening on `port`; resolves once /api/status answers. */
export async function startGatewayOn(config: string, port: number): Promise<RuntimeGateway> {
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [gatewayBin, 'serve', '--config', config], {
    env: { ...process.env, SHIFTER_GATEWAY_FROM_SOURCE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}:\n${log}`);
    try {
      if ((await fetch(`${url}/api/status`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway did not start:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    url,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
