import { spawnSync } from 'node:child_process';
import {
  type Stats,
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  futimesSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Header, extract as tarExtract } from 'tar-stream';
import { LayerError } from '../errors/index.js';
import {
  type EntryRecord,
  type LayerSummary,
  type NodeKind,
  type ResolvedDirectory,
  type TreeBackend,
  type UnpackBudget,
  LayerRules,
  createUnpackBudget,
  entryRecord,
  joinRel,
  unpackError,
} from './entry-rules.js';

// The budget, summary and error helpers are defined with the entry rules; re-exported here where they always were.
export {
  type DroppedEntry,
  type LayerSummary,
  type UnpackBudget,
  createUnpackBudget,
  unpackError,
} from './entry-rules.js';

/** Policy knobs of the layer applier. */
export interface RootTreeOptions {
  /** Create char/block device nodes instead of dropping them (needs root; default false). */
  keepDevices?: boolean;
  /** Shared caps; a fresh budget from `maxUnpackedBytes`/`maxEntries` when omitted. */
  budget?: UnpackBudget;
  /** Cap on unpacked bytes when no budget is given (default 64 GiB). */
  maxUnpackedBytes?: number;
  /** Cap on entries when no budget is given (default 5 000 000). */
  maxEntries?: number;
  /** Checked between entries. */
  signal?: AbortSignal;
  /** mtime (seconds) of directories no layer describes (created implicitly as parents); default 0. */
  defaultDirectoryMtime?: number;
}

interface DirectoryMeta {
  mode: number;
  mtime: number;
}

const isErrno = (error: unknown, code: string) => (error as NodeJS.ErrnoException | undefined)?.code === code;

function lstatOrNull(path: string) {
  // throwIfNoEntry: most lookups are for paths that do not exist yet, and an ENOENT exception per file is costly.
  return lstatSync(path, { throwIfNoEntry: false }) ?? null;
}

/** A file opened by {@link DiskTree.create}, waiting for its bytes. */
interface PendingFile {
  fd: number;
  mode: number;
  mtime: number;
}

/**
 * The on-disk backend of the entry rules (entry-rules.ts): nodes are files below `rootDir`, a directory handle is
 * its real path relative to the root, a node is its lstat. It keeps the final mode and mtime of every directory
 * (applied by {@link DiskTree.finish}, because creating children changes a directory's mtime and a read-only
 * directory would block its own children) and a cache of resolved parent directories.
 *
 * Memory: a layer can have millions of files, so the non-directories a layer creates are remembered by inode number
 * (a new file has a new inode; no lower path can share it), not by path.
 */
class DiskTree implements TreeBackend<string, Stats> {
  readonly root = '';
  readonly resolveCache = new Map<string, ResolvedDirectory<string>>();
  readonly directories = new Map<string, DirectoryMeta>();
  /** The file the last {@link create} opened, until {@link fill} writes it. */
  pending: PendingFile | null = null;
  private addedInodes = new Set<number>();
  /** Digest of the layer being applied (error details). */
  private layer = '';

  constructor(
    readonly rootDir: string,
    private readonly defaultDirectoryMtime: number,
  ) {}

  abs(rel: string): string {
    return rel === '' ? this.rootDir : `${this.rootDir}/${rel}`;
  }

  child(dir: string, name: string): Stats | undefined {
    // throwIfNoEntry: most lookups are for paths that do not exist yet, and an ENOENT exception per file is costly.
    return lstatSync(this.abs(joinRel(dir, name)), { throwIfNoEntry: false });
  }

  kind(node: Stats): NodeKind {
    return node.isDirectory() ? 'directory' : node.isSymbolicLink() ? 'symlink' : 'other';
  }

  enter(node: Stats, dir: string, name: string): string {
    const rel = joinRel(dir, name);
    // A directory from an earlier layer: remember its metadata now, before children change its mtime.
    if (!this.directories.has(rel))
      this.directories.set(rel, { mode: node.mode & 0o7777, mtime: Math.floor(node.mtimeMs / 1000) });
    return rel;
  }

  linkTarget(_node: Stats, dir: string, name: string): string {
    return readlinkSync(this.abs(joinRel(dir, name)));
  }

