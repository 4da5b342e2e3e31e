import { availableParallelism } from 'node:os';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Header, extract as tarExtract } from 'tar-stream';
import { ShifterError } from '../errors/index.js';
import { openLayerTar } from './decompress.js';
import { splitEntryName } from './entry-name.js';
import {
  type DroppedEntry,
  type EntryRecord,
  type LayerSummary,
  type NodeKind,
  type TreeBackend,
  type UnpackBudget,
  LayerRules,
  abortedError,
  checkEntryEncoding,
  createUnpackBudget,
  entryRecord,
  limitError,
  unpackError,
} from './entry-rules.js';
import type { LayerSource } from './layer-source.js';
import { DEFAULT_MAX_NODES } from './rules.js';

/** A directory of a {@link MergedImage}. */
export interface MergedDirectory {
  kind: 'directory';
  /** Permission bits (with setuid/setgid/sticky). */
  mode: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Entries by name. */
  children: Map<string, MergedNode>;
  /** True when something below was written while the top layer streamed (it must not be removed any more). */
  streamedBelow: boolean;
}

/** A regular file of a {@link MergedImage}; its bytes are `size` bytes at `offset` in the spool file of its layer. */
export interface MergedFile {
  kind: 'file';
  mode: number;
  mtime: number;
  size: number;
  /** Byte offset of the content in that spool file. */
  offset: number;
  /** True once a hardlink named this node (it may then appear under several names). */
  linked: boolean;
  /** Index of the layer that created the node (for a file, also of the spool file in {@link MergedImage.spools}). */
  layer: number;
  /** True when the node was written while the top layer streamed (writeMergedTree skips it). */
  streamed: boolean;
}

/** A symlink of a {@link MergedImage}. */
export interface MergedSymlink {
  kind: 'symlink';
  mode: number;
  mtime: number;
  /** The target, verbatim. */
  target: string;
  linked: boolean;
  layer: number;
  streamed: boolean;
}

/** A FIFO or (with `keepDevices`) a device node of a {@link MergedImage}. */
export interface MergedSpecial {
  kind: 'fifo' | 'character-device' | 'block-device';
  mode: number;
  mtime: number;
  devmajor: number;
  devminor: number;
  linked: boolean;
  layer: number;
  streamed: boolean;
}

/** One node of the merged tree. Several names may share one non-directory node (hardlinks). */
export type MergedNode = MergedDirectory | MergedFile | MergedSymlink | MergedSpecial;

/** The result of {@link mergeLayers}: the final tree of an image, its file contents left in spool files. */
export interface MergedImage {
  /** The image root. */
  root: MergedDirectory;
  /** Spool files (one per layer, file contents only), indexed by the layer index {@link MergedFile.layer}. */
  spools: string[];
  /** One summary per layer, lowest first. */
  layers: LayerSummary[];
  /** Entries across all layers. */
  entries: number;
  /** Regular-file bytes across all layers. */
  unpackedBytes: number;
  /** Entries dropped by policy across all layers. */
  dropped: DroppedEntry[];
  /** Names in the final tree (the root excluded). */
  nodes: number;
  /**
   * How many nodes were written to the `tar` option's writer while the top layer streamed (0 without `tar`); they
   * carry `streamed: true` and {@link writeMergedTree} skips them.
   */
  streamed: number;
}

