export * from './caller.js';
export * from './group-resolver.js';
export * from './authenticator.js';
export * from './expiration.js';
export * from './image-puller.js';
export * from './image-response.js';
export * from './squashfs-check.js';
export * from './image-service.js';
