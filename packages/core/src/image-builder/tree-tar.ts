import { createReadStream, lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Pack, pack } from 'tar-stream';

/**
 * Stream a directory tree as ONE tar archive (sorted names, uid/gid 0, hardlinks kept, `./` first), e.g. for
 * `tar2sqfs`, which stops at the first end-of-archive marker and so cannot take concatenated layer tars.
 *
 * @param rootDir - the flattened tree
 * @returns a tar stream; reading it walks the tree lazily; the caller consumes or destroys it
 */
export function packTree(rootDir: string): Pack {
  const tar = pack();
  const seen = new Map<string, string>();
  const entry = (header: Parameters<Pack['entry']>[0], body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      tar.entry(header, body ?? Buffer.alloc(0), (error) => (error ? reject(error) : resolve()));
    });
  const walk = async (rel: string): Promise<void> => {
    for (const name of readdirSync(rel === '' ? rootDir : join(rootDir, rel)).sort()) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const abs = join(rootDir, path);
      const stat = lstatSync(abs);
      const base = {
        name: path,
        mode: stat.mode & 0o7777,
        mtime: new Date(Math.floor(stat.mtimeMs / 1000) * 1000),
        uid: 0,
        gid: 0,
      };
      if (stat.isDirectory()) {
        await entry({ ...base, type: 'directory' });
        await walk(path);
      } else if (stat.isSymbolicLink()) {
        await entry({ ...base, type: 'symlink', linkname: readlinkSync(abs) });
      } else if (stat.isFile()) {
        const key = `${stat.dev}:${stat.ino}`;
        const first = stat.nlink > 1 ? seen.get(key) : undefined;
        if (first !== undefined) {
          await entry({ ...base, type: 'link', linkname: first });
          continue;
        }
        if (stat.nlink > 1) seen.set(key, path);
        const sink = tar.entry({ ...base, type: 'file', size: stat.size });
        await pipeline(createReadStream(abs, { highWaterMark: 1024 * 1024 }), sink as unknown as NodeJS.WritableStream);
      } else if (stat.isFIFO()) {
        await entry({ ...base, type: 'fifo' });
      } else if (stat.isCharacterDevice() || stat.isBlockDevice()) {
        await entry({
          ...base,
          type: stat.isCharacterDevice() ? 'character-device' : 'block-device',
          devmajor: Math.floor(stat.rdev / 256),
          devminor: stat.rdev % 256,
        });
      }
    }
  };
  (async () => {
    const rootStat = lstatSync(rootDir);
    await entry({
      name: './',
      type: 'directory',
      mode: rootStat.mode & 0o7777,
      mtime: new Date(Math.floor(rootStat.mtimeMs / 1000) * 1000),
      uid: 0,
      gid: 0,
    });
    await walk('');
    tar.finalize();
  })().catch((error: unknown) => tar.destroy(error as Error));
  return tar;
}
