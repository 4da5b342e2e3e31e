/**
 * Helpers of the gateway's black-box tests: start `shifter-gateway serve` (or `worker`) as a child process on a
 * temp config, make real munge credentials, call the API over HTTP.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const GATEWAY_BIN = fileURLToPath(new URL('../../bin/shifter-gateway.js', import.meta.url));
// The CLI runs straight from source in its own node process, so the PID the tests signal (and SIGKILL) is the
// gateway itself, not a launcher.
const GATEWAY_CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const NODE_ARGS = ['--conditions=@shifter/source', '--import', import.meta.resolve('tsx')];

export { freePort } from '@shifter/core/testing';

/** A temp directory for one test run. */
export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A fresh munge credential. As root with `user` given, it is encoded as that user (runuser), so its uid is theirs.
 * @param options - payload (e.g. authorized_locations JSON), ttl seconds, user
 */
export async function mungeCredential(
  options: { user?: string; payload?: string; ttl?: number; socket?: string } = {},
): Promise<string> {
  const args = ['--socket', options.socket ?? process.env.SHIFTER_TEST_MUNGE_SOCKET ?? '/run/munge/munge.socket.2'];
  if (options.ttl !== undefined) args.push('--ttl', String(options.ttl));
  if (options.payload !== undefined) args.push('--string', options.payload);
  else args.push('--no-input');
  const [command, commandArgs] = options.user
    ? ['runuser', ['-u', options.user, '--', 'munge', ...args]]
    : ['munge', args];
  const { stdout } = await execFileAsync(command as string, commandArgs as string[]);
  return stdout.trim();
}

/** A gateway child process. */
export interface GatewayProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly output: () => string;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL and wait (crash). */
  kill(): Promise<void>;
}

/**
 * Write `config` to a file and start `shifter-gateway <command>` on it; resolves when /api/status answers (serve)
 * or when the worker logs that it started.
 */
export async function startGatewayProcess(
  config: Record<string, unknown>,
  options: {
    command?: 'serve' | 'worker';
    args?: string[];
    dir: string;
    name?: string;
    env?: Record<string, string>;
    wrap?: string[];
  },
): Promise<GatewayProcess> {
  const file = join(options.dir, `${options.name ?? 'gateway'}.json`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  const command = options.command ?? 'serve';
  const argv = [...NODE_ARGS, GATEWAY_CLI, command, '--config', file, ...(options.args ?? [])];
  const [exe, ...rest] = options.wrap ? [...options.wrap, process.execPath, ...argv] : [process.execPath, ...argv];
  const child = spawn(exe!, rest, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SHIFTER_LOG_LEVEL: 'info', ...options.env },
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const gateway = config.gateway as { host: string; port: number } | undefined;
  const url = `http://${gateway?.host ?? '127.0.0.1'}:${gateway?.port ?? 8000}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway did not start in time:\n${output}`);
    }
    if (command === 'worker') {
      if (output.includes('worker started')) break;
    } else {
      try {
        const response = await fetch(`${url}/api/status`);
        if (response.ok) break;
      } catch {
        // not listening yet
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A JSON HTTP answer. */
export interface Answer {
  readonly status: number;
  readonly body: any;
}

/** Call the gateway. */
export async function call(
  url: string,
  method: string,
  path: string,
  options: { credential?: string; body?: unknown; rawBody?: string; contentType?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.credential !== undefined) headers.authentication = options.credential;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const response = await fetch(`${url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, body: parsed };
}

/** Re-POST a pull (as upstream clients poll) until it leaves the working states. */
export async function pullUntilDone(
  url: string,
  system: string,
  tag: string,
  credential: () => Promise<string>,
  timeoutMs = 240_000,
  body?: unknown,
): Promise<Answer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await call(url, 'POST', `/api/pull/${system}/docker/${encodeURIComponent(tag)}/`, {
      credential: await credential(),
      ...(body ? { body } : {}),
    });
    if (answer.status !== 200) return answer;
    if (
      !['INIT', 'PENDING', 'PULLING', 'EXAMINATION', 'CONVERSION', 'TRANSFER', 'HASHING'].includes(answer.body.status)
    )
      return answer;
    if (Date.now() > deadline) throw new Error(`pull of ${tag} still ${answer.body.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Push a one-layer OCI image (layer bytes as given) to a plain-HTTP registry with the distribution API. */
export async function pushImage(registry: string, repository: string, tag: string, layer: Buffer): Promise<void> {
  const { createHash } = await import('node:crypto');
  const sha = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const upload = async (bytes: Buffer) => {
    const digest = sha(bytes);
    const start = await fetch(`http://${registry}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    const location = new URL(start.headers.get('location')!, `http://${registry}`);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (put.status !== 201) throw new Error(`blob upload answered ${put.status}`);
    return { digest, size: bytes.length };
  };
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: [sha(layer)] },
    }),
  );
  const configDescriptor = await upload(config);
  const layerDescriptor = await upload(layer);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...configDescriptor },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layerDescriptor }],
  });
  const put = await fetch(`http://${registry}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    body: manifest,
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  });
  if (put.status !== 201) throw new Error(`manifest upload answered ${put.status}: ${await put.text()}`);
}
