/**
 * A small OCI distribution registry on loopback, in the test process, for attacks the real test registries cannot
 * play: a registry of an attacker's own that names another user's blobs and never serves them, one that answers 200
 * to every request, and a private registry (Basic auth) whose blob answers a test can hold back to keep a pull in
 * flight. Only what pulls use: `GET /v2/`, `GET|HEAD` manifests, `GET` blobs (with `Range`).
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** One image as a registry serves it. */
export interface FakeImage {
  /** Manifest bytes (OCI image manifest). */
  readonly manifest: Buffer;
  /** `sha256:` of the manifest bytes. */
  readonly digest: string;
  /** Config blob bytes and digest. */
  readonly config: { readonly bytes: Buffer; readonly digest: string };
  /** Layer blobs, lowest first. */
  readonly layers: readonly { readonly bytes: Buffer; readonly digest: string; readonly mediaType: string }[];
}

/**
 * Build an OCI image from layers: uncompressed tar blobs (for example from `makeLayer`), or blobs with their media
 * type (a `+gzip` one is gunzipped for its diff id).
 * @param layers - layer blobs
 * @param options - `layerDescriptors`: descriptors to name instead of the real layers (an attacker naming someone
 *   else's layer), and `diffIds` to put in the config
 */
export function buildFakeImage(
  layers: readonly (Buffer | { readonly bytes: Buffer; readonly mediaType: string })[],
  options: {
    readonly layerDescriptors?: readonly { digest: string; size: number }[];
    readonly diffIds?: readonly string[];
  } = {},
): FakeImage {
  const mediaType = 'application/vnd.oci.image.layer.v1.tar';
  const blobs = layers.map((layer) => {
    const { bytes, mediaType: type } = Buffer.isBuffer(layer) ? { bytes: layer, mediaType } : layer;
    return {
      bytes,
      digest: sha(bytes),
      mediaType: type,
      diffId: sha(type.endsWith('+gzip') ? gunzipSync(bytes) : bytes),
    };
  });
  const descriptors =
    options.layerDescriptors ??
    blobs.map((blob) => ({ digest: blob.digest, size: blob.bytes.length, mediaType: blob.mediaType }));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin:/usr/bin'] },
      rootfs: {
        type: 'layers',
        diff_ids:
          options.diffIds ?? (options.layerDescriptors ? descriptors.map((d) => d.digest) : blobs.map((b) => b.diffId)),
      },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: descriptors.map((d) => ({
        mediaType: (d as { mediaType?: string }).mediaType ?? mediaType,
        digest: d.digest,
        size: d.size,
      })),
    }),
  );
  return {
    manifest,
    digest: sha(manifest),
    config: { bytes: config, digest: sha(config) },
    layers: blobs.map(({ bytes, digest, mediaType: type }) => ({ bytes, digest, mediaType: type })),
  };
}

/** How a {@link FakeRegistry} behaves. */
export interface FakeRegistryOptions {
  /** Images by `repository:tag` (the manifest is also served by its digest). */
  readonly images?: Readonly<Record<string, FakeImage>>;
  /** Require `Authorization: Basic` with this login for everything (a private registry). */
  readonly basicAuth?: { readonly username: string; readonly password: string };
  /** Answer 200 with `yesBody` to every request that is not a manifest or config this registry holds. */
  readonly yesMan?: boolean;
  /** Body of the yes-man answers (default `{}`). */
  readonly yesBody?: Buffer;
  /** Digests of layers named by the manifests but never served (404), though the registry "has" the image. */
  readonly withhold?: readonly string[];
  /** Bytes served instead of a blob's own, by digest (a registry, or a path, that corrupts content). */
  readonly tamper?: Readonly<Record<string, Buffer>>;
  /** Break the FIRST full answer of these blobs after this many body bytes (a dropped connection), by digest. */
  readonly cutOnce?: Readonly<Record<string, number>>;
  /** With {@link FakeRegistry.hold}: send this many body bytes of a full blob answer before holding the rest. */
  readonly holdAfterBytes?: number;
  /** Wait this long before answering a blob, so that downloads overlap (and concurrency shows). */
  readonly blobDelayMs?: number;
}

/** One request a {@link FakeRegistry} received. */
export interface FakeRegistryRequest {
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  readonly authorized: boolean;
}

/** A running fake registry. */
export interface FakeRegistry {
  /** `127.0.0.1:<port>`, the registry part of references. */
  readonly host: string;
  /** Every request received, in order. */
  readonly requests: FakeRegistryRequest[];
  /** Most blob `GET`s answered at the same time so far (from request to the end of the body). */
  readonly maxConcurrentBlobGets: number;
  /** Hold back every blob answer until {@link FakeRegistry.release}; resolves when the first held request arrived. */
  hold(): Promise<void>;
  /** Let held blob answers go. */
  release(): void;
  close(): Promise<void>;
}

