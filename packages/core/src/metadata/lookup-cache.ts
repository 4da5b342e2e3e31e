/**
 * A per-process cache of the lookup reads of a shared metadata store, kept correct across processes by an
 * invalidation bus.
 *
 * In the distributed deployment several `serve` instances and workers share one MongoDB-compatible store; a lookup
 * (`findReadyByTag`) then costs a network round trip and a query on every request. {@link withLookupCache} wraps the
 * store so that `findReadyByTag` (the read of every lookup) answers from memory, and every write that can change its
 * answers (anything but the job, metric and plain read methods) drops the answers it affects (those that were the
 * written record, and those for its tags; everything for a write it does not know, a tag move, or a write that
 * failed) from the cache of this process and, through the {@link InvalidationBus}, of every other process once it
 * has committed. Other reads (`findReadyByImageId`, used by workers to share content, `get`, `list`…) go to the
 * store.
 *
 * Consistency bound: a lookup in process B that starts after a write in process A has returned, and after B has
 * received A's invalidation (one pub/sub hop, typically under a millisecond on a LAN), sees the write. A read that
 * was in flight while an invalidation arrived is returned but never cached. While the bus is not connected (start,
 * lost subscription, reconnect) nothing is cached and every lookup reads the store; when it comes back the cache
 * starts empty. If a writer could not publish (its bus down while others' is up), entries expire after `ttlMs`
 * (default 5 s): that is the worst case.
 *
 * @packageDocumentation
 */
import type { ImageRecord } from './image-record.js';
import type { MetadataStore } from './metadata-store.js';

/** What the cache needs from a broadcast channel between the processes that share a store. */
export interface InvalidationBus {
  /**
   * Tell every other subscriber what changed. Resolves once sent; a failure is swallowed by the bus (the other
   * processes' TTL bounds what they then miss) so a committed write never reports an error for it.
   */
  publish(invalidation: Invalidation): Promise<void>;
  /**
   * Start receiving: `invalidate` for every message from another process; `connected(false)` whenever messages may
   * be missed from then on (subscription lost, reconnecting), `connected(true)` once the subscription is active
   * again. Called once.
   */
  subscribe(listener: InvalidationListener): void;
  /** Stop receiving and release connections. Idempotent. */
  close(): Promise<void>;
}

/** Receiver of {@link InvalidationBus} events. */
export interface InvalidationListener {
  /** Another process changed records: forget what they affect. */
  invalidate(invalidation: Invalidation): void;
  /** Whether the subscription is active (messages from now on will arrive). */
  connected(up: boolean): void;
}

/**
 * What a write changed, as carried between processes (JSON): everything, or some records and lookup keys. A cached
 * answer is dropped when its key is listed or when it is one of the listed records.
 */
export type Invalidation =
  | { readonly all: true }
  | { readonly all?: false; readonly records: readonly string[]; readonly keys: readonly string[] };

