export * from './image-record.js';
export * from './image-store.js';
export * from './lookup-metrics-store.js';
export * from './metadata-store.js';
export * from './sqlite-metadata-store.js';
export * from './access-migration.js';
export * from './store-schema.js';
export * from './lookup-cache.js';
