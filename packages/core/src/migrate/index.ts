export * from './migrate-upstream.js';
export * from './upstream-records.js';
export * from './write-migrated.js';