/** Options of {@link mergeLayers}. */
export interface MergeLayersOptions {
  /** Private directory for the spool files (one per layer, as large as the layer's file contents). */
  spoolDir: string;
  /** Shared caps; a fresh budget from `maxUnpackedBytes`/`maxEntries` when omitted. */
  budget?: UnpackBudget;
  /** Cap on unpacked bytes when no budget is given (default 64 GiB). */
  maxUnpackedBytes?: number;
  /** Cap on entries when no budget is given (default 5 000 000). */
  maxEntries?: number;
  /** Keep char/block device nodes instead of dropping them (default false). */
  keepDevices?: boolean;
  /** mtime (seconds) of directories no layer describes; default 0. */
  defaultDirectoryMtime?: number;
  /**
   * Most names the in-memory tree may hold (default {@link DEFAULT_MAX_NODES}, about 40 MB of heap; a layer waiting to be
   * applied holds up to as many records again). Past it, {@link mergeLayers} rejects
   * with {@link MergeIndexFull} and the caller falls back to unpacking on disk, so memory stays bounded whatever
   * the image.
   */
  maxNodes?: number;
  /** Layers read at the same time (default: the number of cores, at least 2). */
  parallel?: number;
  /** The zstd executable (default `zstd` on PATH). */
  zstdPath?: string;
  /** Checked between entries. */
  signal?: AbortSignal;
  /** Called after each layer is merged, in layer order. */
  onLayer?: (summary: LayerSummary, index: number, count: number) => void;
  /**
   * Stream the top layer into this tar writer while it is read, as soon as every lower layer is merged (its entries
   * are final then, unless the top layer itself changes them again — then {@link SpeculationConflict} is thrown and
   * the caller merges again without `tar`). Complete the archive afterwards with {@link writeMergedTree}, which
   * skips what was streamed. Lets a squashfs builder compress while the (often largest) top layer decompresses.
   * The archive always holds the top layer's entries first, in archive order (from the spool file when the layer
   * was read before the lower ones were merged), so its bytes do not depend on timing.
   */
  tar?: MergedTreeSink;
}

/**
 * Where {@link mergeLayers} streams the top layer: image-builder's `TarWriter` (declared here so the layer code
 * never imports the image builder). Names are real paths below the root.
 */
export interface MergedTreeSink {
  /** A regular file whose bytes arrive now. */
  fileFromStream(name: string, node: MergedFile, data: AsyncIterable<Buffer>): Promise<void>;
  /** A regular file whose bytes are in a spool file. */
  fileFromSpool(name: string, node: MergedFile, spoolPath: string): Promise<void>;
  /** A symlink, FIFO or device node. */
  special(name: string, node: MergedSymlink | MergedSpecial): Promise<void>;
  /** A second name of a node already written under `target`. */
  hardlink(name: string, node: { mode: number; mtime: number }, target: string): Promise<void>;
}

/**
 * Thrown by {@link mergeLayers} when the layer being streamed into `tar` changes something it already streamed (it
 * lists a name twice, or replaces a directory it wrote into). Not an image error: merge again without `tar`.
 */
export class SpeculationConflict extends Error {
  constructor(readonly entry: string) {
    super(`the top layer changes ${JSON.stringify(entry)} after it was streamed; merge again without streaming`);
    this.name = 'SpeculationConflict';
  }
}

/** Thrown by {@link mergeLayers} when the tree would exceed `maxNodes`; not an image error. */
export class MergeIndexFull extends Error {
  constructor(readonly maxNodes: number) {
    super(`the image has more than ${maxNodes} names; unpack it on disk instead`);
    this.name = 'MergeIndexFull';
  }
}

export { DEFAULT_MAX_NODES } from './rules.js';

/** One tar entry as read from a layer, its content (for files) already in the layer's spool file at `offset`. */
type LayerRecord = EntryRecord;

interface ReadLayer {
  /** The entries not yet applied (all of them unless the layer went live). */
  records: LayerRecord[];
  /** True when the layer was applied while it was read (see {@link LiveHandler}). */
  live: boolean;
}

/**
 * Applies a layer's entries while it is read, once every lower layer is merged (so a layer's entries wait in
 * memory only while a lower layer is still being applied); for the top layer with `tar`, also streams them.
 */
interface LiveHandler {
  /** True when {@link LiveHandler.entry} takes a regular file's bytes (streams them) instead of the spool file. */
  takesData: boolean;
  /** Apply the entries read before going live, their file bytes in the spool file. */
  backlog(records: LayerRecord[]): Promise<void>;
  /** Apply one entry; consumes `data` (a regular file's bytes, only when `takesData`) fully. */
  entry(record: LayerRecord, data: AsyncIterable<Buffer> | null): Promise<void>;
}

