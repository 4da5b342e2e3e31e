export * from './munge.js';
