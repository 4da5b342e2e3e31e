export * from './job-record.js';
export * from './job-queue.js';
export * from './job-store.js';
export * from './job-runner.js';
export * from './in-process-job-queue.js';
export * from './job-clock.js';
