import { spawnSync } from 'node:child_process';
import {
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
import { LayerError, ShifterError } from '../errors/index.js';
import { splitEntryName } from './entry-name.js';
import { MAX_DROPPED_LISTED, MAX_SYMLINK_HOPS, OPAQUE_MARKER, WHITEOUT_PREFIX } from './rules.js';

/** Caps shared by all layers of one image; counters are updated in place. */
export interface UnpackBudget {
  /** Most regular-file bytes allowed across all layers. */
  maxUnpackedBytes: number;
  /** Most tar entries allowed across all layers (whiteouts and directories count). */
  maxEntries: number;
  /** Bytes written so far. */
  unpackedBytes: number;
  /** Entries read so far. */
  entries: number;
}

/** Something the policy dropped instead of extracting. */
export interface DroppedEntry {
  /** Layer digest. */
  layer: string;
  /** Entry name as in the archive. */
  entry: string;
  /** `device` (char/block node), `aufs-metadata` (`.wh..wh.*` other than the opaque marker). */
  reason: string;
}

/** What applying one layer did. */
export interface LayerSummary {
  /** Layer digest (or the name given). */
  layer: string;
  /** Tar entries read. */
  entries: number;
  /** Regular-file bytes written. */
  bytes: number;
  /** Whiteout and opaque markers applied. */
  whiteouts: number;
  /** Entries dropped by policy (the first 1000). */
  dropped: DroppedEntry[];
  /** Number of PAX `SCHILY.xattr.*` records ignored (xattrs are dropped by policy). */
  xattrsDropped: number;
}

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

/** The content stream of one tar entry (a streamx Readable). */
type EntryStream = AsyncIterable<Buffer> & { resume(): unknown };


interface DirectoryMeta {
  mode: number;
  mtime: number;
}

/**
 * Make a fresh budget (counters at zero) to share between the layers of one image.
 *
 * @param limits - caps; 64 GiB and 5 000 000 entries when omitted
 */
export function createUnpackBudget(limits: { maxUnpackedBytes?: number; maxEntries?: number } = {}): UnpackBudget {
  return {
    maxUnpackedBytes: limits.maxUnpackedBytes ?? 64 * 1024 ** 3,
    maxEntries: limits.maxEntries ?? 5_000_000,
    unpackedBytes: 0,
    entries: 0,
  };
}

/**
 * What a failure while reading a layer means: our own ShifterError as it is; a failed local file operation (disk
 * full, permissions on the scratch directory: not the layer's fault) is `SHIFTER_IO_FAILED`; anything else came
 * from the tar parser, so the layer is `SHIFTER_LAYER_CORRUPT`. Shared by the on-disk and in-memory flatteners.
 * @internal
 */
export function unpackError(error: unknown, layer: string, entry: string): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  const errno = error as NodeJS.ErrnoException;
  if (typeof errno.syscall === 'string') {
    return new ShifterError('SHIFTER_IO_FAILED', `unpacking failed: ${errno.message}`, { cause: error, details: { layer, entry, errno: errno.code } });
  }
  return new LayerError('SHIFTER_LAYER_CORRUPT', `layer is not a valid tar archive: ${(error as Error).message}`, { cause: error, details: { layer, entry } });
}

const isErrno = (error: unknown, code: string) => (error as NodeJS.ErrnoException | undefined)?.code === code;

function lstatOrNull(path: string) {
  // throwIfNoEntry: most lookups are for paths that do not exist yet, and an ENOENT exception per file is costly.
  return lstatSync(path, { throwIfNoEntry: false }) ?? null;
}

/**
 * A directory being filled with image layers, lowest first. It keeps what must outlive one layer: the final mode
 * and mtime of every directory (applied by {@link RootTree.finish}, because creating children changes a directory's
 * mtime and a read-only directory would block its own children) and a cache of resolved parent directories.
 *
 * SECURITY: every path is resolved component by component with lstat, inside `rootDir`, the way a chroot would
 * resolve it: a symlink met on the way is followed with its target interpreted relative to the image root (an
 * absolute target or a `..` past the top lands on the root, never outside). The last component is never followed:
 * an entry replaces a symlink, it does not write through it. This walk is race-free only because nothing else writes
 * into the scratch directory while we work (it is private to this conversion, mode 0700).
 *
 * Not safe for concurrent use; one RootTree per conversion.
 */
