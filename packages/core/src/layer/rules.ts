/** Constants of the layer rules shared by the on-disk flattener (root-tree.ts) and the in-memory merge (layer-merge.ts). */

/** Most symlinks followed while resolving one parent path (as the kernel's ELOOP limit). */
export const MAX_SYMLINK_HOPS = 40;
/** Most dropped entries listed in a layer summary. */
export const MAX_DROPPED_LISTED = 1000;
/** Prefix of a whiteout entry's name (image-spec layer.md). */
export const WHITEOUT_PREFIX = '.wh.';
/** Name of the opaque-directory marker. */
export const OPAQUE_MARKER = '.wh..wh..opq';
/**
 * Default cap on the names the in-memory merge holds (`conversion.maxInMemoryNames`): about 350 bytes of heap each
 * (a pull of a 100 000-name image peaks at ~155 MB RSS), plus the records of a layer read ahead.
 */
export const DEFAULT_MAX_NODES = 120_000;
