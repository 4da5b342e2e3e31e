export * from './run-tool.js';
export * from './squashfs-builder.js';
export * from './tree-tar.js';
export * from './merged-tar.js';