/**
 * Read one layer: decompress, parse, append every regular file's bytes to a spool file and keep the headers.
 * Names are checked here (absolute, `..`, not UTF-8) so a hostile name is refused with its own code even when the
 * rest of the archive is broken. A layer that alone exceeds the caps is refused here, before its bytes are spooled.
 */
async function readLayer(
  source: LayerSource,
  spool: string,
  budget: UnpackBudget,
  options: MergeLayersOptions,
  signal: AbortSignal,
  live: () => LiveHandler | undefined,
  maxNodes: number,
): Promise<ReadLayer> {
  const layer = source.digest;
  const blob = await openUnlessStopped(source, signal);
  const records: LayerRecord[] = [];
  let fd: number | undefined;
  let opened: Awaited<ReturnType<typeof openLayerTar>> | undefined;
  let current = '';
  let bytes = 0;
  let count = 0;
  let handler: LiveHandler | undefined;
  const extract = tarExtract();
  try {
    opened = await openLayerTar(blob, { layer, mediaType: source.mediaType, zstdPath: options.zstdPath });
    fd = openSync(spool, 'wx', 0o600);
    const feeding = pipeline(opened.tar, extract);
    feeding.catch(() => undefined);
    let offset = 0;
    for await (const entryStream of extract) {
      const header = entryStream.header as Header & { pax?: Record<string, string> | null };
      current = header.name;
      if (signal.aborted) throw abortedError(signal, layer);
      count += 1;
      if (count > budget.maxEntries) throw limitError('entry count', budget, layer, current);
      // Memory: a layer's records wait in memory until the layer is applied; never more than the tree may hold.
      if (records.length >= maxNodes) throw new MergeIndexFull(maxNodes);
      // Checked here so a hostile name is refused even when the rest of the archive is broken (the rules check
      // again when the entry is applied; keeping the components of every entry would double the memory a layer's
      // records take).
      checkEntryEncoding(current, layer);
      splitEntryName(current, { layer, entry: current, kind: 'entry' });
      const record: LayerRecord = entryRecord(header, offset);
      const type = record.type;
      const isFile = type === 'file' || type === 'contiguous-file';
      if (isFile && bytes + (header.size ?? 0) > budget.maxUnpackedBytes)
        throw limitError('unpacked size', budget, layer, current);
      if (!handler) {
        handler = live();
        if (handler) {
          await handler.backlog(records);
          records.length = 0;
        }
      }
      if (handler?.takesData && isFile) {
        bytes += record.size;
        await handler.entry(record, entryStream as AsyncIterable<Buffer>);
        continue;
      }
      if (isFile) {
        const size = header.size ?? 0;
        bytes += size;
        let written = 0;
        for await (const chunk of entryStream as AsyncIterable<Buffer>) {
          let at = 0;
          while (at < chunk.length) at += writeSync(fd, chunk, at, chunk.length - at);
          written += chunk.length;
        }
        record.size = written;
        offset += written;
      } else {
        entryStream.resume();
      }
      if (handler) await handler.entry(record, null);
      else records.push(record);
    }
    await feeding;
    await opened.done;
    return { records, live: handler !== undefined };
  } catch (error) {
    extract.destroy();
    if (error instanceof SpeculationConflict || error instanceof MergeIndexFull) {
      opened?.destroy();
      await opened?.done.catch(() => undefined);
      throw error;
    }
    if (!ShifterError.isInstance(error) && opened) {
      // A broken tar is often a broken compressed stream: stop reading and prefer the decompressor's explanation.
      opened.tar.destroy();
      await opened.done;
    } else {
      opened?.destroy();
      await opened?.done.catch(() => undefined);
    }
    throw unpackError(error, layer, current);
  } finally {
    blob.destroy();
    if (fd !== undefined) closeSync(fd);
  }
}