/** Options of {@link withLookupCache}. */
export interface LookupCacheOptions {
  /** Safety bound on the age of an answer, ms (default 5000). */
  readonly ttlMs?: number;
  /** Most answers kept (default 10 000; the oldest go first). */
  readonly maxEntries?: number;
  /** Clock (epoch ms); default `Date.now`. */
  readonly now?: () => number;
  /** Source of the read-ahead jitter, in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/** Counters of a cached store, for tests and metrics. */
export interface LookupCacheStats {
  /** Answers served from memory. */
  readonly hits: number;
  /** Answers read from the store. */
  readonly misses: number;
  /** Times the cache was emptied (local writes, bus messages, reconnects). */
  readonly invalidations: number;
  /** Whether answers are being cached (the bus is connected). */
  readonly live: boolean;
}

/** A store wrapped by {@link withLookupCache}. */
export type CachedMetadataStore = MetadataStore & {
  /** Counters since the wrap. */
  readonly lookupCacheStats: () => LookupCacheStats;
};

/**
 * Methods that never change what `findReadyByTag` returns: reads, the job table, lookup metrics
 * and in-flight records (never READY). Every other method — including ones added to the store interface later — is
 * treated as a write that invalidates, so forgetting to list a new method costs a cache flush, never a stale answer.
 */
const NON_INVALIDATING = new Set<string>([
  'get',
  'findReadyByImageId',
  'findInFlight',
  'findByTag',
  'list',
  'createOrGetInFlight',
  'insertLookupMetrics',
  'listLookupMetrics',
  'createJob',
  'getJob',
  'claimJob',
  'claimNextJob',
  'heartbeatJob',
  'completeJob',
  'failJob',
  'listJobs',
  'listClaimableJobs',
  'pruneJobs',
]);

const ALL: Invalidation = { all: true };
const tagKey = (system: string, itype: string, tag: string): string => `t\u0000${system}\u0000${itype}\u0000${tag}`;

/** The answers a record can be (or have been) part of: itself and its tags. */
function recordInvalidation(record: ImageRecord, ...extraTags: unknown[]): Invalidation {
  const keys = record.tags.map((tag) => tagKey(record.system, record.itype, tag));
  for (const tag of extraTags) if (typeof tag === 'string') keys.push(tagKey(record.system, record.itype, tag));
  return { records: [record.recordId], keys };
}

/**
 * What each known write changes, from its arguments and result. Whatever an update does to a record, the answers it
 * can change are the ones that were that record (dropped by record id) and the ones for its tags afterwards (it may
 * now win them). `delete` can only change answers that were the record. `moveTag` also takes the tag off other
 * records, whose cached copies would still list it: everything goes (it runs once per pull or import). Unknown writes,
 * and writes that failed (they may have committed; the result is unknown), invalidate everything.
 */
const RECORD_WRITES: Record<string, (args: unknown[], result: unknown) => Invalidation> = {
  insert: (_args, result) => recordInvalidation(result as ImageRecord),
  update: (_args, result) => recordInvalidation(result as ImageRecord),
  removeTag: (args, result) => recordInvalidation(result as ImageRecord, args[1]),
  delete: (args) => ({ records: [String(args[0])], keys: [] }),
};

const DEFAULT_TTL_MS = 5_000;
const DEFAULT_MAX_ENTRIES = 10_000;

/** Freeze a record and everything in it: cached answers are shared between callers. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

interface Entry {
  readonly value: ImageRecord | null;
  /** When the read that produced it started: its age counts from there. */
  readonly readAt: number;
  /** When a lookup of this answer reads it again in the background (between half and 90 % of the TTL). */
  readonly refreshAt: number;
}

interface Pending {
  readonly generation: number;
  readonly promise: Promise<ImageRecord | null>;
}

class LookupCache {
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #pending = new Map<string, Pending>();
  #generation = 0;
  #live = false;
  #hits = 0;
  #misses = 0;
  #invalidations = 0;

  constructor(options: LookupCacheOptions) {
    this.#ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  invalidate(invalidation: Invalidation): void {
    // Reads in flight started before this write may carry the old answer: none of them is kept (generation).
    this.#generation += 1;
    this.#invalidations += 1;
    this.#pending.clear();
    if (invalidation.all) {
      this.#entries.clear();
      return;
    }
    const keys = new Set(invalidation.keys);
    const records = new Set(invalidation.records);
    for (const [key, entry] of this.#entries) {
      if (keys.has(key) || (entry.value !== null && records.has(entry.value.recordId))) this.#entries.delete(key);
    }
  }

  connected(up: boolean): void {
    // Either way nothing cached so far can be trusted: messages may have been missed.
    this.invalidate(ALL);
    this.#live = up;
  }

