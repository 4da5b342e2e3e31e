/**
 * The entry rules of image layers, written once (docs/security-layers.md): path resolution inside the image root,
 * whiteouts and opaque directories, device nodes, hardlinks and symlinks, the unpack budget and the refusals with
 * their codes. They run against a {@link TreeBackend}: the on-disk tree of {@link RootTree} (root-tree.ts) and the
 * in-memory tree of `mergeLayers` (layer-merge.ts). A backend only stores and finds nodes; every decision about what
 * an entry means, what it may replace and when it is refused is taken here.
 */
import type { Header } from 'tar-stream';
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
    return new ShifterError('SHIFTER_IO_FAILED', `unpacking failed: ${errno.message}`, {
      cause: error,
      details: { layer, entry, errno: errno.code },
    });
  }
  return new LayerError('SHIFTER_LAYER_CORRUPT', `layer is not a valid tar archive: ${(error as Error).message}`, {
    cause: error,
    details: { layer, entry },
  });
}

/** `SHIFTER_LAYER_LIMIT` for the entry-count or unpacked-size cap. @internal */
export function limitError(
  what: 'entry count' | 'unpacked size',
  budget: UnpackBudget,
  layer: string,
  entry: string,
): LayerError {
  return new LayerError('SHIFTER_LAYER_LIMIT', `the image exceeds the ${what} limit`, {
    details: { layer, entry, maxUnpackedBytes: budget.maxUnpackedBytes, maxEntries: budget.maxEntries },
  });
}

/** `SHIFTER_CONVERSION_FAILED` for an aborted conversion. @internal */
export function abortedError(signal: AbortSignal, layer: string): ShifterError {
  return new ShifterError('SHIFTER_CONVERSION_FAILED', 'conversion aborted', {
    cause: signal.reason,
    details: { layer },
  });
}

/**
 * Refuse a name the tar parser could not decode: tar-stream decodes names as UTF-8, and a non-UTF-8 byte turned
 * into U+FFFD, so the real name is lost. @internal
 */
export function checkEntryEncoding(name: string, layer: string): void {
  if (name.includes('\uFFFD')) {
    throw new LayerError('SHIFTER_LAYER_UNSUPPORTED', `entry name ${JSON.stringify(name)} is not valid UTF-8`, {
      details: { layer, entry: name },
    });
  }
}

/** A real path below the root joined with one more component. @internal */
export const joinRel = (parent: string, name: string): string => (parent === '' ? name : `${parent}/${name}`);

