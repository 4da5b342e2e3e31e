import { type Db, MongoClient } from 'mongodb';
import { storeUnavailable } from '../../metadata/store-helpers.js';
import type { UpstreamSource } from '../../migrate/migrate-upstream.js';

/** Upstream Shifter's collection names, which this product's store never uses (its own are prefixed `shifter_`). */
export const UPSTREAM_COLLECTIONS = { images: 'images', metrics: 'metrics' } as const;

/**
 * Upstream Shifter's MongoDB database as a migration source: its `images` and `metrics` collections, read only.
 *
 * @example
 * ```ts
 * const source = await MongoUpstreamSource.connect('mongodb://db:27017/', 'Shifter');
 * try { await migrateUpstream({ source, store, systems }); } finally { await source.close(); }
 * ```
 */
export class MongoUpstreamSource implements UpstreamSource {
  readonly #client: MongoClient;
  readonly #db: Db;

  private constructor(client: MongoClient, db: Db) {
    this.#client = client;
    this.#db = db;
  }

  /**
   * Connect to upstream's database.
   * @param url - MongoDB connection string (upstream's `MongoDBURI`)
   * @param database - database name (upstream's `MongoDB`, default `Shifter`)
   * @throws {@link StoreError} `SHIFTER_STORE_UNAVAILABLE` when the server cannot be reached
   */
  static async connect(url: string, database = 'Shifter'): Promise<MongoUpstreamSource> {
    const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
    try {
      await client.connect();
      await client.db(database).command({ ping: 1 });
      return new MongoUpstreamSource(client, client.db(database));
    } catch (error) {
      await client.close().catch(() => undefined);
      throw storeUnavailable(error, "connecting to upstream's MongoDB");
    }
  }

  async *#read(collection: string): AsyncIterable<Record<string, unknown>> {
    try {
      for await (const document of this.#db.collection(collection).find({}).sort({ _id: 1 }))
        yield document as Record<string, unknown>;
    } catch (error) {
      throw storeUnavailable(error, `reading upstream's ${collection} collection`);
    }
  }

  images(): AsyncIterable<Record<string, unknown>> {
    return this.#read(UPSTREAM_COLLECTIONS.images);
  }

  metrics(): AsyncIterable<Record<string, unknown>> {
    return this.#read(UPSTREAM_COLLECTIONS.metrics);
  }

  /** Close the connection. */
  async close(): Promise<void> {
    await this.#client.close();
  }
}
