export * from './parse-reference.js';
