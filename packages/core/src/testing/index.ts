export * from './services.js';
export * from './make-layer.js';
