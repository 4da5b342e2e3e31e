export * from './image-record.js';
export * from './metadata-store.js';
