/**
 * The composition root: a validated config becomes a wired store, queue, transfers, puller, authenticator and
 * image service. Both frontends (the gateway's `serve` and `worker`) call {@link createShifter}; nothing else wires
 * components together.
 *
 * @packageDocumentation
 */
import type { MungeVerifier } from './auth/index.js';
import { createMungeVerifier } from './auth/munge-verifier.js';
import type { ShifterConfig, SystemConfig } from './config/index.js';
import { ConfigError, ShifterError } from './errors/index.js';
import type { JobQueue } from './jobs/index.js';
import type { MetadataStore } from './metadata/index.js';
import { type InvalidationBus, withLookupCache } from './metadata/lookup-cache.js';
import { homedir, userInfo } from 'node:os';
import { InProcessJobQueue } from './jobs/in-process-job-queue.js';
import { SqliteMetadataStore } from './metadata/sqlite-metadata-store.js';
import { createAuthenticator, type Authenticator } from './service/authenticator.js';
import { createRegistryPuller } from './service/registry-puller.js';
import { LocalTransfer } from './transfer/local-transfer.js';
import { SshTransfer } from './transfer/ssh-transfer.js';
import { createGroupResolver, type GroupResolver } from './service/group-resolver.js';
import type { ImagePuller } from './service/image-puller.js';
import { ImageService, type ServiceLogger } from './service/image-service.js';
import type { Transfer } from './transfer/index.js';

/**
 * Factories for each component; anything omitted gets the default for the config (SQLite or MongoDB store,
 * in-process or Redis queue, local or ssh transfer, the registry puller, libmunge verifier, NSS groups).
 * Embedders and tests replace single parts.
 */
export interface ShifterComponents {
  /** Opens the metadata store. */
  openStore?: (config: ShifterConfig) => Promise<MetadataStore>;
  /** Creates the job queue over the store. */
  createQueue?: (config: ShifterConfig, store: MetadataStore) => Promise<JobQueue>;
  /** Creates the transfer of one system. */
  createTransfer?: (system: string, systemConfig: SystemConfig, config: ShifterConfig) => Transfer;
  /** Creates the registry side of pulls. */
  createPuller?: (config: ShifterConfig) => Promise<ImagePuller>;
  /** Creates a munge verifier for a socket. */
  createVerifier?: (socketPath: string) => MungeVerifier | Promise<MungeVerifier>;
  /** NSS resolver. */
  groups?: GroupResolver;
  /** Log sink for the service. */
  logger?: ServiceLogger;
}

