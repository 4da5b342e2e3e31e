import { z } from 'zod';
import { DEFAULT_MAX_NODES } from '../layer/rules.js';

/**
 * The one configuration schema of Shifter's gateway, workers and library. Every field has a description and a
 * default; `loadConfig()` validates files and environment against it, and docs/configuration.md plus
 * config.schema.json are generated from it.
 *
 * Upstream `imagemanager.json` files are translated into this shape by `translateImageManagerConfig()`.
 */

const platformSchema = z
  .string()
  .regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'platform must look like os/architecture[/variant], e.g. linux/amd64')
  .describe('Target platform os/architecture[/variant]; selects the manifest from multi-platform images');

const localTransferSchema = z
  .object({
    kind: z.literal('local').describe('Copy into a directory this host can write'),
    imageDir: z.string().min(1).describe("Absolute path of the system's shared image directory"),
  })
  .strict();

const sshTransferSchema = z
  .object({
    kind: z.literal('ssh').describe('Copy with scp and manage files with ssh'),
    host: z.array(z.string().min(1)).min(1).describe('Hosts to reach the system by, tried in order'),
    username: z.string().min(1).optional().describe("ssh user name; defaults to the gateway's user"),
    key: z.string().optional().describe('ssh private key file'),
    knownHostsFile: z
      .string()
      .optional()
      .describe(
        "known_hosts file holding the hosts' keys (always checked); default ~/.ssh/known_hosts of the gateway user",
      ),
    port: z.number().int().min(1).max(65535).optional().describe('ssh port (default 22)'),
    imageDir: z.string().min(1).describe('Absolute path of the image directory on the remote host'),
    sshOptions: z.array(z.string()).default([]).describe('Extra ssh arguments'),
    scpOptions: z.array(z.string()).default([]).describe('Extra scp arguments'),
  })
  .strict();

/** One target system (upstream: a Platform). */
export const systemSchema = z
  .object({
    transfer: z
      .discriminatedUnion('kind', [localTransferSchema, sshTransferSchema])
      .describe('How images reach the system'),
    platform: platformSchema.default('linux/amd64'),
    mungeSocketPath: z
      .string()
      .default('/run/munge/munge.socket.2')
      .describe("munged socket that verifies this system's credentials"),
    admins: z.array(z.string()).default([]).describe('User names allowed to expire images and read metrics'),
    importUsers: z
      .union([z.literal('all'), z.literal('none'), z.array(z.string())])
      .optional()
      .describe('Who may import squashfs files on this system; overrides the global importUsers'),
  })
  .strict();

/** One registry location (upstream: a Location). */
export const registrySchema = z
  .object({
    url: z.string().url().describe('Base URL of the registry, e.g. https://registry.example.org'),
    insecure: z.boolean().default(false).describe('Allow plain HTTP and skip TLS verification for this registry'),
    caFile: z.string().optional().describe("PEM bundle of CAs that sign this registry's certificate"),
    authMethod: z
      .enum(['token', 'basic'])
      .optional()
      .describe('Force an auth scheme instead of following the challenge'),
  })
  .strict();

