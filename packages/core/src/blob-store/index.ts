export * from './blob-store.js';
export * from './fs-blob-store.js';
export * from './blob-cache-gc.js';
export * from './follow-blob.js';
