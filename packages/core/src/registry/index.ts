export * from './www-authenticate.js';
export * from './retry-policy.js';
export * from './registry-errors.js';
export * from './registry-endpoint.js';
export * from './registry-client.js';
export * from './blob-proof.js';
