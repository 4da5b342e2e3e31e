/**
 * `@shifter/core/redis`: the BullMQ + Redis job queue. Needs the optional peer dependencies `bullmq` and `ioredis`.
 *
 * @packageDocumentation
 */
export * from './redis-job-queue.js';
