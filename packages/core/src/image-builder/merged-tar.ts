import { closeSync, openSync, readSync } from 'node:fs';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import type { MergedDirectory, MergedFile, MergedImage, MergedNode, MergedTreeSink } from '../layer/layer-merge.js';

const BLOCK = 512;
const BATCH = 1024 * 1024;
const MAX_OCTAL_11 = 0o77777777777;

const TYPEFLAGS: Record<Exclude<MergedNode['kind'], 'file'>, string> = {
  directory: '5',
  symlink: '2',
  fifo: '6',
  'character-device': '3',
  'block-device': '4',
};

/** The fields of one tar entry written by {@link tarHeader} (owner and group are always 0). */
export interface TarHeaderFields {
  /** Entry name (`./` for the root); PAX `path` when longer than 100 bytes. */
  name: string;
  /** ustar type flag: `0` file, `1` hardlink, `2` symlink, `3`/`4` char/block device, `5` directory, `6` FIFO, `x` PAX. */
  typeflag: string;
  /** Permission bits. */
  mode: number;
  /** Seconds since the epoch; PAX `mtime` when negative or past the octal field. */
  mtime: number;
  /** Content size (regular files and PAX headers). */
  size?: number;
  /** Target of a link; PAX `linkpath` when longer than 100 bytes. */
  linkname?: string;
  /** Device numbers. */
  devmajor?: number;
  devminor?: number;
}