/** `source.open()`, given up as soon as `signal` aborts (the open may wait for a download); a late stream is destroyed. */
function openUnlessStopped(source: LayerSource, signal: AbortSignal): Promise<Readable> {
  const aborted = () => abortedError(signal, source.digest);
  if (signal.aborted) return Promise.reject(aborted());
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(aborted());
    signal.addEventListener('abort', onAbort, { once: true });
    source.open().then(
      (stream) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) stream.destroy();
        else resolve(stream);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/**
 * The in-memory backend of the entry rules (entry-rules.ts): the image tree being merged. A directory handle is its
 * node; a non-directory node carries the index of the layer that created it. Nothing is written to disk, so
 * nothing can escape. It holds at most `maxNodes` names ({@link MergeIndexFull}), and refuses to remove anything
 * already streamed ({@link SpeculationConflict}).
 */
class MergeTree implements TreeBackend<MergedDirectory, MergedNode> {
  readonly root: MergedDirectory;
  nodes = 0;
  /** Nodes written while the top layer streamed. */
  streamed = 0;
  /** Index of the layer being applied. */
  private layerIndex = 0;

  constructor(
    private readonly defaultDirectoryMtime: number,
    private readonly maxNodes: number,
  ) {
    this.root = {
      kind: 'directory',
      mode: 0o755,
      mtime: defaultDirectoryMtime,
      children: new Map(),
      streamedBelow: false,
    };
  }

  private add(parent: MergedDirectory, name: string, node: MergedNode): void {
    if (!parent.children.has(name)) {
      this.nodes += 1;
      if (this.nodes > this.maxNodes) throw new MergeIndexFull(this.maxNodes);
    }
    parent.children.set(name, node);
  }

  private countRemoved(node: MergedNode): number {
    if (node.kind !== 'directory') return 1;
    let count = 1;
    const stack: MergedDirectory[] = [node];
    while (stack.length > 0) {
      const dir = stack.pop() as MergedDirectory;
      for (const child of dir.children.values()) {
        count += 1;
        if (child.kind === 'directory') stack.push(child);
      }
    }
    return count;
  }

  child(dir: MergedDirectory, name: string): MergedNode | undefined {
    return dir.children.get(name);
  }

  kind(node: MergedNode): NodeKind {
    return node.kind === 'directory' || node.kind === 'symlink' ? node.kind : 'other';
  }

  enter(node: MergedNode): MergedDirectory {
    return node as MergedDirectory;
  }

  linkTarget(node: MergedNode): string {
    return (node as MergedSymlink).target;
  }

  makeImplicitDirectory(dir: MergedDirectory, name: string): MergedDirectory {
    const made: MergedDirectory = {
      kind: 'directory',
      mode: 0o755,
      mtime: this.defaultDirectoryMtime,
      children: new Map(),
      streamedBelow: false,
    };
    this.add(dir, name, made);
    return made;
  }

  lookup(rel: string): { dir: MergedDirectory; name: string; node: MergedNode } | null {
    const parts = rel.split('/');
    let dir = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const next = dir.children.get(parts[i] as string);
      if (next?.kind !== 'directory') return null;
      dir = next;
    }
    const name = parts.at(-1) as string;
    const node = dir.children.get(name);
    return node ? { dir, name, node } : null;
  }

  childNames(dir: MergedDirectory): string[] {
    return [...dir.children.keys()];
  }

  remove(parent: MergedDirectory, name: string): void {
    const node = parent.children.get(name);
    if (!node) return;
    if (node.kind === 'directory' ? node.streamedBelow : node.streamed) {
      throw new SpeculationConflict(name);
    }
    this.nodes -= this.countRemoved(node);
    parent.children.delete(name);
  }

  beginLayer(index: number): void {
    this.layerIndex = index;
  }

  createdByLayer(node: MergedNode): boolean {
    return node.kind !== 'directory' && node.layer === this.layerIndex;
  }

  setRoot(mode: number, mtime: number): void {
    this.root.mode = mode;
    this.root.mtime = mtime;
  }

  updateDirectory(
    node: MergedNode,
    _dir: MergedDirectory,
    _name: string,
    _rel: string,
    mode: number,
    mtime: number,
  ): void {
    node.mode = mode;
    node.mtime = mtime;
  }

  makeDirectory(dir: MergedDirectory, name: string, _rel: string, mode: number, mtime: number): void {
    this.add(dir, name, { kind: 'directory', mode, mtime, children: new Map(), streamedBelow: false });
  }

  link(dir: MergedDirectory, name: string, _rel: string, target: MergedNode): MergedNode {
    (target as Exclude<MergedNode, MergedDirectory>).linked = true;
    this.add(dir, name, target);
    return target;
  }

  create(dir: MergedDirectory, name: string, _rel: string, record: EntryRecord): MergedNode {
    const { type, mode, mtime } = record;
    const layer = this.layerIndex;
    let node: Exclude<MergedNode, MergedDirectory>;
    if (type === 'file' || type === 'contiguous-file') {
      node = {
        kind: 'file',
        mode,
        mtime,
        size: record.size,
        offset: record.offset,
        linked: false,
        layer,
        streamed: false,
      };
    } else if (type === 'symlink') {
      node = { kind: 'symlink', mode, mtime, target: record.linkname, linked: false, layer, streamed: false };
    } else {
      node = {
        kind: type as MergedSpecial['kind'],
        mode,
        mtime,
        devmajor: record.devmajor,
        devminor: record.devminor,
        linked: false,
        layer,
        streamed: false,
      };
    }
    this.add(dir, name, node);
    return node;
  }
}

