export * from './services.js';
export * from './contracts/blob-store-contract.js';
export * from './make-layer.js';
export * from './contracts/metadata-store-contract.js';
export * from './contracts/job-queue-contract.js';
export * from './contracts/transfer-contract.js';
export * from './netns.js';
export * from './free-port.js';
