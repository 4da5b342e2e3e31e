export * from './image-metadata.js';
export * from './meta-format.js';