export class RootTree {
  readonly rootDir: string;
  private readonly directories = new Map<string, DirectoryMeta>();
  private readonly resolved = new Map<string, string>();
  private readonly budget: UnpackBudget;
  private readonly options: RootTreeOptions;

  /**
   * @param rootDir - existing directory private to this conversion (normally empty)
   * @param options - policy and caps; a budget passed here is shared and updated in place
   */
  constructor(rootDir: string, options: RootTreeOptions = {}) {
    this.rootDir = rootDir.replace(/\/+$/, '') || '/';
    this.options = options;
    this.budget = options.budget ?? createUnpackBudget(options);
  }

  private abs(rel: string): string {
    return rel === '' ? this.rootDir : `${this.rootDir}/${rel}`;
  }

  /**
   * Resolve parent components to a real directory path relative to the root, following symlinks inside the root.
   * With `create`, missing directories are made (mode 0755, implicit); without, returns null when something is missing
   * or not a directory.
   */
  private resolveDirectory(components: string[], create: boolean, layer: string, entry: string): string | null {
    const key = components.join('/');
    const cached = this.resolved.get(key);
    if (cached !== undefined) return cached;
    const current: string[] = [];
    const queue = [...components];
    let hops = 0;
    while (queue.length > 0) {
      const part = queue.shift() as string;
      if (part === '' || part === '.') continue;
      if (part === '..') {
        current.pop();
        continue;
      }
      const rel = [...current, part].join('/');
      const stat = lstatOrNull(this.abs(rel));
      if (stat === null) {
        if (!create) return null;
        mkdirSync(this.abs(rel), { mode: 0o755 });
        if (!this.directories.has(rel)) this.directories.set(rel, { mode: 0o755, mtime: this.options.defaultDirectoryMtime ?? 0 });
        current.push(part);
      } else if (stat.isDirectory()) {
        // A directory from an earlier applyLayer() call: remember its metadata now, before children change its mtime.
        if (!this.directories.has(rel)) this.directories.set(rel, { mode: stat.mode & 0o7777, mtime: Math.floor(stat.mtimeMs / 1000) });
        current.push(part);
      } else if (stat.isSymbolicLink()) {
        hops += 1;
        if (hops > MAX_SYMLINK_HOPS) {
          throw new LayerError('SHIFTER_LAYER_UNSAFE_LINK', `too many symlinks resolving the parent of ${entry}`, {
            details: { layer, entry },
          });
        }
        const target = readlinkSync(this.abs(rel));
        // SECURITY: an absolute target restarts at the image root, not the host root.
        if (target.startsWith('/')) current.length = 0;
        queue.unshift(...target.split('/'));
      } else {
        if (!create) return null;
        throw new LayerError('SHIFTER_LAYER_CORRUPT', `a parent of ${entry} is not a directory (${rel})`, {
          details: { layer, entry, parent: rel },
        });
      }
    }
    const real = current.join('/');
    this.resolved.set(key, real);
    return real;
  }

  /** Remove whatever is at `rel` (a subtree for directories) and forget cached resolutions that may run through it. */
  private remove(rel: string): void {
    const path = this.abs(rel);
    const stat = lstatOrNull(path);
    if (stat === null) return;
    if (stat.isDirectory()) {
      // Lower layers may have left directories without owner write/execute bits; we only apply final modes at the
      // end, so everything below is still 0700-accessible to us here.
      rmSync(path, { recursive: true, force: true });
      const prefix = `${rel}/`;
      for (const key of this.directories.keys()) if (key === rel || key.startsWith(prefix)) this.directories.delete(key);
    } else {
      unlinkSync(path);
    }
    this.resolved.clear();
  }

  private limit(what: string, layer: string, entry: string): LayerError {
    return new LayerError('SHIFTER_LAYER_LIMIT', `the image exceeds the ${what} limit`, {
      details: {
        layer,
        entry,
        maxUnpackedBytes: this.budget.maxUnpackedBytes,
        maxEntries: this.budget.maxEntries,
      },
    });
  }

