export * from './job-record.js';
export * from './job-queue.js';
