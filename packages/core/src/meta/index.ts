export * from './image-metadata.js';