  /**
   * Apply one layer's tar stream (already decompressed) on top of the tree.
   *
   * Whiteouts (image-spec layer.md): `dir/.wh.name` removes `name` from LOWER layers and `dir/.wh..wh..opq` removes
   * every lower child of `dir`; neither marker is extracted. The spec says whiteouts only affect lower layers, and
   * tars may list a whiteout before or after an entry it names (Docker emits whiteouts last; other builders first).
   * So we remember everything this layer added (plus `addedAncestors`, the directories leading to it) and a whiteout
   * never removes them — whichever order the tar has, the result is "apply all whiteouts first, then the entries".
   * umoci does the same with its upperPaths set.
   *
   * @param tar - uncompressed tar bytes; consumed fully, destroyed on failure (caller still owns it otherwise)
   * @param layer - digest or name used in error details and the summary
   * @returns what was done
   * @throws {@link LayerError} with the codes of docs/security-layers.md; `details: { layer, entry }`
   */
  async applyTar(tar: Readable, layer: string): Promise<LayerSummary> {
    const summary: LayerSummary = { layer, entries: 0, bytes: 0, whiteouts: 0, dropped: [], xattrsDropped: 0 };
    // Memory: a layer can have millions of files, so fresh non-directories are remembered by inode number (a new
    // file has a new inode; no lower path can share it), not by path. Directories and hardlinks (which share a lower
    // file's inode) are remembered by path; there are far fewer of them.
    const addedInodes = new Set<number>();
    const addedPaths = new Set<string>();
    const addedAncestors = new Set<string>();
    const markAdded = (rel: string, how: { ino: number } | 'path') => {
      if (how === 'path') addedPaths.add(rel);
      else addedInodes.add(how.ino);
      let slash = rel.lastIndexOf('/');
      while (slash > 0) {
        const parent = rel.slice(0, slash);
        if (addedAncestors.has(parent)) break;
        addedAncestors.add(parent);
        slash = parent.lastIndexOf('/');
      }
      addedAncestors.add('');
    };
    // Remove `rel` except what this layer added (and the directories leading to it).
    const prune = (rel: string) => {
      const stat = lstatOrNull(this.abs(rel));
      if (stat === null) return;
      if (stat.isDirectory()) {
        if (addedPaths.has(rel) || addedAncestors.has(rel)) {
          for (const child of readdirSync(this.abs(rel))) prune(rel === '' ? child : `${rel}/${child}`);
        } else this.remove(rel);
      } else if (!addedInodes.has(stat.ino) && !addedPaths.has(rel)) this.remove(rel);
    };

    // Names are decoded as UTF-8 (tar-stream's default); PAX path/linkpath/size and GNU long names are applied by it.
    const extract = tarExtract();
    const feeding = pipeline(tar, extract);
    feeding.catch(() => undefined);
    let current = '';
    try {
      for await (const entryStream of extract) {
        const header = entryStream.header as Header & { pax?: Record<string, string> | null };
        current = header.name;
        if (this.options.signal?.aborted) {
          throw new ShifterError('SHIFTER_CONVERSION_FAILED', 'conversion aborted', { cause: this.options.signal.reason, details: { layer } });
        }
        summary.entries += 1;
        this.budget.entries += 1;
        if (this.budget.entries > this.budget.maxEntries) throw this.limit('entry count', layer, current);
        if (header.pax) for (const key of Object.keys(header.pax)) if (key.startsWith('SCHILY.xattr.')) summary.xattrsDropped += 1;
        if (current.includes('\uFFFD')) {
          // tar-stream decodes names as UTF-8; a non-UTF-8 byte turned into U+FFFD and the real name is lost.
          throw new LayerError('SHIFTER_LAYER_UNSUPPORTED', `entry name ${JSON.stringify(current)} is not valid UTF-8`, {
            details: { layer, entry: current },
          });
        }
        await this.applyEntry(header, entryStream as unknown as EntryStream, layer, summary, { markAdded, prune });
      }
      await feeding;
    } catch (error) {
      tar.destroy();
      extract.destroy();
      throw unpackError(error, layer, current);
    }
    return summary;
  }

