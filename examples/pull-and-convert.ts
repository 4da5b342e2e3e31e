/**
 * Pull an image from its registry and build `<OUTDIR>/<id>.squashfs` plus `<OUTDIR>/<id>.meta`.
 *
 *   npx tsx examples/pull-and-convert.ts REF OUTDIR
 *   npx tsx examples/pull-and-convert.ts 127.0.0.1:5000/test/busybox:latest /tmp/images
 *
 * Prints progress to stderr and the image id as the last line of stdout. On failure it prints `CODE: message` to
 * stderr and exits with the error catalogue's exit code (docs/errors.md).
 *
 * Environment (read here, in the application — the library never reads the environment itself):
 *   SHIFTER_CACHE_DIR   blob cache; default $XDG_CACHE_HOME/shifter/blobs or ~/.cache/shifter/blobs
 *   SHIFTER_PLATFORM    os/arch[/variant] to pick from multi-platform images; default linux/amd64
 *   SHIFTER_REGISTRY_USER, SHIFTER_REGISTRY_PASSWORD   credentials, sent only when the registry asks
 *   SHIFTER_CA_FILE     PEM bundle trusted for the reference's registry (e.g. a site CA)
 *   SHIFTER_PULL_CONCURRENCY   layers downloaded at once (1..64, default 3); the converter reads each layer while it
 *                       downloads
 *   HTTPS_PROXY, HTTP_PROXY, NO_PROXY   proxies (loopback registries are never proxied)
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ExitCode,
  pullImage,
  parseReference,
  toShifterError,
  type PullImageProgress,
  type RegistryEndpointConfig,
} from '@shifter/core';

/** The blob cache directory: `$SHIFTER_CACHE_DIR`, else the XDG cache directory. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SHIFTER_CACHE_DIR) return resolve(env.SHIFTER_CACHE_DIR);
  const base = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return join(base, 'shifter', 'blobs');
}

function reportProgress(event: PullImageProgress): void {
  switch (event.phase) {
    case 'resolved':
      process.stderr.write(
        `resolved ${event.manifestDigest}: ${event.layers} layers, ${(event.totalBytes / 1e6).toFixed(1)} MB\n`,
      );
      break;
    case 'downloaded':
      process.stderr.write(
        `layer ${event.index + 1} ${event.digest.slice(0, 19)} ${event.cached ? 'cached' : 'downloaded'}\n`,
      );
      break;
    case 'convert':
      if (event.event.phase === 'squashfs') process.stderr.write(`building squashfs with ${event.event.tool}\n`);
      break;
    default:
      break;
  }
}

async function main(argv: string[]): Promise<number> {
  const [ref, outDir] = argv;
  if (!ref || !outDir || argv.length !== 2) {
    process.stderr.write('usage: pull-and-convert.ts REF OUTDIR\n');
    return ExitCode.USAGE;
  }
  const env = process.env;
  const credentials = env.SHIFTER_REGISTRY_USER
    ? { username: env.SHIFTER_REGISTRY_USER, password: env.SHIFTER_REGISTRY_PASSWORD ?? '' }
    : undefined;
  const registries: Record<string, RegistryEndpointConfig> = {};
  if (env.SHIFTER_CA_FILE) {
    // Trust the CA for the reference's own registry, over https.
    const host = parseReference(ref).registry;
    registries[host] = { url: `https://${host}`, caFile: resolve(env.SHIFTER_CA_FILE) };
  }
  const proxy = {
    ...((env.HTTPS_PROXY ?? env.https_proxy) ? { httpsProxy: env.HTTPS_PROXY ?? env.https_proxy } : {}),
    ...((env.HTTP_PROXY ?? env.http_proxy) ? { httpProxy: env.HTTP_PROXY ?? env.http_proxy } : {}),
    ...((env.NO_PROXY ?? env.no_proxy) ? { noProxy: env.NO_PROXY ?? env.no_proxy } : {}),
  };
  const result = await pullImage(ref, {
    cacheDir: defaultCacheDir(env),
    outDir: resolve(outDir),
    registries,
    ...(env.SHIFTER_PLATFORM ? { platform: env.SHIFTER_PLATFORM } : {}),
    ...(env.SHIFTER_PULL_CONCURRENCY ? { concurrency: Number(env.SHIFTER_PULL_CONCURRENCY) } : {}),
    ...(credentials ? { credentials: () => credentials } : {}),
    proxy,
    onProgress: reportProgress,
  });
  process.stderr.write(
    `wrote ${result.squashfsPath} and ${result.metaPath}${result.usedCredentials ? ' (private image)' : ''}\n`,
  );
  process.stdout.write(`${result.id}\n`);
  return ExitCode.OK;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const shifterError = toShifterError(error);
    process.stderr.write(`${shifterError.code}: ${shifterError.message}\n`);
    process.exitCode = shifterError.exitCode;
  },
);