/** A non-directory an entry added (or, for a hardlink, gave another name), for streaming it. */
export interface AppliedLeaf {
  node: Exclude<MergedNode, MergedDirectory>;
  /** The real path of the new name. */
  rel: string;
  /** The directories leading to it. */
  chain: MergedDirectory[];
  /** True for a hardlink: `node` existed before under another name. */
  hardlink: boolean;
  /** For a hardlink: the real path of the name it links to. */
  targetRel?: string;
}

/** The entry rules applied to the in-memory tree, one layer. */
type LayerApplier = LayerRules<MergedDirectory, MergedNode>;

/**
 * Merge image layers (lowest first) into an in-memory tree without unpacking them: each layer is decompressed and
 * parsed once, its file contents appended to a spool file, and its entries applied to the tree in layer order with
 * the semantics and safety rules of {@link flattenLayers} (the same refusals with the same codes). Several layers
 * are read at the same time (gunzip is single-threaded); they are applied strictly in order.
 *
 * Feed the result to {@link mergedImageTar} to get one tar of the final tree (for `tar2sqfs`). Memory grows with
 * the number of names in the image (about 350 bytes of heap each), never with its size, and is capped by `maxNodes`.
 *
 * @param layers - layer sources, lowest first; each is opened once and destroyed after use
 * @param options - spool directory, caps, policy, progress
 * @returns the tree, spool files and per-layer summaries; the caller removes the spool directory when done
 * @throws {@link LayerError} with the codes of {@link flattenLayers}; {@link MergeIndexFull} past `maxNodes`;
 *   `SHIFTER_IO_FAILED` when a spool file cannot be written; `SHIFTER_CONVERSION_FAILED` when aborted
 */
