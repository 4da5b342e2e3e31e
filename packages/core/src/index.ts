/**
 * `@shifter/core`: turn registry images into squashfs files plus `.meta` files, and run the image gateway's
 * services. Everything the gateway, `shifterimg` and site scripts use is exported from here.
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
export * from './migrate/index.js';
