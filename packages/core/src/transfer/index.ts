export * from './transfer.js';
export * from './local-transfer.js';
export * from './ssh-transfer.js';