/** One tar entry reduced to what the rules need (a regular file's bytes are not part of it). @internal */
export interface EntryRecord {
  /** The name as the archive gave it. */
  name: string;
  type: Header['type'] | null;
  /** Permission bits (with setuid/setgid/sticky). */
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Content size of a regular file. */
  size: number;
  /** Target of a symlink or hardlink ('' for other entries). */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Where the backend finds the content (the in-memory merge: the offset in its layer's spool file). */
  offset: number;
  /** PAX `SCHILY.xattr.*` records on the entry (dropped by policy, counted). */
  xattrs: number;
}

/** The {@link EntryRecord} of a parsed tar header. @internal */
export function entryRecord(header: Header & { pax?: Record<string, string> | null }, offset = 0): EntryRecord {
  let xattrs = 0;
  if (header.pax) for (const key of Object.keys(header.pax)) if (key.startsWith('SCHILY.xattr.')) xattrs += 1;
  return {
    name: header.name,
    type: header.type ?? null,
    mode: (header.mode ?? 0o644) & 0o7777,
    mtime: Math.floor((header.mtime?.getTime() ?? 0) / 1000),
    size: header.size ?? 0,
    linkname: header.linkname ?? '',
    devmajor: header.devmajor ?? 0,
    devminor: header.devminor ?? 0,
    offset,
    xattrs,
  };
}

/** What a backend's node is, as far as the rules care. */
export type NodeKind = 'directory' | 'symlink' | 'other';

/** A directory found by {@link resolveDirectory}. */
export interface ResolvedDirectory<D> {
  /** The backend's handle of the directory. */
  dir: D;
  /** Its real path below the root ('' for the root). */
  rel: string;
  /** The directories from the root's child down to `dir` (empty for the root). */
  chain: D[];
}

/**
 * A place layers are flattened into. `D` is the backend's handle of a directory, `N` of any node. The backend
 * stores and finds nodes and keeps whatever bookkeeping it needs (directory metadata to apply at the end, spool
 * offsets); it never decides what an entry means: that is {@link LayerRules}. Names passed in are single path
 * components below an already resolved directory; `rel` is always the real path (no symlink on the way).
 */
export interface TreeBackend<D, N> {
  /** The image root. */
  readonly root: D;
  /** Cache of resolved parent paths by their components joined with `/`; the backend clears it when it removes. */
  readonly resolveCache?: Map<string, ResolvedDirectory<D>>;
  /** The node named `name` in `dir`, the name itself never followed (an lstat, not a stat). */
  child(dir: D, name: string): N | undefined;
  kind(node: N): NodeKind;
  /** The handle of directory `node`, named `name` in `dir` (met while resolving a path). */
  enter(node: N, dir: D, name: string): D;
  /** The target of symlink `node`, named `name` in `dir`, verbatim. */
  linkTarget(node: N, dir: D, name: string): string;
  /** Create a directory no layer describes (a missing parent): mode 0755, the default directory mtime. */
  makeImplicitDirectory(dir: D, name: string): D;
  /** The node at real path `rel` (no symlinks on the way) with its parent, or null. */
  lookup(rel: string): { dir: D; name: string; node: N } | null;
  /** The names in directory `dir` (real path `rel`). */
  childNames(dir: D, rel: string): string[];
  /** Remove `name` from `dir` (a whole subtree for a directory). */
  remove(dir: D, name: string, rel: string): void;
  /** The layer with this index and digest is applied next; its own new nodes are told apart by {@link createdByLayer}. */
  beginLayer(index: number, layer: string): void;
  /** Whether non-directory `node` was created by the layer being applied (a whiteout never removes those). */
  createdByLayer(node: N): boolean;
  /** Set the root's mode and mtime (the layer described `./`). */
  setRoot(mode: number, mtime: number): void;
  /** Set the mode and mtime of existing directory `node`. */
  updateDirectory(node: N, dir: D, name: string, rel: string, mode: number, mtime: number): void;
  /** Create directory `name` in `dir` (nothing is there). */
  makeDirectory(dir: D, name: string, rel: string, mode: number, mtime: number): void;
  /** Give non-directory `target` (at `targetRel`) a second name `name` in `dir` (nothing is there); returns the node. */
  link(dir: D, name: string, rel: string, target: N, targetRel: string): N;
  /**
   * Create a file, symlink, FIFO or device node `name` in `dir` (nothing is there). A regular file's content is the
   * backend's business (the disk backend opens the file here and its reader then writes the bytes).
   */
  create(dir: D, name: string, rel: string, record: EntryRecord): N;
}

/** A non-directory an entry added (or, for a hardlink, gave another name). */
export interface AppliedEntry<D, N> {
  node: N;
  /** The real path of the new name. */
  rel: string;
  /** The directories leading to it. */
  chain: D[];
  /** True for a hardlink: `node` existed before under another name. */
  hardlink: boolean;
  /** For a hardlink: the real path of the name it links to. */
  targetRel?: string;
}

/**
 * Resolve parent components to a directory, following symlinks inside the root.
 *
 * SECURITY: every path is resolved component by component without following the name itself (an lstat), inside the
 * root, the way a chroot would resolve it: a symlink met on the way is followed with its target interpreted against
 * the image root (an absolute target or a `..` past the top lands on the root, never outside), at most
 * {@link MAX_SYMLINK_HOPS} of them. The last component of an entry is never followed: an entry replaces a symlink,
 * it does not write through it.
 *
 * With `create`, missing directories are made (implicit, 0755) and a non-directory on the way is
 * `SHIFTER_LAYER_CORRUPT`; without, returns null when something is missing or not a directory.
 */
export function resolveDirectory<D, N>(
  backend: TreeBackend<D, N>,
  components: string[],
  create: boolean,
  layer: string,
  entry: string,
): ResolvedDirectory<D> | null {
  const cache = backend.resolveCache;
  const key = cache ? components.join('/') : '';
  if (cache) {
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
  }
  const current: D[] = [];
  const names: string[] = [];
  const queue = [...components];
  let hops = 0;
  while (queue.length > 0) {
    const part = queue.shift() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      current.pop();
      names.pop();
      continue;
    }
    const dir = current.at(-1) ?? backend.root;
    const child = backend.child(dir, part);
    const kind = child === undefined ? undefined : backend.kind(child);
    if (child === undefined) {
      if (!create) return null;
      current.push(backend.makeImplicitDirectory(dir, part));
      names.push(part);
    } else if (kind === 'directory') {
      current.push(backend.enter(child, dir, part));
      names.push(part);
    } else if (kind === 'symlink') {
      hops += 1;
      if (hops > MAX_SYMLINK_HOPS) {
        throw new LayerError('SHIFTER_LAYER_UNSAFE_LINK', `too many symlinks resolving the parent of ${entry}`, {
          details: { layer, entry },
        });
      }
      const target = backend.linkTarget(child, dir, part);
      // SECURITY: an absolute target restarts at the image root, not the host root.
      if (target.startsWith('/')) {
        current.length = 0;
        names.length = 0;
      }
      queue.unshift(...target.split('/'));
    } else {
      if (!create) return null;
      const parent = [...names, part].join('/');
      throw new LayerError('SHIFTER_LAYER_CORRUPT', `a parent of ${entry} is not a directory (${parent})`, {
        details: { layer, entry, parent },
      });
    }
  }
  const resolved: ResolvedDirectory<D> = { dir: current.at(-1) ?? backend.root, rel: names.join('/'), chain: current };
  cache?.set(key, resolved);
  return resolved;
}