  makeImplicitDirectory(dir: string, name: string): string {
    const rel = joinRel(dir, name);
    mkdirSync(this.abs(rel), { mode: 0o755 });
    if (!this.directories.has(rel)) this.directories.set(rel, { mode: 0o755, mtime: this.defaultDirectoryMtime });
    return rel;
  }

  lookup(rel: string): { dir: string; name: string; node: Stats } | null {
    const node = lstatOrNull(this.abs(rel));
    if (node === null) return null;
    const slash = rel.lastIndexOf('/');
    return { dir: slash < 0 ? '' : rel.slice(0, slash), name: rel.slice(slash + 1), node };
  }

  childNames(dir: string): string[] {
    return readdirSync(this.abs(dir));
  }

  /** Remove whatever is at `rel` (a subtree for directories) and forget cached resolutions that may run through it. */
  remove(_dir: string, _name: string, rel: string): void {
    const path = this.abs(rel);
    const stat = lstatOrNull(path);
    if (stat === null) return;
    if (stat.isDirectory()) {
      // Lower layers may have left directories without owner write/execute bits; we only apply final modes at the
      // end, so everything below is still 0700-accessible to us here.
      rmSync(path, { recursive: true, force: true });
      const prefix = `${rel}/`;
      for (const key of this.directories.keys())
        if (key === rel || key.startsWith(prefix)) this.directories.delete(key);
    } else {
      unlinkSync(path);
    }
    this.resolveCache.clear();
  }

  beginLayer(_index: number, layer: string): void {
    this.layer = layer;
    this.addedInodes = new Set();
  }

  createdByLayer(node: Stats): boolean {
    return this.addedInodes.has(node.ino);
  }

  setRoot(mode: number, mtime: number): void {
    this.directories.set('', { mode, mtime });
  }

  updateDirectory(_node: Stats, _dir: string, _name: string, rel: string, mode: number, mtime: number): void {
    this.directories.set(rel, { mode, mtime });
  }

  makeDirectory(_dir: string, _name: string, rel: string, mode: number, mtime: number): void {
    mkdirSync(this.abs(rel), { mode: 0o755 });
    this.directories.set(rel, { mode, mtime });
  }

  link(_dir: string, _name: string, rel: string, target: Stats, targetRel: string): Stats {
    // NOTE: link(2) does not follow a symlink as its source.
    linkSync(this.abs(targetRel), this.abs(rel));
    return target;
  }

  create(_dir: string, _name: string, rel: string, record: EntryRecord): Stats {
    const path = this.abs(rel);
    const { type, mode, mtime } = record;
    if (type === 'file' || type === 'contiguous-file') {
      // O_EXCL|O_NOFOLLOW: whatever was there was just removed; if anything reappeared, fail instead of following it.
      const fd = openSync(
        path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      try {
        const stat = fstatSync(fd);
        this.addedInodes.add(stat.ino);
        this.pending = { fd, mode, mtime };
        return stat;
      } catch (error) {
        closeSync(fd);
        throw error;
      }
    }
    if (type === 'symlink') {
      symlinkSync(record.linkname, path);
      lutimesSync(path, mtime, mtime);
    } else {
      const args =
        type === 'fifo'
          ? ['mkfifo', '-m', mode.toString(8), path]
          : [
              'mknod',
              '-m',
              mode.toString(8),
              path,
              type === 'character-device' ? 'c' : 'b',
              String(record.devmajor),
              String(record.devminor),
            ];
      const result = spawnSync(args[0] as string, args.slice(1), { encoding: 'utf8' });
      if (result.status !== 0) {
        throw new LayerError(
          'SHIFTER_LAYER_UNSUPPORTED',
          `cannot create ${String(type)} ${JSON.stringify(record.name)}: ${result.stderr || result.error?.message}`,
          {
            details: { layer: this.layer, entry: record.name },
          },
        );
      }
      chmodSync(path, mode);
      utimesSync(path, mtime, mtime);
    }
    const stat = lstatSync(path);
    this.addedInodes.add(stat.ino);
    return stat;
  }

  /** Write the bytes of the file {@link create} opened, then its mode and mtime (after the data: some kernels clear setuid/setgid on write). */
  async fill(data: AsyncIterable<Buffer>): Promise<void> {
    const pending = this.pending as PendingFile;
    this.pending = null;
    try {
      for await (const chunk of data) {
        let offset = 0;
        while (offset < chunk.length) offset += writeSync(pending.fd, chunk, offset, chunk.length - offset);
      }
      fchmodSync(pending.fd, pending.mode);
      futimesSync(pending.fd, pending.mtime, pending.mtime);
    } finally {
      closeSync(pending.fd);
    }
  }

  /** Close a file left open by a failed entry. */
  abandon(): void {
    if (this.pending) closeSync(this.pending.fd);
    this.pending = null;
  }

  finish(): void {
    const entries = [...this.directories.entries()].sort((a, b) => b[0].length - a[0].length);
    for (const [rel, meta] of entries) {
      const path = this.abs(rel);
      try {
        chmodSync(path, meta.mode);
        utimesSync(path, meta.mtime, meta.mtime);
      } catch (error) {
        if (!isErrno(error, 'ENOENT') && !isErrno(error, 'ENOTDIR')) throw error;
      }
    }
    if (!this.directories.has('')) {
      // No layer described the root: give it the usual 0755 and a fixed mtime, so the squashfs stays reproducible.
      chmodSync(this.rootDir, 0o755);
      utimesSync(this.rootDir, this.defaultDirectoryMtime, this.defaultDirectoryMtime);
    }
  }
}

/**
 * A directory being filled with image layers, lowest first: the entry rules of entry-rules.ts applied to files on
 * disk. Directory modes and mtimes are applied by {@link RootTree.finish}, after the last layer.
 *
 * SECURITY: every path is resolved component by component with lstat, inside `rootDir`, the way a chroot would
 * resolve it (see `resolveDirectory` in entry-rules.ts); the last component is never followed. This walk is
 * race-free only because nothing else writes into the scratch directory while we work (it is private to this
 * conversion, mode 0700).
 *
 * Not safe for concurrent use; one RootTree per conversion.
 */
export class RootTree {
  readonly rootDir: string;
  private readonly budget: UnpackBudget;
  private readonly options: RootTreeOptions;
  private readonly disk: DiskTree;
  private layers = 0;

