export * from './config-schema.js';
export * from './env.js';
export * from './imagemanager-json.js';
export * from './load-config.js';
export * from './config-reference.js';
