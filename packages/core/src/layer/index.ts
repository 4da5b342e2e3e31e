export * from './apply-layer.js';
export * from './decompress.js';
export * from './entry-name.js';
export * from './root-tree.js';
export * from './layer-merge.js';