/** Policy of {@link LayerRules}. */
export interface LayerRulesOptions {
  /** Create char/block device nodes instead of dropping them (default false). */
  keepDevices?: boolean;
  /** Checked before every entry. */
  signal?: AbortSignal;
}

/**
 * Applies one layer's entries, in archive order, to a backend: the rules of docs/security-layers.md.
 *
 * Whiteouts (image-spec layer.md): `dir/.wh.name` removes `name` from LOWER layers and `dir/.wh..wh..opq` removes
 * every lower child of `dir`; neither marker is extracted. Tars may list a whiteout before or after an entry it
 * names (Docker emits whiteouts last; other builders first), so everything this layer added is remembered (plus the
 * directories leading to it) and a whiteout never removes it — whichever order the tar has, the result is "apply all
 * whiteouts first, then the entries". (umoci does the same with its upperPaths set.)
 *
 * Policy: device nodes dropped unless `keepDevices`, xattrs dropped (counted), `.wh..wh.*` aufs bookkeeping
 * dropped, ownership ignored, setuid/setgid and sticky bits kept, FIFOs kept, mtimes kept.
 */
export class LayerRules<D, N> {
  /** What this layer did so far. */
  readonly summary: LayerSummary;
  private readonly addedPaths = new Set<string>();
  private readonly addedAncestors = new Set<string>();

  /**
   * @param backend - the tree; told that layer `index` begins
   * @param budget - caps shared by the image's layers, updated in place
   * @param index - the layer's index (lowest 0)
   * @param layer - its digest, for error details and the summary
   * @param options - policy
   */
  constructor(
    private readonly backend: TreeBackend<D, N>,
    private readonly budget: UnpackBudget,
    index: number,
    private readonly layer: string,
    private readonly options: LayerRulesOptions = {},
  ) {
    this.summary = { layer, entries: 0, bytes: 0, whiteouts: 0, dropped: [], xattrsDropped: 0 };
    backend.beginLayer(index, layer);
  }

  /** Remember what this layer added: a path (directories, hardlinks) or, for a new node, only its ancestors. */
  private markAdded(rel: string, path: boolean): void {
    if (path) this.addedPaths.add(rel);
    let slash = rel.lastIndexOf('/');
    while (slash > 0) {
      const parent = rel.slice(0, slash);
      if (this.addedAncestors.has(parent)) break;
      this.addedAncestors.add(parent);
      slash = parent.lastIndexOf('/');
    }
    this.addedAncestors.add('');
  }