/** The whole configuration. */
export const ShifterConfigSchema = z
  .object({
    gateway: z
      .object({
        host: z.string().default('127.0.0.1').describe('Address the REST service listens on'),
        port: z.number().int().min(0).max(65535).default(8000).describe('TCP port of the REST service'),
        trustProxy: z.boolean().default(false).describe('Trust X-Forwarded-* headers from a reverse proxy'),
        bodyLimit: z
          .number()
          .int()
          .positive()
          .default(64 * 1024)
          .describe('Largest accepted request body in bytes'),
        instances: z
          .number()
          .int()
          .positive()
          .default(1)
          .describe('How many serve instances share the store (more than one needs mongo + redis)'),
        headersTimeoutMs: z
          .number()
          .int()
          .positive()
          .default(20_000)
          .describe(
            'A client must send all its request headers within this many ms of connecting, else 408 and the connection is closed',
          ),
        requestTimeoutMs: z
          .number()
          .int()
          .positive()
          .default(30_000)
          .describe('A client must send its whole request (headers and body) within this many ms'),
        idleTimeoutMs: z
          .number()
          .int()
          .positive()
          .default(30_000)
          .describe(
            'A connection with no traffic for this many ms is closed (also the keep-alive timeout between requests)',
          ),
        maxConnections: z
          .number()
          .int()
          .positive()
          .default(4096)
          .describe(
            'Most open client connections; more are closed at once. Keep below the file-descriptor limit minus fdReserve',
          ),
        maxConnectionsPerAddress: z
          .number()
          .int()
          .positive()
          .default(256)
          .describe(
            'Most open connections from one client address (below maxConnections, so one address cannot take them all)',
          ),
        maxHeaderBytes: z
          .number()
          .int()
          .min(1024)
          .default(80 * 1024)
          .describe(
            "Largest total size of the request line and headers in bytes (Node's 16 KiB default is raised so the 64 KiB credential limit applies)",
          ),
        fdReserve: z
          .number()
          .int()
          .min(0)
          .default(256)
          .describe(
            'File descriptors kept back for the store, queue, registry downloads and files; the gateway warns at start when maxConnections + fdReserve exceeds RLIMIT_NOFILE',
          ),
      })
      .strict()
      .prefault({}),
    storage: z
      .object({
        cacheDir: z.string().default('/var/cache/shifter/blobs').describe('Content-addressed blob cache directory'),
        expandDir: z
          .string()
          .default('/var/tmp/shifter/expand')
          .describe('Scratch directory for unpacking and building images'),
        cacheMaxBytes: z
          .number()
          .int()
          .positive()
          .default(64 * 1024 ** 3)
          .describe(
            'Largest total size of the blob cache; after each pull the least recently used blobs are removed until it fits',
          ),
      })
      .strict()
      .prefault({}),
    systems: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]+$/), systemSchema)
      .default({})
      .describe('Target systems by name'),
    registries: z
      .record(z.string(), registrySchema)
      .default({})
      .describe('Registry locations by name (upstream Locations)'),
    defaultRegistry: z
      .string()
      .optional()
      .describe('Location used when a tag names none (upstream DefaultImageLocation)'),
    allowedRegistries: z
      .union([z.literal('configured'), z.literal('any'), z.array(z.string().min(1))])
      .default('configured')
      .describe(
        'Registries users may pull from: "configured" (the entries of registries, plus Docker Hub when defaultRegistry is unset; upstream accepted only its Locations), "any", or a list of registry hosts (host[:port], docker.io) and location names',
      ),
    metadata: z
      .discriminatedUnion('kind', [
        z
          .object({
            kind: z.literal('sqlite'),
            path: z.string().default('/var/lib/shifter/gateway.db').describe('SQLite database file'),
          })
          .strict(),
        z
          .object({
            kind: z.literal('mongo'),
            url: z.string().describe('MongoDB connection string'),
            database: z.string().default('Shifter').describe('Database name'),
            lookupCacheMs: z
              .number()
              .int()
              .min(0)
              .default(5000)
              .describe(
                'With queue.kind "redis": lookups answered from memory for at most this many ms; every write empties the caches of all processes through Redis pub/sub, so this only bounds a lost invalidation (0: no cache)',
              ),
          })
          .strict(),
      ])
      .default({ kind: 'sqlite', path: '/var/lib/shifter/gateway.db' })
      .describe('Where image records and job state live'),
    queue: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('in-process'), concurrency: z.number().int().positive().default(2) }).strict(),
        z
          .object({
            kind: z.literal('redis'),
            url: z.string().describe('redis:// URL'),
            concurrency: z.number().int().positive().default(2),
            prefix: z.string().default('shifter'),
          })
          .strict(),
      ])
      .default({ kind: 'in-process', concurrency: 2 })
      .describe('How pull jobs are dispatched to workers'),
    conversion: z
      .object({
        tool: z
          .enum(['mksquashfs', 'tar2sqfs'])
          .default('tar2sqfs')
          .describe(
            'squashfs builder: tar2sqfs (layers merged in memory, no tree on disk) or mksquashfs (from an unpacked tree); lz4 images always use mksquashfs',
          ),
        mksquashfsPath: z.string().default('mksquashfs'),
        tar2sqfsPath: z.string().default('tar2sqfs'),
        compression: z
          .enum(['zstd', 'gzip', 'xz', 'lz4', 'lzo'])
          .default('zstd')
          .describe('squashfs compressor (gzip for old kernels)'),
        compressionLevel: z.number().int().positive().optional().describe('Compressor level; zstd defaults to 3'),
        processors: z.number().int().positive().optional().describe('Compression threads; all cores by default'),
        memory: z
          .string()
          .regex(/^\d+[KMG]$/)
          .default('512M')
          .describe('mksquashfs -mem bound'),
        extraArgs: z
          .array(z.string())
          .default([])
          .describe(
            'Extra arguments for the squashfs tool, after ours (upstream ConverterOptions.squashfs: mksquashfs options)',
          ),
        keepXattrs: z.boolean().default(false).describe('Keep extended attributes (dropped by default)'),
        maxInMemoryNames: z
          .number()
          .int()
          .positive()
          .default(DEFAULT_MAX_NODES)
          .describe(
            'tar2sqfs: images with more names than this are unpacked on disk instead of merged in memory (~350 bytes of heap each; 120000 keeps a pull under 200 MB of RSS)',
          ),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        maxManifestBytes: z
          .number()
          .int()
          .positive()
          .default(4 * 1024 * 1024),
        maxConfigBytes: z
          .number()
          .int()
          .positive()
          .default(8 * 1024 * 1024),
        maxTokenBytes: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
        maxLayerBytes: z
          .number()
          .int()
          .positive()
          .default(16 * 1024 ** 3)
          .describe('Largest compressed layer'),
        maxUnpackedBytes: z
          .number()
          .int()
          .positive()
          .default(64 * 1024 ** 3)
          .describe('Largest total unpacked image'),
        maxEntries: z.number().int().positive().default(5_000_000).describe('Most tar entries in one image'),
        maxImportBytes: z
          .number()
          .int()
          .positive()
          .default(64 * 1024 ** 3)
          .describe(
            'Largest squashfs file doimport copies; larger files (and anything not a regular file) are refused',
          ),
        importTimeoutMs: z
          .number()
          .int()
          .positive()
          .default(30 * 60_000)
          .describe('How long reading a file to import may take before the import fails with SHIFTER_IMPORT_TIMEOUT'),
        requestTimeoutMs: z.number().int().positive().default(60_000),
        retries: z.number().int().min(0).default(4),
        concurrentDownloads: z
          .number()
          .int()
          .min(1)
          .max(64)
          .default(3)
          .describe(
            'Layers one pull downloads at the same time (the gateway worker and pullImage); the converter follows them',
          ),
      })
      .strict()
      .prefault({}),
    jobs: z
      .object({
        leaseMs: z
          .number()
          .int()
          .positive()
          .default(60_000)
          .describe('How long a job stays claimed without a heartbeat'),
        heartbeatMs: z.number().int().positive().default(10_000),
        maxAttempts: z.number().int().positive().default(3),
        pullUpdateTimeout: z
          .number()
          .int()
          .positive()
          .default(300)
          .describe('Seconds after which a READY tag may be re-resolved (upstream PullUpdateTimeout)'),
        imageExpirationTimeout: z
          .string()
          .regex(/^\d+(:\d+){0,3}$/)
          .default('90:00:00:00')
          .describe('Days:hours:minutes:seconds an unused image lives'),
      })
      .strict()
      .prefault({}),
    auth: z
      .object({
        kind: z.literal('munge').default('munge'),
        groupCacheSeconds: z.number().int().positive().default(60),
      })
      .strict()
      .prefault({}),
    importUsers: z.union([z.literal('all'), z.literal('none'), z.array(z.string())]).default('none'),
    metrics: z.boolean().default(false).describe('Record lookups for /api/metrics'),
    examiner: z.string().optional().describe('Executable run as `examiner <rootdir> <id>` before conversion'),
    enableLabels: z.boolean().default(true).describe('Store image labels'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  })
  .strict();

/** Fully validated configuration (defaults filled). */
export type ShifterConfig = z.output<typeof ShifterConfigSchema>;
/** What a config file may contain (defaults optional). */
export type ShifterConfigInput = z.input<typeof ShifterConfigSchema>;
/** One target system. */
export type SystemConfig = z.output<typeof systemSchema>;
/** One registry location. */
export type RegistryConfig = z.output<typeof registrySchema>;
