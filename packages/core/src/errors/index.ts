export * from './error-catalog.js';
export * from './shifter-error.js';