  stats(): LookupCacheStats {
    return { hits: this.#hits, misses: this.#misses, invalidations: this.#invalidations, live: this.#live };
  }

  read(key: string, load: () => Promise<ImageRecord | null>): Promise<ImageRecord | null> {
    if (!this.#live) {
      this.#misses += 1;
      return load();
    }
    const now = this.#now();
    const entry = this.#entries.get(key);
    if (entry && now - entry.readAt < this.#ttlMs) {
      this.#hits += 1;
      // Read ahead: past its refresh point a hot answer is read again in the background and replaced before it
      // expires, so that hot tags never miss together when their TTL runs out (which made the tail of the latency).
      // The points are spread over 50–90 % of the TTL: answers filled together are not read again in one burst,
      // which on a small shared host stalled every process for hundreds of ms.
      if (now >= entry.refreshAt && !this.#pending.has(key)) this.#fill(key, load).catch(() => undefined);
      return Promise.resolve(entry.value);
    }
    if (entry) this.#entries.delete(key);
    // Concurrent misses of one key share one read, unless an invalidation came in between (a caller that starts
    // after a write must not get an answer read before it).
    const pending = this.#pending.get(key);
    if (pending && pending.generation === this.#generation) {
      this.#hits += 1;
      return pending.promise;
    }
    this.#misses += 1;
    return this.#fill(key, load);
  }

  /** Read `key` from the store and keep the answer, unless an invalidation arrives meanwhile. */
  #fill(key: string, load: () => Promise<ImageRecord | null>): Promise<ImageRecord | null> {
    const generation = this.#generation;
    const readAt = this.#now();
    const promise = load().then(
      (value) => {
        const frozen = value === null ? null : deepFreeze(value);
        if (this.#pending.get(key)?.promise === promise) this.#pending.delete(key);
        if (this.#live && generation === this.#generation) {
          this.#entries.delete(key); // re-inserted last: the map's order is the eviction order
          if (this.#entries.size >= this.#maxEntries) {
            const oldest = this.#entries.keys().next();
            if (!oldest.done) this.#entries.delete(oldest.value);
          }
          const refreshAt = readAt + this.#ttlMs * (0.5 + 0.4 * this.#random());
          this.#entries.set(key, { value: frozen, readAt, refreshAt });
        }
        return frozen;
      },
      (error: unknown) => {
        if (this.#pending.get(key)?.promise === promise) this.#pending.delete(key);
        throw error;
      },
    );
    this.#pending.set(key, { generation, promise });
    return promise;
  }
}

/**
 * Wrap `store` so that its lookup reads are answered from a per-process cache that `bus` keeps consistent with the
 * other processes sharing the store (see the module comment for the bound). Writes made through the wrapper empty
 * the local cache and publish an invalidation after they return (or fail: a failed write may have committed).
 * Every other method is passed through unchanged. {@link MetadataStore.close} closes the bus, then the store.
 *
 * @param store - the shared store (e.g. `MongoMetadataStore`)
 * @param bus - the broadcast channel (e.g. `RedisInvalidationBus` from `@shifter/core/redis`)
 * @returns the wrapped store
 * @example
 * ```ts
 * const bus = await RedisInvalidationBus.connect({ url, channel: 'shifter:metadata' });
 * const cached = withLookupCache(await MongoMetadataStore.connect({ url, database }), bus);
 * ```
 */
export function withLookupCache(
  store: MetadataStore,
  bus: InvalidationBus,
  options: LookupCacheOptions = {},
): CachedMetadataStore {
  const cache = new LookupCache(options);
  bus.subscribe({ invalidate: (what) => cache.invalidate(what), connected: (up) => cache.connected(up) });
  const findReadyByTag = (system: string, itype: string, tag: string): Promise<ImageRecord | null> =>
    cache.read(tagKey(system, itype, tag), () => store.findReadyByTag(system, itype, tag));
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      try {
        await bus.close();
      } finally {
        await store.close();
      }
    })());
  const wrapped = new Map<PropertyKey, unknown>([
    ['findReadyByTag', findReadyByTag],
    ['close', close],
    ['lookupCacheStats', () => cache.stats()],
  ]);
  return new Proxy(store, {
    get(target, property) {
      if (wrapped.has(property)) return wrapped.get(property);
      // The target as receiver: store classes keep their state in private fields, which a proxy receiver lacks.
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (typeof property !== 'string' || NON_INVALIDATING.has(property)) {
        const bound = (...args: unknown[]): unknown => method.apply(target, args);
        wrapped.set(property, bound);
        return bound;
      }
      const changes = Object.hasOwn(RECORD_WRITES, property) ? RECORD_WRITES[property] : undefined;
      const invalidate = (invalidation: Invalidation): Promise<void> => {
        cache.invalidate(invalidation);
        return bus.publish(invalidation);
      };
      const affected = (args: unknown[], value: unknown): Invalidation => {
        try {
          return changes ? changes(args, value) : ALL;
        } catch {
          return ALL; // a result not shaped as expected: never let that fail a committed write
        }
      };
      const writer = (...args: unknown[]): unknown => {
        let result: unknown;
        try {
          result = method.apply(target, args);
        } catch (error) {
          void invalidate(ALL);
          throw error;
        }
        // Store methods are asynchronous; a synchronous one keeps its result type (its publish is not awaited).
        if (!(result instanceof Promise)) {
          void invalidate(affected(args, result));
          return result;
        }
        return result.then(
          async (value: unknown) => {
            await invalidate(affected(args, value));
            return value;
          },
          async (error: unknown) => {
            await invalidate(ALL);
            throw error;
          },
        );
      };
      wrapped.set(property, writer);
      return writer;
    },
  }) as CachedMetadataStore;
}