/** Everything {@link createShifter} wires. */
export interface Shifter {
  /** The configuration it was built from. */
  readonly config: ShifterConfig;
  /** The metadata store (closed by {@link Shifter.close}). */
  readonly store: MetadataStore;
  /** The job queue (closed by {@link Shifter.close}). */
  readonly queue: JobQueue;
  /** The image service. */
  readonly service: ImageService;
  /** Request authentication for the gateway. */
  readonly authenticator: Authenticator;
  /** Transfer of a system (created once per system). */
  transferFor(system: string): Transfer;
  /**
   * Close the queue (waiting up to `timeoutMs` for running jobs), then the service and the store. Idempotent.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

type Loaded = Record<string, unknown>;

// NOTE: modules are loaded lazily so that the optional peers (mongodb, ioredis/bullmq) and the native munge binding
// load only in deployments that use them.
// NOTE: every specifier is a literal so that the bundler (tsup) includes the module; a computed specifier would be
// resolved against dist/ at run time and miss.
async function loadExport<T>(load: () => Promise<unknown>, name: string, what: string): Promise<T> {
  let module: Loaded;
  try {
    module = (await load()) as Loaded;
  } catch (error) {
    throw new ConfigError('SHIFTER_CONFIG_INVALID', `${what} cannot be loaded: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const value = module[name];
  if (value === undefined)
    throw new ConfigError('SHIFTER_CONFIG_INVALID', `${what} is not available: its module has no ${name}`);
  return value as T;
}

type Constructor<T> = new (options: Record<string, unknown>) => T;

/** Default store for the config: SQLite (embedded) or MongoDB. */
export async function openDefaultStore(config: ShifterConfig): Promise<MetadataStore> {
  if (config.metadata.kind === 'sqlite') {
    return new SqliteMetadataStore({ path: config.metadata.path });
  }
  const MongoMetadataStore = await loadExport<
    { connect?: (o: Record<string, unknown>) => Promise<MetadataStore> } & Constructor<MetadataStore>
  >(() => import('./adapters/mongo/index.js'), 'MongoMetadataStore', 'the MongoDB store');
  const options = { url: config.metadata.url, database: config.metadata.database };
  if (typeof MongoMetadataStore.connect === 'function') return MongoMetadataStore.connect(options);
  const store = new MongoMetadataStore(options) as MetadataStore & { connect?: () => Promise<void> };
  if (typeof store.connect === 'function') await store.connect();
  return store;
}

/**
 * The default store for the config, and on the distributed deployment (mongo + redis) with its lookup reads cached
 * in this process: every process that writes through it publishes an invalidation on Redis after each write, so
 * lookups stay consistent across `serve` instances and workers (bound: docs/metadata-store.md).
 */
async function openDistributedStore(config: ShifterConfig): Promise<MetadataStore> {
  const store = await openDefaultStore(config);
  if (config.metadata.kind !== 'mongo' || config.queue.kind !== 'redis' || config.metadata.lookupCacheMs === 0)
    return store;
  try {
    const RedisInvalidationBus = await loadExport<{
      connect: (options: { url: string; channel: string }) => Promise<InvalidationBus>;
    }>(() => import('./adapters/redis/index.js'), 'RedisInvalidationBus', 'the Redis invalidation bus');
    const bus = await RedisInvalidationBus.connect({
      url: config.queue.url,
      channel: `${config.queue.prefix}:metadata:${config.metadata.database}`,
    });
    return withLookupCache(store, bus, { ttlMs: config.metadata.lookupCacheMs });
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** Default queue for the config: in-process, or Redis + BullMQ (one queue per system). */
export async function createDefaultQueue(config: ShifterConfig, store: MetadataStore): Promise<JobQueue> {
  if (config.queue.kind === 'in-process') {
    return new InProcessJobQueue(store);
  }
  const RedisJobQueue = await loadExport<
    new (store: MetadataStore, options: { url: string; prefix: string }) => JobQueue
  >(() => import('./adapters/redis/index.js'), 'RedisJobQueue', 'the Redis queue');
  return new RedisJobQueue(store, { url: config.queue.url, prefix: config.queue.prefix });
}

/** Default transfer of a system: local copy or ssh/scp. */
export async function createDefaultTransfer(systemConfig: SystemConfig): Promise<Transfer> {
  const transfer = systemConfig.transfer;
  if (transfer.kind === 'local') {
    return new LocalTransfer({ imageDir: transfer.imageDir });
  }
  return new SshTransfer({
    ...transfer,
    username: transfer.username ?? userInfo().username,
    knownHostsFile: transfer.knownHostsFile ?? `${homedir()}/.ssh/known_hosts`,
  });
}

/**
 * Wire everything the config describes.
 *
 * @param config - validated config (from `loadConfig`)
 * @param components - replacements for single components
 * @returns the wired components; the caller closes them with {@link Shifter.close}
 * @throws {@link ConfigError} `SHIFTER_CONFIG_INVALID` when a configured backend cannot be loaded;
 *   `SHIFTER_STORE_UNAVAILABLE` when the store or queue cannot be reached
 * @example
 * ```ts
 * const shifter = await createShifter(await loadConfig({ file, env: processEnvironment() }));
 * await shifter.service.startWorkers();
 * ```
 */
export async function createShifter(config: ShifterConfig, components: ShifterComponents = {}): Promise<Shifter> {
  const store = components.openStore ? await components.openStore(config) : await openDistributedStore(config);
  let queue: JobQueue;
  try {
    queue = await (components.createQueue ?? createDefaultQueue)(config, store);
  } catch (error) {
    await store.close();
    throw error;
  }
  // Transfers load on first use: a serve-only process of the distributed deployment never delivers images.
  const makeTransfer = (system: string, systemConfig: SystemConfig): Transfer => {
    if (components.createTransfer) return components.createTransfer(system, systemConfig, config);
    const real = (): Promise<Transfer> => createDefaultTransfer(systemConfig);
    let loaded: Promise<Transfer> | null = null;
    const get = () => (loaded ??= real());
    return {
      imageDir: systemConfig.transfer.imageDir,
      put: async (...args) => (await get()).put(...args),
      putMeta: async (...args) => (await get()).putMeta(...args),
      remove: async (...args) => (await get()).remove(...args),
      exists: async (...args) => (await get()).exists(...args),
      cleanStale: async () => (await get()).cleanStale(),
    };
  };
  const transfers = new Map<string, Transfer>();
  const transferFor = (system: string): Transfer => {
    let transfer = transfers.get(system);
    if (!transfer) {
      const systemConfig = Object.hasOwn(config.systems, system) ? config.systems[system] : undefined;
      if (!systemConfig) throw new ShifterError('SHIFTER_SYSTEM_UNKNOWN', `system ${system} is not configured`);
      transfer = makeTransfer(system, systemConfig);
      transfers.set(system, transfer);
    }
    return transfer;
  };

  let puller: ImagePuller | null = null;
  let pullerLoading: Promise<ImagePuller> | null = null;
  const createPuller =
    components.createPuller ??
    (async (c: ShifterConfig): Promise<ImagePuller> => {
      return createRegistryPuller(c);
    });
  // The puller is needed on workers only: it is created (registry client, connections) on first use.
  const lazyPuller: ImagePuller = {
    resolve: async (target) => (await getPuller()).resolve(target),
    prove: async (target) => (await getPuller()).prove(target),
    fetch: async (target, onProgress) => (await getPuller()).fetch(target, onProgress),
  };
  const getPuller = async (): Promise<ImagePuller> => {
    if (puller) return puller;
    pullerLoading ??= Promise.resolve(createPuller(config)).then((p) => (puller = p));
    return pullerLoading;
  };

  const verifierFactory =
    components.createVerifier ??
    (async (socketPath: string) => {
      // NOTE: a static import on purpose. The addon itself loads lazily on first use, and a dynamic import of this
      // module makes esbuild wrap it in a lazy initialiser that bundles importing mungeEncode statically (shifterimg)
      // never run.
      return createMungeVerifier({ socketPath });
    });
  const verifiers = new Map<string, Promise<MungeVerifier>>();
  const verifierFor = (socketPath: string): MungeVerifier => ({
    socketPath,
    verify: async (credential) => {
      let verifier = verifiers.get(socketPath);
      if (!verifier) {
        verifier = Promise.resolve(verifierFactory(socketPath));
        verifiers.set(socketPath, verifier);
      }
      return (await verifier).verify(credential);
    },
  });

  const service = new ImageService({
    config,
    store,
    queue,
    transferFor,
    puller: lazyPuller,
    ...(components.logger ? { logger: components.logger } : {}),
  });
  const authenticator = createAuthenticator({
    config,
    verifierFor,
    groups: components.groups ?? createGroupResolver({ ttlSeconds: config.auth.groupCacheSeconds }),
  });

  let closing: Promise<void> | null = null;
  return {
    config,
    store,
    queue,
    service,
    authenticator,
    transferFor,
    close(options = {}) {
      closing ??= (async () => {
        await queue.close(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs });
        await service.close();
        await store.close();
      })();
      return closing;
    },
  };
}
