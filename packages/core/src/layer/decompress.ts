import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ConversionError, LayerError } from '../errors/index.js';

/** Compression of a layer blob, as detected from its first bytes. */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** Layer media types the flattener accepts (OCI and Docker, distributable or not). */
export const LAYER_MEDIA_TYPES: readonly string[] = [
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
];

/** A decompressed layer: the tar bytes plus a promise that settles when the decompressor has finished. */
export interface OpenedLayerTar {
  /** Uncompressed tar bytes. */
  tar: Readable;
  /** What the magic bytes said. */
  compression: LayerCompression;
  /**
   * Resolves when the decompressor exited cleanly; rejects with `SHIFTER_LAYER_CORRUPT` when it failed (e.g. `zstd`
   * exiting non-zero after its output ended). Await it after consuming `tar`.
   */
  done: Promise<void>;
  /** Stop decompressing and release the child process, if any; `done` then settles without an error of its own. */
  destroy(): void;
}

const MAGIC_GZIP = Buffer.from([0x1f, 0x8b]);
const MAGIC_ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const MAGIC_XZ = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const MAGIC_BZIP2 = Buffer.from('BZh');
const STDERR_CAP = 16 * 1024;

/** Read at least `count` bytes (fewer at end of stream) and put them back, so the stream still starts at byte 0. */
async function peek(stream: Readable, count: number): Promise<{ head: Buffer; stream: Readable }> {
  const chunks: Buffer[] = [];
  let length = 0;
  let ended = false;
  await new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (length < count && (chunk = stream.read() as Buffer | null) !== null) {
        chunks.push(chunk);
        length += chunk.length;
      }
      if (length >= count) {
        cleanup();
        resolve();
      }
    };
    const onEnd = () => {
      ended = true;
      cleanup();
      resolve();
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    // destroy() without an error emits only 'close': without this, a cancelled read-ahead would wait forever.
    const onClose = () => {
      cleanup();
      reject(new Error('the layer stream was closed before it ended'));
    };
    stream.on('readable', onReadable);
    stream.on('close', onClose);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
  const head = Buffer.concat(chunks);
  // NOTE: stream.unshift() loses data when the source already pushed its end; replaying through a PassThrough is
  // always safe.
  const replay = new PassThrough({ highWaterMark: 1024 * 1024 });
  replay.write(head);
  if (ended) replay.end();
  else {
    stream.once('error', (error) => replay.destroy(error));
    replay.once('close', () => stream.destroy());
    stream.pipe(replay);
  }
  return { head, stream: replay };
}

/**
 * Turn a layer blob stream into its tar bytes. The compression is detected from the magic bytes (gzip, zstd, or an
 * uncompressed tar); the media type only decides whether the blob is a layer at all, because registries and
 * builders are known to mislabel compression but not to serve non-layers as layers.
 *
 * gzip is decompressed by zlib on libuv's thread pool (so it overlaps with the tar parsing on the main thread);
 * zstd by the `zstd -dc` tool, because Node 20's zlib has no zstd.
 *
 * @param blob - compressed bytes; this function takes ownership and destroys it on failure or `destroy()`
 * @param context - layer digest and media type (media type `''` means unknown: magic bytes decide)
 * @throws {@link LayerError} `SHIFTER_LAYER_UNSUPPORTED` for non-layer media types and bzip2/xz blobs
 * @throws {@link ConversionError} `SHIFTER_TOOL_NOT_FOUND` when a zstd layer arrives and `zstd` is not installed
 */
export async function openLayerTar(
  blob: Readable,
  context: { layer: string; mediaType?: string; zstdPath?: string },
): Promise<OpenedLayerTar> {
  const mediaType = context.mediaType ?? '';
  if (mediaType !== '' && !LAYER_MEDIA_TYPES.includes(mediaType)) {
    blob.destroy();
    throw new LayerError('SHIFTER_LAYER_UNSUPPORTED', `layer media type ${mediaType} is not supported`, {
      details: { layer: context.layer, mediaType },
    });
  }
  let peeked: { head: Buffer; stream: Readable };
  try {
    peeked = await peek(blob, 6);
  } catch (error) {
    blob.destroy();
    throw corrupt(context.layer, `cannot read layer: ${(error as Error).message}`, error);
  }
  const { head, stream } = peeked;
  const starts = (magic: Buffer) => head.length >= magic.length && head.subarray(0, magic.length).equals(magic);
  if (starts(MAGIC_XZ) || starts(MAGIC_BZIP2)) {
    stream.destroy();
    throw new LayerError('SHIFTER_LAYER_UNSUPPORTED', `layer is ${starts(MAGIC_XZ) ? 'xz' : 'bzip2'}-compressed`, {
      details: { layer: context.layer, mediaType },
    });
  }
  if (starts(MAGIC_GZIP)) {
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    let failure: unknown;
    const done = new Promise<void>((resolve, reject) => {
      gunzip.once('end', resolve);
      gunzip.once('close', () =>
        failure ? reject(corrupt(context.layer, `gzip: ${(failure as Error).message}`, failure)) : resolve(),
      );
    });
    done.catch(() => undefined);
    stream.once('error', (error) => gunzip.destroy(error));
    gunzip.once('error', (error) => {
      failure = error;
    });
    stream.pipe(gunzip);
    return {
      tar: gunzip,
      compression: 'gzip',
      done,
      destroy: () => {
        stream.destroy();
        gunzip.destroy();
      },
    };
  }
  if (starts(MAGIC_ZSTD)) return spawnZstd(stream, context.layer, context.zstdPath ?? 'zstd');
  return { tar: stream, compression: 'none', done: Promise.resolve(), destroy: () => stream.destroy() };
}

function corrupt(layer: string, message: string, cause?: unknown): LayerError {
  return new LayerError('SHIFTER_LAYER_CORRUPT', message, { cause, details: { layer } });
}

function spawnZstd(input: Readable, layer: string, zstdPath: string): Promise<OpenedLayerTar> {
  return new Promise((resolveOpen, rejectOpen) => {
    const child = spawn(zstdPath, ['-dc', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      if (stderr.length < STDERR_CAP) stderr += text.slice(0, STDERR_CAP - stderr.length);
    });
    // EPIPE on stdin just means zstd stopped reading (it failed, or we destroyed it); the exit code tells which.
    child.stdin.on('error', () => undefined);
    input.once('error', () => child.kill('SIGKILL'));
    let killedByUs = false;
    const done = new Promise<void>((resolve, reject) => {
      child.once('close', (code, signal) => {
        // Killed by destroy(): the caller already has the real reason; do not replace it with "killed".
        if (code === 0 || killedByUs) resolve();
        else
          reject(
            new LayerError('SHIFTER_LAYER_CORRUPT', `zstd failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`, {
              details: { layer, stderr: stderr.trim(), exitCode: code },
            }),
          );
      });
    });
    done.catch(() => undefined);
    child.once('error', (error: NodeJS.ErrnoException) => {
      input.destroy();
      rejectOpen(
        error.code === 'ENOENT'
          ? new ConversionError('SHIFTER_TOOL_NOT_FOUND', `${zstdPath} is not installed (needed for zstd layers)`, {
              cause: error,
              details: { tool: zstdPath, layer },
            })
          : corrupt(layer, `cannot run ${zstdPath}: ${error.message}`, error),
      );
    });
    child.once('spawn', () => {
      input.pipe(child.stdin);
      resolveOpen({
        tar: child.stdout,
        compression: 'zstd',
        done,
        destroy: () => {
          killedByUs = true;
          input.destroy();
          child.kill('SIGKILL');
        },
      });
    });
  });
}