function octal(block: Buffer, value: number, offset: number, width: number): void {
  block.write(`${value.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'latin1');
}

function paxRecord(key: string, value: string): string {
  // "<length> <key>=<value>\n", where <length> counts the whole record including its own digits.
  const body = ` ${key}=${value}\n`;
  const bodyBytes = Buffer.byteLength(body);
  let length = bodyBytes + 1;
  while (String(length).length + bodyBytes !== length) length = String(length).length + bodyBytes;
  return `${length}${body}`;
}

function ustarBlock(fields: TarHeaderFields, name: Buffer, linkname: Buffer): Buffer {
  const block = Buffer.alloc(BLOCK);
  name.copy(block, 0, 0, Math.min(name.length, 100));
  octal(block, fields.mode & 0o7777, 100, 8);
  octal(block, 0, 108, 8);
  octal(block, 0, 116, 8);
  octal(block, Math.min(fields.size ?? 0, MAX_OCTAL_11), 124, 12);
  octal(block, Math.min(Math.max(fields.mtime, 0), MAX_OCTAL_11), 136, 12);
  block.fill(0x20, 148, 156);
  block.write(fields.typeflag, 156, 1, 'latin1');
  linkname.copy(block, 157, 0, Math.min(linkname.length, 100));
  block.write('ustar\x0000', 257, 8, 'latin1');
  octal(block, fields.devmajor ?? 0, 329, 8);
  octal(block, fields.devminor ?? 0, 337, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i] as number;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return block;
}

/**
 * One tar header (ustar, preceded by a PAX extended header when a name or link target is longer than 100 bytes, or
 * the size or mtime does not fit the octal fields). Owner and group are always 0. Exposed for tests.
 */
export function tarHeader(fields: TarHeaderFields): Buffer {
  const name = Buffer.from(fields.name, 'utf8');
  const linkname = Buffer.from(fields.linkname ?? '', 'utf8');
  let pax = '';
  if (name.length > 100) pax += paxRecord('path', fields.name);
  if (linkname.length > 100) pax += paxRecord('linkpath', fields.linkname ?? '');
  if ((fields.size ?? 0) > MAX_OCTAL_11) pax += paxRecord('size', String(fields.size));
  if (fields.mtime < 0 || fields.mtime > MAX_OCTAL_11) pax += paxRecord('mtime', String(fields.mtime));
  const ustar = ustarBlock(fields, name, linkname);
  if (pax === '') return ustar;
  const paxBody = Buffer.from(pax, 'utf8');
  const paxHeader = ustarBlock(
    { name: 'PaxHeader', typeflag: 'x', mode: 0o644, mtime: 0, size: paxBody.length },
    Buffer.from('PaxHeader'),
    Buffer.alloc(0),
  );
  const padding = Buffer.alloc((BLOCK - (paxBody.length % BLOCK)) % BLOCK);
  return Buffer.concat([paxHeader, paxBody, padding, ustar]);
}

/**
 * Writes one tar archive to a stream, with backpressure: each write waits while the stream is full and fails when
 * the stream was destroyed (e.g. because tar2sqfs died). Small pieces are gathered into 1 MiB writes. Owner and group
 * are always 0:0; symlinks carry mode 0777 (what the kernel reports for them, so the squashfs lists like one built
 * from a tree). Used by {@link mergeLayers} (streaming the top layer) and {@link writeMergedTree}.
 */
export class TarWriter implements MergedTreeSink {
  private batch = Buffer.allocUnsafe(BATCH);
  private used = 0;
  private readonly fds = new Map<string, number>();
  private closed = false;

  /** @param output - receives the archive; ended by {@link TarWriter.end} */
  constructor(readonly output: Writable) {}

  private async send(bytes: Buffer): Promise<void> {
    const output = this.output;
    if (output.destroyed || this.closed) throw output.errored ?? new Error('the tar stream was closed');
    if (output.write(bytes)) return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        output.off('drain', done);
        output.off('close', done);
        if (output.destroyed) reject(output.errored ?? new Error('the tar stream was closed'));
        else resolve();
      };
      output.on('drain', done);
      output.on('close', done);
    });
  }

  private async flush(): Promise<void> {
    if (this.used === 0) return;
    const full = this.batch.subarray(0, this.used);
    this.batch = Buffer.allocUnsafe(BATCH);
    this.used = 0;
    await this.send(full);
  }

  private async put(bytes: Buffer): Promise<void> {
    if (this.used + bytes.length > BATCH) await this.flush();
    if (bytes.length >= BATCH) {
      await this.send(bytes);
      return;
    }
    bytes.copy(this.batch, this.used);
    this.used += bytes.length;
  }

  private async pad(size: number): Promise<void> {
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (padding > 0) await this.put(Buffer.alloc(padding));
  }

  /** A directory entry (`''` is the root, written as `./`). */
  async directory(name: string, node: { mode: number; mtime: number }): Promise<void> {
    await this.put(tarHeader({ name: name === '' ? './' : name, typeflag: '5', mode: node.mode, mtime: node.mtime }));
  }

  /** A symlink, FIFO or device node. */
  async special(name: string, node: Exclude<MergedNode, MergedDirectory | MergedFile>): Promise<void> {
    if (node.kind === 'symlink')
      await this.put(tarHeader({ name, typeflag: '2', mode: 0o777, mtime: node.mtime, linkname: node.target }));
    else
      await this.put(
        tarHeader({
          name,
          typeflag: TYPEFLAGS[node.kind],
          mode: node.mode,
          mtime: node.mtime,
          devmajor: node.devmajor,
          devminor: node.devminor,
        }),
      );
  }

  /** A hardlink `name` to the earlier entry `target`. */
  async hardlink(name: string, node: { mode: number; mtime: number }, target: string): Promise<void> {
    await this.put(tarHeader({ name, typeflag: '1', mode: node.mode, mtime: node.mtime, linkname: target }));
  }

  /** A regular file whose bytes are `node.size` bytes at `offset` in the spool file `spoolPath`. */
  async fileFromSpool(name: string, node: MergedFile, spoolPath: string): Promise<void> {
    await this.put(tarHeader({ name, typeflag: '0', mode: node.mode, mtime: node.mtime, size: node.size }));
    let fd = this.fds.get(spoolPath);
    if (fd === undefined) {
      fd = openSync(spoolPath, 'r');
      this.fds.set(spoolPath, fd);
    }
    let done = 0;
    while (done < node.size) {
      if (this.used === BATCH) await this.flush();
      const want = Math.min(node.size - done, BATCH - this.used);
      const got = readSync(fd, this.batch, this.used, want, node.offset + done);
      if (got <= 0) throw new Error(`spool file ${spoolPath} ended early`);
      this.used += got;
      done += got;
    }
    await this.pad(node.size);
  }

  /**
   * A regular file whose bytes come from `data` (consumed fully).
   * @throws when `data` does not hold exactly `node.size` bytes
   */
  async fileFromStream(name: string, node: MergedFile, data: AsyncIterable<Buffer>): Promise<void> {
    await this.put(tarHeader({ name, typeflag: '0', mode: node.mode, mtime: node.mtime, size: node.size }));
    let done = 0;
    for await (const chunk of data) {
      done += chunk.length;
      if (done > node.size) throw new Error(`${name} holds more than its ${node.size} bytes`);
      await this.put(chunk);
    }
    if (done !== node.size) throw new Error(`${name} ended after ${done} of ${node.size} bytes`);
    await this.pad(node.size);
  }

  /** Write the end-of-archive marker, flush, end the output and close the spool files. */
  async end(): Promise<void> {
    await this.put(Buffer.alloc(BLOCK * 2));
    await this.flush();
    this.close();
    this.output.end();
  }

  /** Close the spool files; later writes fail. Safe to call more than once. */
  close(): void {
    this.closed = true;
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

/**
 * Write the final tree of a {@link MergedImage} to `writer`: `./` first, then depth first with names sorted, so the
 * same image always gives the same bytes. Nodes marked `streamed` (written while the top layer streamed) are
 * skipped; every directory is written (tar2sqfs takes a directory entry after the entries below it and then sets
 * the directory's mode and mtime). A node reached under several names is written once and then as hardlinks to
 * its first name. Does not end the archive: call {@link TarWriter.end}.
 *
 * @param image - the result of {@link mergeLayers}; its spool files must exist until this resolves
 * @param writer - the destination
 */
export async function writeMergedTree(image: MergedImage, writer: TarWriter): Promise<void> {
  const firstName = new Map<MergedNode, string>();
  await writer.directory('', image.root);
  const stack: { dir: MergedDirectory; path: string }[] = [{ dir: image.root, path: '' }];
  while (stack.length > 0) {
    const { dir, path } = stack.pop() as { dir: MergedDirectory; path: string };
    const subdirectories: { dir: MergedDirectory; path: string }[] = [];
    for (const name of [...dir.children.keys()].sort()) {
      const node = dir.children.get(name) as MergedNode;
      const full = path === '' ? name : `${path}/${name}`;
      if (node.kind === 'directory') {
        await writer.directory(full, node);
        subdirectories.push({ dir: node, path: full });
        continue;
      }
      if (node.streamed) continue;
      if (node.linked) {
        const first = firstName.get(node);
        if (first !== undefined) {
          await writer.hardlink(full, node, first);
          continue;
        }
        firstName.set(node, full);
      }
      if (node.kind === 'file') await writer.fileFromSpool(full, node, image.spools[node.layer] as string);
      else await writer.special(full, node);
    }
    // Depth first, in name order: push the sub-directories in reverse.
    for (let i = subdirectories.length - 1; i >= 0; i--)
      stack.push(subdirectories[i] as { dir: MergedDirectory; path: string });
  }
}

/**
 * The final tree of a {@link MergedImage} (merged without streaming) as ONE tar stream; see {@link writeMergedTree}.
 *
 * @param image - the result of {@link mergeLayers}; its spool files must exist until the stream ends
 * @returns a byte stream (not object mode); destroying it stops the writing
 */
export function mergedImageTar(image: MergedImage): Readable {
  const output = new PassThrough({ highWaterMark: BATCH });
  const writer = new TarWriter(output);
  writeMergedTree(image, writer)
    .then(() => writer.end())
    .catch((error: unknown) => {
      writer.close();
      output.destroy(error as Error);
    });
  return output;
}