/**
 * Start a fake registry on an ephemeral loopback port.
 * @param options - images, auth, behaviour
 */
export async function startFakeRegistry(options: FakeRegistryOptions): Promise<FakeRegistry> {
  const requests: FakeRegistryRequest[] = [];
  const manifests = new Map<string, FakeImage>();
  const blobs = new Map<string, Buffer>();
  for (const [name, image] of Object.entries(options.images ?? {})) {
    const colon = name.lastIndexOf(':');
    const repository = name.slice(0, colon);
    manifests.set(`${repository}:${name.slice(colon + 1)}`, image);
    manifests.set(`${repository}:${image.digest}`, image);
    blobs.set(image.config.digest, image.config.bytes);
    for (const layer of image.layers)
      if (!(options.withhold ?? []).includes(layer.digest)) blobs.set(layer.digest, layer.bytes);
  }
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  let arrived: (() => void) | undefined;
  let firstHeld: Promise<void> | undefined;
  let blobGets = 0;
  let maxBlobGets = 0;
  const cutDone = new Set<string>();

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    const authorization = request.headers.authorization;
    const expected = options.basicAuth
      ? `Basic ${Buffer.from(`${options.basicAuth.username}:${options.basicAuth.password}`).toString('base64')}`
      : undefined;
    const authorized = expected === undefined || authorization === expected;
    requests.push({ method: request.method ?? 'GET', path, range: request.headers.range, authorized });
    if (!authorized) {
      response.writeHead(401, { 'www-authenticate': 'Basic realm="fake"', 'content-type': 'application/json' });
      response.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    if (path === '/v2/' || path === '/v2') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
      return;
    }
    const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (manifest) {
      const image = manifests.get(`${manifest[1]}:${decodeURIComponent(manifest[2]!)}`);
      if (image) {
        response.writeHead(200, {
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
          'content-length': image.manifest.length,
          'docker-content-digest': image.digest,
        });
        response.end(request.method === 'HEAD' ? undefined : image.manifest);
        return;
      }
    }
    const blob = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
    const bytes = blob ? blobs.get(blob[2]!) : undefined;
    if (blob && bytes && !(options.yesMan && !isConfig(blob[2]!))) {
      blobGets += 1;
      maxBlobGets = Math.max(maxBlobGets, blobGets);
      response.once('close', () => (blobGets -= 1));
      if (options.blobDelayMs) await new Promise((resolve) => setTimeout(resolve, options.blobDelayMs));
      const served = options.tamper?.[blob[2]!] ?? bytes;
      const cut = options.cutOnce?.[blob[2]!];
      if (!request.headers.range && cut !== undefined && !cutDone.has(blob[2]!)) {
        cutDone.add(blob[2]!);
        response.writeHead(200, { 'content-length': served.length, 'content-type': 'application/octet-stream' });
        // end(), not destroy(): the bytes written so far reach the client before the connection closes.
        response.write(served.subarray(0, cut), () => response.socket?.end());
        return;
      }
      if (gate && options.holdAfterBytes !== undefined && !request.headers.range) {
        response.writeHead(200, { 'content-length': served.length, 'content-type': 'application/octet-stream' });
        response.write(served.subarray(0, options.holdAfterBytes));
        arrived?.();
        await gate;
        response.end(served.subarray(options.holdAfterBytes));
        return;
      }
      if (gate) {
        arrived?.();
        await gate;
      }
      const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
      if (range) {
        const start = Number(range[1]);
        const end = Math.min(range[2] ? Number(range[2]) : served.length - 1, served.length - 1);
        response.writeHead(206, {
          'content-range': `bytes ${start}-${end}/${served.length}`,
          'content-length': end - start + 1,
        });
        response.end(served.subarray(start, end + 1));
      } else {
        response.writeHead(200, { 'content-length': served.length, 'content-type': 'application/octet-stream' });
        response.end(served);
      }
      return;
    }
    if (options.yesMan) {
      const body = options.yesBody ?? Buffer.from('{}');
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      response.end(request.method === 'HEAD' ? undefined : body);
      return;
    }
    response.writeHead(404, { 'content-type': 'application/json' });
    response.end(
      JSON.stringify({ errors: [{ code: blob ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN', message: 'unknown' }] }),
    );
  };
  const configs = new Set([...manifests.values()].map((image) => image.config.digest));
  const isConfig = (digest: string): boolean => configs.has(digest);

  const server: Server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    get maxConcurrentBlobGets() {
      return maxBlobGets;
    },
    hold() {
      gate ??= new Promise<void>((resolve) => (open = resolve));
      firstHeld ??= new Promise<void>((resolve) => (arrived = resolve));
      return firstHeld;
    },
    release() {
      open?.();
      gate = undefined;
    },
    async close() {
      open?.();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
