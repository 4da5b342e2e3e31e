/**
 * The invalidation bus of the distributed deployment: Redis pub/sub carries "records changed" between the processes
 * that share a metadata store, so that each can keep lookups in memory ({@link withLookupCache}).
 *
 * Two connections: a subscriber (its own, as Redis requires) and a publisher that never queues commands while
 * disconnected, so a write is not held up by a Redis outage (the TTL of the caches bounds what is then missed).
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { StoreError } from '../../errors/index.js';
import type { Invalidation, InvalidationBus, InvalidationListener } from '../../metadata/lookup-cache.js';
// Imported for TSDoc links only.
import type { withLookupCache } from '../../metadata/lookup-cache.js';

/** Options of {@link RedisInvalidationBus.connect}. */
export interface RedisInvalidationBusOptions {
  /** Redis URL, e.g. `redis://127.0.0.1:6379`. */
  readonly url: string;
  /** Channel shared by every process of one store (e.g. `<queue prefix>:metadata:<database>`). */
  readonly channel: string;
  /** Longest a publish may take before it is given up, ms (default 1000). */
  readonly publishTimeoutMs?: number;
}

/**
 * {@link InvalidationBus} on Redis pub/sub. Messages are JSON invalidations carrying the sender's id, so that a
 * process ignores its own (it applied them when it wrote); one it cannot read empties the whole cache.
 *
 * @example
 * ```ts
 * import { RedisInvalidationBus } from '@shifter/core/redis';
 * const bus = await RedisInvalidationBus.connect({ url: 'redis://127.0.0.1:6379', channel: 'shifter:metadata:db' });
 * ```
 */
export class RedisInvalidationBus implements InvalidationBus {
  readonly #url: string;
  readonly #channel: string;
  readonly #publisher: Redis;
  readonly #origin = randomBytes(12).toString('hex');
  #subscriber: Redis | null = null;
  #closed = false;

  private constructor(options: RedisInvalidationBusOptions, publisher: Redis) {
    this.#url = options.url;
    this.#channel = options.channel;
    this.#publisher = publisher;
  }

  /**
   * Connect the publisher (the subscriber connects in {@link RedisInvalidationBus.subscribe}).
   * @throws {@link StoreError} `SHIFTER_STORE_UNAVAILABLE` when Redis cannot be reached.
   */
  static async connect(options: RedisInvalidationBusOptions): Promise<RedisInvalidationBus> {
    const publisher = new Redis(options.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: options.publishTimeoutMs ?? 1000,
    });
    publisher.on('error', () => undefined); // a failed publish is reported by its promise
    try {
      await publisher.connect();
    } catch (error) {
      publisher.disconnect();
      throw new StoreError('SHIFTER_STORE_UNAVAILABLE', `redis ${options.url}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return new RedisInvalidationBus(options, publisher);
  }

  async publish(invalidation: Invalidation): Promise<void> {
    if (this.#closed) return;
    const message = JSON.stringify({ origin: this.#origin, ...invalidation });
    await this.#publisher.publish(this.#channel, message).catch(() => undefined);
  }

  subscribe(listener: InvalidationListener): void {
    if (this.#subscriber) throw new Error('RedisInvalidationBus.subscribe called twice');
    // Resubscribing is done here, after each (re)connection, so that "connected" is reported only once Redis has
    // confirmed the subscription: messages published from then on reach this process.
    const subscriber = new Redis(this.#url, {
      lazyConnect: true,
      autoResubscribe: false,
      maxRetriesPerRequest: null,
      // Named so that an operator (or a test) can find the subscribers of a channel in CLIENT LIST.
      connectionName: `shifter-invalidation:${this.#channel}`,
    });
    this.#subscriber = subscriber;
    subscriber.on('error', () => undefined); // the connection retries on its own; 'close' reports the gap
    subscriber.on('close', () => listener.connected(false));
    subscriber.on('ready', () => {
      subscriber.subscribe(this.#channel).then(
        () => {
          if (!this.#closed) listener.connected(true);
        },
        () => {
          // Not subscribed: drop the connection so that ioredis reconnects and this runs again.
          if (!this.#closed) subscriber.disconnect(true);
        },
      );
    });
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.#channel) return;
      const invalidation = parseInvalidation(message, this.#origin);
      if (invalidation !== null) listener.invalidate(invalidation ?? { all: true });
    });
    subscriber.connect().catch(() => undefined); // retried by ioredis; 'ready' reports success
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscriber?.disconnect();
    this.#publisher.disconnect();
  }
}

/**
 * The invalidation in a message; null for one this process sent (it has applied it already). A message that is not
 * understood (another version, garbage) invalidates everything: the caller passes `{ all: true }` for `undefined`.
 */
function parseInvalidation(message: string, origin: string): Invalidation | null | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { origin: from, all, records, keys } = parsed as Record<string, unknown>;
  if (from === origin) return null;
  if (all === true) return { all: true };
  const strings = (value: unknown): value is string[] =>
    Array.isArray(value) && value.every((item) => typeof item === 'string');
  return strings(records) && strings(keys) ? { records, keys } : undefined;
}
