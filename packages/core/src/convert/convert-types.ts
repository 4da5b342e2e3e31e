import type { ConversionConfig } from '../image-builder/squashfs-builder.js';
import type { ImageMetadata } from '../meta/image-metadata.js';

// LayerSource lives with the layer code that consumes it (layer/ never imports convert/); re-exported here.
export type { LayerSource } from '../layer/layer-source.js';

// ConversionConfig is declared with the image builder that reads it (image-builder/ never imports convert/).
export type { ConversionConfig } from '../image-builder/squashfs-builder.js';

/** Progress events reported by {@link convertImage}. */
export type ConvertProgress =
  | { phase: 'layer'; index: number; count: number; digest: string; entries: number; bytes: number }
  | { phase: 'examine' }
  | { phase: 'squashfs'; tool: 'mksquashfs' | 'tar2sqfs' }
  | { phase: 'meta' }
  | { phase: 'done'; id: string };

/** The ACL written into a `.meta` file (empty or absent lists: public). */
export interface MetaAccess {
  /** Uids allowed to use the image (`USERACL`). */
  userACL?: number[] | undefined;
  /** Gids allowed to use the image (`GROUPACL`). */
  groupACL?: number[] | undefined;
}

/** Options of {@link convertImage}. */
export interface ConvertImageOptions {
  /** Image id (lower-case hex of the platform manifest digest, given by the caller); names the output files. */
  id: string;
  /** Scratch directory; a private sub-directory is created in it and removed on success and on failure. */
  expandDir: string;
  /** The `conversion` config section; defaults from the config schema when omitted or partial. */
  conversion?: Partial<ConversionConfig>;
  /** Cap on the total unpacked bytes of all layers (`SHIFTER_LAYER_LIMIT`). */
  maxUnpackedBytes?: number;
  /** Cap on the total number of tar entries of all layers (`SHIFTER_LAYER_LIMIT`). */
  maxEntries?: number;
  /** Uids allowed to use a private image; written as `USERACL` to the `.meta` file when non-empty. */
  userACL?: number[];
  /** Gids allowed to use a private image; written as `GROUPACL` to the `.meta` file when non-empty. */
  groupACL?: number[];
  /**
   * Supplies the `.meta` ACL when the `.meta` is written (after the squashfs was built), instead of `userACL` and
   * `groupACL`; lets a caller merge in state that changed during the conversion. Its errors fail the conversion.
   */
  access?: () => MetaAccess | Promise<MetaAccess>;
  /** Keep device nodes (char/block) instead of dropping them (default false; needs root). */
  keepDevices?: boolean;
  /**
   * Called with the flattened tree before the squashfs is built (upstream's `examiner` hook); throw a ShifterError
   * (e.g. `SHIFTER_EXAMINATION_FAILED`) to refuse the image. The tree must not be modified.
   */
  examine?: (rootDir: string) => Promise<void>;
  /** Filesystem creation time of the squashfs superblock in seconds (default 0, for reproducible files); mksquashfs only (tar2sqfs always writes 0). */
  mkfsTime?: number;
  /** Called as the conversion advances; must not throw. */
  onProgress?: (event: ConvertProgress) => void;
  /** Aborts the conversion (`SHIFTER_CONVERSION_FAILED` with the abort reason as cause). */
  signal?: AbortSignal;
}

/** What one conversion did, for logs and job records. */
export interface ConvertSummary {
  /** Number of layers applied. */
  layers: number;
  /** Tar entries read across all layers (whiteouts included). */
  entries: number;
  /** Bytes of regular-file content written to the scratch tree. */
  unpackedBytes: number;
  /** Entries dropped by policy (device nodes, xattrs), as `{ layer, entry, reason }`. */
  dropped: { layer: string; entry: string; reason: string }[];
  /** Size of the squashfs file in bytes. */
  squashfsBytes: number;
  /** The builder that made the squashfs file. */
  tool: 'mksquashfs' | 'tar2sqfs';
  /**
   * How the layers were combined: `merged` in memory (tar2sqfs, no tree on disk) or `unpacked` into a scratch tree
   * (mksquashfs, an examiner, or more names than `conversion.maxInMemoryNames`).
   */
  method: 'merged' | 'unpacked';
  /** Milliseconds spent merging or unpacking the layers, building the squashfs, and in all; with tar2sqfs the build runs alongside the merge, so the first two overlap. */
  timings: { flattenMs: number; squashfsMs: number; totalMs: number };
}

/** Result of {@link convertImage}. */
export interface ConvertImageResult {
  /** The image id, as given. */
  id: string;
  /** `<outDir>/<id>.squashfs`. */
  squashfsPath: string;
  /** `<outDir>/<id>.meta`. */
  metaPath: string;
  /** Env, entrypoint, cmd, workdir, labels and user from the image config. */
  metadata: ImageMetadata;
  /** What was done. */
  summary: ConvertSummary;
}