  private drop(summary: LayerSummary, entry: string, reason: string): void {
    if (summary.dropped.length < MAX_DROPPED_LISTED) summary.dropped.push({ layer: summary.layer, entry, reason });
  }

  private async applyEntry(
    header: Header,
    stream: EntryStream,
    layer: string,
    summary: LayerSummary,
    tracking: { markAdded: (rel: string, how: { ino: number } | 'path') => void; prune: (rel: string) => void },
  ): Promise<void> {
    const entry = header.name;
    const { components } = splitEntryName(entry, { layer, entry, kind: 'entry' });
    const name = components.at(-1) ?? '';
    const parentComponents = components.slice(0, -1);
    const mtime = Math.floor((header.mtime?.getTime() ?? 0) / 1000);
    const mode = (header.mode ?? 0o644) & 0o7777;
    const type = header.type ?? null;

    // --- whiteouts -------------------------------------------------------------------------------------------
    if (name.startsWith(WHITEOUT_PREFIX)) {
      stream.resume();
      const invalid = (why: string) =>
        new LayerError('SHIFTER_LAYER_INVALID_WHITEOUT', `whiteout ${JSON.stringify(entry)} ${why}`, { details: { layer, entry } });
      // The parent is resolved like any path (symlinks followed inside the root), so a whiteout reached through a
      // symlink can only ever remove something inside the image; a missing parent means there is nothing to hide.
      const parent = this.resolveDirectory(parentComponents, false, layer, entry);
      summary.whiteouts += 1;
      if (name === OPAQUE_MARKER) {
        if (parent === null) return;
        for (const child of readdirSync(this.abs(parent))) tracking.prune(parent === '' ? child : `${parent}/${child}`);
        return;
      }
      if (name.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) {
        // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless outside aufs, never part of the image.
        this.drop(summary, entry, 'aufs-metadata');
        return;
      }
      const target = name.slice(WHITEOUT_PREFIX.length);
      // SECURITY: ".wh." (empty), ".wh.." and ".wh..." would name the directory itself or its parent.
      if (target === '' || target === '.' || target === '..') throw invalid('names "." or ".." or nothing');
      if (parent === null) return;
      tracking.prune(parent === '' ? target : `${parent}/${target}`);
      return;
    }

    if (type === 'character-device' || type === 'block-device') {
      stream.resume();
      if (!this.options.keepDevices) {
        this.drop(summary, entry, 'device');
        return;
      }
    }

    // --- the root itself ("./") -------------------------------------------------------------------------------
    if (components.length === 0) {
      stream.resume();
      if (type !== 'directory') {
        throw new LayerError('SHIFTER_LAYER_UNSAFE_PATH', `entry ${JSON.stringify(entry)} would replace the image root`, {
          details: { layer, entry },
        });
      }
      this.directories.set('', { mode, mtime });
      return;
    }

    if (type === 'file' || type === 'contiguous-file') {
      const size = header.size ?? 0;
      if (this.budget.unpackedBytes + size > this.budget.maxUnpackedBytes) {
        stream.resume();
        throw this.limit('unpacked size', layer, entry);
      }
      this.budget.unpackedBytes += size;
      summary.bytes += size;
    }

    const parent = this.resolveDirectory(parentComponents, true, layer, entry) as string;
    const rel = parent === '' ? name : `${parent}/${name}`;
    const path = this.abs(rel);
    const existing = lstatOrNull(path);

    if (type === 'directory') {
      stream.resume();
      // A directory over a directory only updates metadata; over anything else it replaces it.
      if (existing && !existing.isDirectory()) this.remove(rel);
      if (!existing || !existing.isDirectory()) mkdirSync(path, { mode: 0o755 });
      this.directories.set(rel, { mode, mtime });
      tracking.markAdded(rel, 'path');
      return;
    }

    if (type === 'link') {
      stream.resume();
      const linkname = header.linkname ?? '';
      const target = splitEntryName(linkname, { layer, entry, kind: 'hardlink' });
      if (target.components.length === 0) {
        throw new LayerError('SHIFTER_LAYER_UNSAFE_LINK', `hardlink ${JSON.stringify(entry)} points at the image root`, {
          details: { layer, entry, linkname },
        });
      }
      const targetParent = this.resolveDirectory(target.components.slice(0, -1), false, layer, entry);
      const targetRel = targetParent === null ? null : [targetParent, target.components.at(-1)].filter((p) => p !== '').join('/');
      const targetStat = targetRel === null ? null : lstatOrNull(this.abs(targetRel));
      if (targetRel === null || targetStat === null) {
        throw new LayerError('SHIFTER_LAYER_CORRUPT', `hardlink ${JSON.stringify(entry)} points at missing ${JSON.stringify(linkname)}`, {
          details: { layer, entry, linkname },
        });
      }
      if (targetStat.isDirectory()) {
        throw new LayerError('SHIFTER_LAYER_UNSAFE_LINK', `hardlink ${JSON.stringify(entry)} points at a directory`, {
          details: { layer, entry, linkname },
        });
      }
      if (targetRel === rel) return;
      if (existing) this.remove(rel);
      // NOTE: link(2) does not follow a symlink as its source: a hardlink to a symlink becomes a second name of the
      // symlink itself (as with umoci and GNU tar), never of whatever it points at on the host.
      linkSync(this.abs(targetRel), path);
      tracking.markAdded(rel, 'path');
      return;
    }

    if (existing) this.remove(rel);

    if (type === 'file' || type === 'contiguous-file') {
      // O_EXCL|O_NOFOLLOW: we just removed whatever was there; if anything reappeared, fail instead of following it.
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        for await (const chunk of stream) {
          let offset = 0;
          while (offset < chunk.length) offset += writeSync(fd, chunk, offset, chunk.length - offset);
        }
        // After the data: some kernels clear setuid/setgid on write.
        fchmodSync(fd, mode);
        futimesSync(fd, mtime, mtime);
        tracking.markAdded(rel, { ino: fstatSync(fd).ino });
      } finally {
        closeSync(fd);
      }
    } else if (type === 'symlink') {
      stream.resume();
      const linkname = header.linkname ?? '';
      if (linkname === '') {
        throw new LayerError('SHIFTER_LAYER_CORRUPT', `symlink ${JSON.stringify(entry)} has an empty target`, { details: { layer, entry } });
      }
      // The target is stored verbatim: it is only ever interpreted inside the container (or by our own walk above,
      // which keeps it inside the root).
      symlinkSync(linkname, path);
      lutimesSync(path, mtime, mtime);
    } else if (type === 'fifo' || type === 'character-device' || type === 'block-device') {
      stream.resume();
      const args =
        type === 'fifo'
          ? ['mkfifo', '-m', mode.toString(8), path]
          : ['mknod', '-m', mode.toString(8), path, type === 'character-device' ? 'c' : 'b', String(header.devmajor ?? 0), String(header.devminor ?? 0)];
      const result = spawnSync(args[0] as string, args.slice(1), { encoding: 'utf8' });
      if (result.status !== 0) {
        throw new LayerError('SHIFTER_LAYER_UNSUPPORTED', `cannot create ${type} ${JSON.stringify(entry)}: ${result.stderr || result.error?.message}`, {
          details: { layer, entry },
        });
      }
      chmodSync(path, mode);
      utimesSync(path, mtime, mtime);
    } else {
      stream.resume();
      throw new LayerError('SHIFTER_LAYER_UNSUPPORTED', `entry ${JSON.stringify(entry)} has unsupported type ${String(type)}`, {
        details: { layer, entry, type },
      });
    }
    if (type !== 'file' && type !== 'contiguous-file') tracking.markAdded(rel, { ino: lstatSync(path).ino });
  }

  /**
   * Apply the recorded final mode and mtime of every directory, deepest first. Call once after the last layer;
   * the tree must not be changed afterwards.
   */
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
      utimesSync(this.rootDir, this.options.defaultDirectoryMtime ?? 0, this.options.defaultDirectoryMtime ?? 0);
    }
  }

  /** Counters shared with other trees of the same image. */
  get usage(): Readonly<UnpackBudget> {
    return this.budget;
  }
}
