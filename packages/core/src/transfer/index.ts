export * from './transfer.js';
export * from './local-transfer.js';
