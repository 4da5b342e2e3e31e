/**
 * `@shifter/core/internal`: every module of the package, the building blocks behind the public API included (layer
 * trees, tar writers, tool argument builders, retry and token helpers...). For this repository's own tests, benchmarks
 * and adapters: **no compatibility promise**, anything here may change in any release. Site code uses
 * `@shifter/core`.
 *
 * @packageDocumentation
 */
export * from './errors/index.js';
export * from './config/index.js';
export * from './udiroot-conf/index.js';
export * from './meta/index.js';
export * from './convert/index.js';
export * from './reference/index.js';
export * from './digest/index.js';
export * from './metadata/index.js';
export * from './jobs/index.js';
export * from './transfer/index.js';
export * from './auth/index.js';
export * from './api/routes-contract.js';
export * from './manifest/index.js';
export * from './api/gateway-client.js';
export * from './service/index.js';
export * from './blob-store/index.js';
export * from './layer/index.js';
export * from './image-builder/index.js';
export * from './create-shifter.js';
export * from './registry/index.js';
export * from './service/pull-image.js';
