/**
 * `@shifter/core/mongo`: the MongoDB metadata store. Needs the optional peer dependency `mongodb`.
 *
 * @packageDocumentation
 */
export * from './mongo-metadata-store.js';
export * from './upstream-source.js';
