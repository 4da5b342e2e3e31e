/**
 * `@shifter/core/redis`: the BullMQ + Redis job queue and the invalidation bus of the lookup cache. Needs the optional peer dependencies `bullmq` and `ioredis`.
 *
 * @packageDocumentation
 */
export * from './redis-job-queue.js';
export * from './redis-invalidation-bus.js';
