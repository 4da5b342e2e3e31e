export * from './munge.js';
export * from './munge-verifier.js';