  /**
   * @param rootDir - existing directory private to this conversion (normally empty)
   * @param options - policy and caps; a budget passed here is shared and updated in place
   */
  constructor(rootDir: string, options: RootTreeOptions = {}) {
    this.rootDir = rootDir.replace(/\/+$/, '') || '/';
    this.options = options;
    this.budget = options.budget ?? createUnpackBudget(options);
    this.disk = new DiskTree(this.rootDir, options.defaultDirectoryMtime ?? 0);
  }

  /**
   * Apply one layer's tar stream (already decompressed) on top of the tree, with the rules of `LayerRules`
   * (entry-rules.ts): whiteouts remove from lower layers only, whichever order the tar lists them in.
   *
   * @param tar - uncompressed tar bytes; consumed fully, destroyed on failure (caller still owns it otherwise)
   * @param layer - digest or name used in error details and the summary
   * @returns what was done
   * @throws {@link LayerError} with the codes of docs/security-layers.md; `details: { layer, entry }`
   */
  async applyTar(tar: Readable, layer: string): Promise<LayerSummary> {
    const rules = new LayerRules(this.disk, this.budget, this.layers++, layer, {
      keepDevices: this.options.keepDevices,
      signal: this.options.signal,
    });
    // Names are decoded as UTF-8 (tar-stream's default); PAX path/linkpath/size and GNU long names are applied by it.
    const extract = tarExtract();
    const feeding = pipeline(tar, extract);
    feeding.catch(() => undefined);
    let current = '';
    try {
      for await (const entryStream of extract) {
        const header = entryStream.header as Header & { pax?: Record<string, string> | null };
        current = header.name;
        rules.apply(entryRecord(header));
        if (this.disk.pending) await this.disk.fill(entryStream as AsyncIterable<Buffer>);
        else entryStream.resume();
      }
      await feeding;
    } catch (error) {
      this.disk.abandon();
      tar.destroy();
      extract.destroy();
      throw unpackError(error, layer, current);
    }
    return rules.summary;
  }

  /**
   * Apply the recorded final mode and mtime of every directory, deepest first. Call once after the last layer;
   * the tree must not be changed afterwards.
   */
  finish(): void {
    this.disk.finish();
  }

  /** Counters shared with other trees of the same image. */
  get usage(): Readonly<UnpackBudget> {
    return this.budget;
  }
}