  /** Remove `rel` except what this layer added (and the directories leading to it). */
  private prune(rel: string): void {
    const { backend } = this;
    const found = backend.lookup(rel);
    if (found === null) return;
    const { dir, name, node } = found;
    if (backend.kind(node) === 'directory') {
      if (this.addedPaths.has(rel) || this.addedAncestors.has(rel)) {
        for (const child of backend.childNames(backend.enter(node, dir, name), rel)) this.prune(joinRel(rel, child));
      } else backend.remove(dir, name, rel);
    } else if (!backend.createdByLayer(node) && !this.addedPaths.has(rel)) backend.remove(dir, name, rel);
  }

  private drop(entry: string, reason: string): void {
    if (this.summary.dropped.length < MAX_DROPPED_LISTED)
      this.summary.dropped.push({ layer: this.layer, entry, reason });
  }

  /**
   * Apply one entry.
   *
   * @returns the non-directory it added or gave a second name (for streaming it), or null
   * @throws {@link LayerError} `SHIFTER_LAYER_UNSAFE_PATH`, `SHIFTER_LAYER_UNSAFE_LINK`, `SHIFTER_LAYER_INVALID_WHITEOUT`,
   *   `SHIFTER_LAYER_CORRUPT`, `SHIFTER_LAYER_UNSUPPORTED`, `SHIFTER_LAYER_LIMIT`, all with `details.layer` and
   *   `details.entry`; `SHIFTER_CONVERSION_FAILED` when aborted; whatever the backend throws
   */
  apply(record: EntryRecord): AppliedEntry<D, N> | null {
    const { backend, budget, layer, summary } = this;
    const entry = record.name;
    const signal = this.options.signal;
    if (signal?.aborted) throw abortedError(signal, layer);
    summary.entries += 1;
    budget.entries += 1;
    if (budget.entries > budget.maxEntries) throw limitError('entry count', budget, layer, entry);
    summary.xattrsDropped += record.xattrs;
    checkEntryEncoding(entry, layer);
    const { type, mode, mtime } = record;
    const { components } = splitEntryName(entry, { layer, entry, kind: 'entry' });
    const name = components.at(-1) ?? '';
    const parentComponents = components.slice(0, -1);

    // --- whiteouts ---------------------------------------------------------------------------------------------
    if (name.startsWith(WHITEOUT_PREFIX)) {
      // The parent is resolved like any path (symlinks followed inside the root), so a whiteout reached through a
      // symlink can only ever remove something inside the image; a missing parent means there is nothing to hide.
      const parent = resolveDirectory(backend, parentComponents, false, layer, entry);
      summary.whiteouts += 1;
      if (name === OPAQUE_MARKER) {
        if (parent !== null)
          for (const child of backend.childNames(parent.dir, parent.rel)) this.prune(joinRel(parent.rel, child));
        return null;
      }
      if (name.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) {
        // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless outside aufs, never part of the image.
        this.drop(entry, 'aufs-metadata');
        return null;
      }
      const target = name.slice(WHITEOUT_PREFIX.length);
      // SECURITY: ".wh." (empty), ".wh.." and ".wh..." would name the directory itself or its parent.
      if (target === '' || target === '.' || target === '..') {
        throw new LayerError(
          'SHIFTER_LAYER_INVALID_WHITEOUT',
          `whiteout ${JSON.stringify(entry)} names "." or ".." or nothing`,
          {
            details: { layer, entry },
          },
        );
      }
      if (parent !== null) this.prune(joinRel(parent.rel, target));
      return null;
    }

    // --- devices -----------------------------------------------------------------------------------------------
    if ((type === 'character-device' || type === 'block-device') && !this.options.keepDevices) {
      this.drop(entry, 'device');
      return null;
    }

    // --- the root itself ("./") --------------------------------------------------------------------------------
    if (components.length === 0) {
      if (type !== 'directory') {
        throw new LayerError(
          'SHIFTER_LAYER_UNSAFE_PATH',
          `entry ${JSON.stringify(entry)} would replace the image root`,
          { details: { layer, entry } },
        );
      }
      backend.setRoot(mode, mtime);
      return null;
    }

    // --- budget ------------------------------------------------------------------------------------------------
    const isFile = type === 'file' || type === 'contiguous-file';
    if (isFile) {
      if (budget.unpackedBytes + record.size > budget.maxUnpackedBytes)
        throw limitError('unpacked size', budget, layer, entry);
      budget.unpackedBytes += record.size;
      summary.bytes += record.size;
    }

    const {
      dir,
      rel: parentRel,
      chain,
    } = resolveDirectory(backend, parentComponents, true, layer, entry) as ResolvedDirectory<D>;
    const rel = joinRel(parentRel, name);
    const existing = backend.child(dir, name);

    // --- directories: over a directory only the metadata changes; over anything else it replaces it ------------
    if (type === 'directory') {
      if (existing !== undefined && backend.kind(existing) === 'directory')
        backend.updateDirectory(existing, dir, name, rel, mode, mtime);
      else {
        if (existing !== undefined) backend.remove(dir, name, rel);
        backend.makeDirectory(dir, name, rel, mode, mtime);
      }
      this.markAdded(rel, true);
      return null;
    }

    // --- hardlinks: a second name of a node already in the tree, never of a directory or anything outside ------
    if (type === 'link') {
      const linkname = record.linkname;
      const target = splitEntryName(linkname, { layer, entry, kind: 'hardlink' });
      if (target.components.length === 0) {
        throw new LayerError(
          'SHIFTER_LAYER_UNSAFE_LINK',
          `hardlink ${JSON.stringify(entry)} points at the image root`,
          { details: { layer, entry, linkname } },
        );
      }
      const targetParent = resolveDirectory(backend, target.components.slice(0, -1), false, layer, entry);
      const targetName = target.components.at(-1) as string;
      const targetNode = targetParent === null ? undefined : backend.child(targetParent.dir, targetName);
      if (targetParent === null || targetNode === undefined) {
        throw new LayerError(
          'SHIFTER_LAYER_CORRUPT',
          `hardlink ${JSON.stringify(entry)} points at missing ${JSON.stringify(linkname)}`,
          {
            details: { layer, entry, linkname },
          },
        );
      }
      if (backend.kind(targetNode) === 'directory') {
        throw new LayerError('SHIFTER_LAYER_UNSAFE_LINK', `hardlink ${JSON.stringify(entry)} points at a directory`, {
          details: { layer, entry, linkname },
        });
      }
      const targetRel = joinRel(targetParent.rel, targetName);
      if (targetRel === rel) return null;
      if (existing !== undefined) backend.remove(dir, name, rel);
      // NOTE: the target is never followed: a hardlink to a symlink is a second name of the symlink itself (as with
      // umoci and GNU tar), never of whatever it points at.
      const node = backend.link(dir, name, rel, targetNode, targetRel);
      this.markAdded(rel, true);
      return { node, rel, chain, hardlink: true, targetRel };
    }

    // --- files, symlinks, FIFOs, kept device nodes: replace whatever is there --------------------------------------
    if (type === 'symlink') {
      // The target is stored verbatim: it is only ever interpreted inside the container (or by resolveDirectory,
      // which keeps it inside the root).
      if (record.linkname === '') {
        throw new LayerError('SHIFTER_LAYER_CORRUPT', `symlink ${JSON.stringify(entry)} has an empty target`, {
          details: { layer, entry },
        });
      }
    } else if (!isFile && type !== 'fifo' && type !== 'character-device' && type !== 'block-device') {
      throw new LayerError(
        'SHIFTER_LAYER_UNSUPPORTED',
        `entry ${JSON.stringify(entry)} has unsupported type ${String(type)}`,
        {
          details: { layer, entry, type },
        },
      );
    }
    if (existing !== undefined) backend.remove(dir, name, rel);
    const node = backend.create(dir, name, rel, record);
    this.markAdded(rel, false);
    return { node, rel, chain, hardlink: false };
  }
}
