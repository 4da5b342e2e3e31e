export * from './convert-types.js';
export * from './convert-image.js';
