export * from './digest.js';
export * from './limits.js';
export * from './verifying-stream.js';
