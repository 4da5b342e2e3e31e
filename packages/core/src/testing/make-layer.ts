import { spawn } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

/** One entry of a generated layer. Only `path` is required; the type defaults to `file` (`directory` for a trailing `/`). */
export interface LayerSpecEntry {
  /** Name written to the tar header verbatim (absolute names, `..`, `./` prefixes and whiteouts included). */
  path: string;
  /** Entry type; `char`/`block` are device nodes, `link` a hardlink. */
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'char' | 'block';
  /** File content (default empty). */
  content?: string | Buffer;
  /** Permission bits, setuid/setgid/sticky included (default 0644 for files, 0755 for directories, 0777 for symlinks). */
  mode?: number;
  /** Symlink target or hardlink target. */
  linkname?: string;
  /** Modification time, seconds since the epoch (default 1_700_000_000). */
  mtime?: number;
  /** Device numbers for `char`/`block`. */
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records (e.g. `SCHILY.xattr.user.x`). */
  pax?: Record<string, string>;
}

/** Options of {@link makeLayer}. */
export interface MakeLayerOptions {
  /** Compression of the returned blob (default `none`). */
  compression?: 'none' | 'gzip' | 'zstd';
}

const TYPE = {
  file: 'file',
  directory: 'directory',
  symlink: 'symlink',
  link: 'link',
  fifo: 'fifo',
  char: 'character-device',
  block: 'block-device',
} as const;

/**
 * Build a layer blob from a readable spec, so whiteout and hostile cases in tests read as data, e.g.
 * `makeLayer([{ path: 'etc/' }, { path: 'etc/.wh.passwd' }, { path: 'x', type: 'symlink', linkname: '../../etc' }])`.
 * Long and non-ASCII names get PAX headers (as Go's archive/tar writes them).
 *
 * @param spec - entries in archive order
 * @param options - compression
 * @returns the blob bytes (a tar, gzip or zstd)
 */
export async function makeLayer(spec: LayerSpecEntry[], options: MakeLayerOptions = {}): Promise<Buffer> {
  const tar = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of tar) chunks.push(Buffer.from(chunk as Uint8Array));
  })();
  for (const entry of spec) {
    const type = entry.type ?? (entry.path.endsWith('/') ? 'directory' : 'file');
    const content = type === 'file' ? Buffer.from(entry.content ?? '') : Buffer.alloc(0);
    const defaultMode = type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644;
    await new Promise<void>((resolve, reject) => {
      tar.entry(
        {
          name: entry.path,
          type: TYPE[type],
          size: content.length,
          mode: entry.mode ?? defaultMode,
          mtime: new Date((entry.mtime ?? 1_700_000_000) * 1000),
          linkname: entry.linkname,
          devmajor: entry.devmajor ?? 0,
          devminor: entry.devminor ?? 0,
          uid: 0,
          gid: 0,
          ...(entry.pax ? { pax: entry.pax } : {}),
        },
        content,
        (error) => (error ? reject(error) : resolve()),
      );
    });
  }
  tar.finalize();
  await collected;
  const raw = Buffer.concat(chunks);
  if (options.compression === 'gzip') return gzipSync(raw);
  if (options.compression === 'zstd') return zstdCompress(raw);
  return raw;
}

function zstdCompress(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('zstd', ['-q', '-c', '-3'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`zstd exited ${code}`)),
    );
    child.stdin.end(data);
  });
}