export async function mergeLayers(layers: LayerSource[], options: MergeLayersOptions): Promise<MergedImage> {
  const budget = options.budget ?? createUnpackBudget(options);
  const maxNodes = options.maxNodes ?? DEFAULT_MAX_NODES;
  const tree = new MergeTree(options.defaultDirectoryMtime ?? 0, maxNodes);
  const parallel = Math.max(1, options.parallel ?? Math.max(2, availableParallelism()));
  // Stops the read-ahead when we fail; forwards the caller's abort.
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const spools = layers.map((_, index) => join(options.spoolDir, `layer-${index}.data`));
  const reads: Promise<ReadLayer>[] = [];
  const top = layers.length - 1;
  const handlers: (LiveHandler | undefined)[] = [];
  const start = (index: number) => {
    if (index >= layers.length || reads[index]) return;
    reads[index] = readLayer(
      layers[index] as LayerSource,
      spools[index] as string,
      budget,
      options,
      stop.signal,
      () => handlers[index],
      maxNodes,
    );
    reads[index].catch(() => undefined);
  };
  const applyOnly = (applier: LayerApplier): LiveHandler => ({
    takesData: false,
    backlog: async (records) => {
      for (const record of records) applier.apply(record);
    },
    entry: async (record) => {
      applier.apply(record);
    },
  });
  const makeLiveHandler = (writer: MergedTreeSink, applier: LayerApplier): LiveHandler => {
    const stream = async (applied: AppliedLeaf, data: AsyncIterable<Buffer> | null): Promise<boolean> => {
      const { node, rel, chain, hardlink } = applied;
      if (hardlink) {
        // A second name of a lower layer's node: written with the rest of the tree by writeMergedTree. A streamed
        // node's names were all streamed (a streamed name is never removed), so the target name is in the tar.
        if (!node.streamed) return false;
        await writer.hardlink(rel, node, applied.targetRel as string);
      } else {
        if (node.kind === 'file') {
          if (data) await writer.fileFromStream(rel, node, data);
          else await writer.fileFromSpool(rel, node, spools[top] as string);
        } else await writer.special(rel, node);
        node.streamed = true;
        tree.streamed += 1;
      }
      for (const dir of chain) dir.streamedBelow = true;
      return data !== null && node.kind === 'file' && !hardlink;
    };
    return {
      takesData: true,
      backlog: async (records) => {
        for (const record of records) {
          const applied = applier.apply(record) as AppliedLeaf | null;
          if (applied) await stream(applied, null);
        }
      },
      entry: async (record, data) => {
        const applied = applier.apply(record) as AppliedLeaf | null;
        const consumed = applied ? await stream(applied, data) : false;
        if (data && !consumed) for await (const _ of data) void _;
      },
    };
  };
  const summaries: LayerSummary[] = [];
  try {
    for (let index = 0; index < parallel; index++) start(index);
    for (const [index, source] of layers.entries()) {
      options.signal?.throwIfAborted();
      // Every lower layer is merged: this one may now be applied (and, for the top layer with `tar`, streamed) as it
      // is read. Whether it went live or was read completely before, the result and the streamed order are the
      // same (archive order), so the output does not depend on timing.
      const applier: LayerApplier = new LayerRules(tree, budget, index, source.digest, {
        keepDevices: options.keepDevices,
        signal: options.signal,
      });
      const handler = index === top && options.tar ? makeLiveHandler(options.tar, applier) : applyOnly(applier);
      handlers[index] = handler;
      const read = await (reads[index] as Promise<ReadLayer>);
      start(index + parallel);
      if (!read.live) await handler.backlog(read.records);
      const summary = applier.summary;
      summaries.push(summary);
      options.onLayer?.(summary, index, layers.length);
    }
  } catch (error) {
    stop.abort(error);
    // Let every read close its files before the caller removes the spool directory.
    await Promise.allSettled(reads);
    if (options.signal?.aborted && !ShifterError.isInstance(error)) {
      throw new ShifterError('SHIFTER_CONVERSION_FAILED', 'conversion aborted', { cause: options.signal.reason });
    }
    throw error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  return {
    root: tree.root,
    spools,
    layers: summaries,
    entries: budget.entries,
    unpackedBytes: budget.unpackedBytes,
    dropped: summaries.flatMap((s) => s.dropped),
    nodes: tree.nodes,
    streamed: tree.streamed,
  };
}
