/**
 * `@shifter/core`: turn registry images into squashfs files plus `.meta` files, and run the image gateway's
 * services. This barrel is the package's public API: what site scripts, the gateway, `shifterimg`, the udiRoot
 * wrapper and the examples use, listed name by name so that a change of the surface is a deliberate one (the API
 * report in docs/decisions/shifter-core.api.md shows it in review; `npm run api:update` regenerates it). The
 * building blocks behind it (layer trees, tar writers, tool argument builders, retry and token helpers...) are
 * `@shifter/core/internal`, which carries no compatibility promise.
 *
 * @packageDocumentation
 */

// Errors: one catalogue of stable SHIFTER_* codes, each with its HTTP status and exit code.
export {
  AuthError,
  ConfigError,
  ConversionError,
  ERROR_CATALOG,
  ERROR_CODES,
  ExitCode,
  IntegrityError,
  InvalidReferenceError,
  LayerError,
  ManifestError,
  NotFoundError,
  RegistryError,
  ShifterError,
  StoreError,
  TransferError,
  lookupErrorCode,
  toShifterError,
  type ErrorCatalogEntry,
  type ErrorCode,
  type ShifterErrorOptions,
} from './errors/index.js';

// Configuration: the schema, loading and checking it, the environment, the upstream imagemanager.json.
export {
  CONFIG_ENVIRONMENT,
  CONFIG_FILE_VARIABLES,
  IMAGEMANAGER_KEY_MAP,
  ShifterConfigSchema,
  checkDeployment,
  configFileFromEnvironment,
  configIssues,
  isImageManagerConfig,
  loadConfig,
  parseConfig,
  processEnvironment,
  readConfigEnvironment,
  registrySchema,
  systemSchema,
  translateImageManagerConfig,
  type ConfigEnvironmentVariable,
  type ConfigIssue,
  type DeploymentRole,
  type EnvironmentValueKind,
  type ImageManagerKeyMapping,
  type ImageManagerTranslation,
  type LoadConfigOptions,
  type RegistryConfig,
  type ShifterConfig,
  type ShifterConfigInput,
  type SystemConfig,
} from './config/index.js';

// udiRoot.conf, as the runtime reads it.
export {
  loadUdiRootConf,
  parseUdiRootConf,
  type ParseUdiRootConfOptions,
  type UdiRootConf,
  type UdiRootModule,
} from './udiroot-conf/index.js';

// Image references.
export {
  DEFAULT_NAMESPACE,
  DEFAULT_REGISTRY,
  DEFAULT_REGISTRY_API_HOST,
  DEFAULT_TAG,
  MAX_REFERENCE_LENGTH,
  MAX_REPOSITORY_LENGTH,
  parseReference,
  referenceTarget,
  type ImageReference,
  type ParseReferenceOptions,
  type ReferenceLocation,
} from './reference/index.js';

// Digests.
export {
  DEFAULT_SIZE_LIMITS,
  DIGEST_HEX_LENGTH,
  MAX_CONFIG_BYTES,
  MAX_ERROR_BODY_BYTES,
  MAX_MANIFEST_BYTES,
  MAX_TOKEN_BYTES,
  computeDigest,
  digestAlgorithm,
  digestHex,
  isDigest,
  parseDigest,
  verifyDigest,
  type Digest,
  type DigestAlgorithm,
  type SizeLimits,
} from './digest/index.js';

// Manifests, image configs, platforms.
export {
  DEFAULT_PLATFORM,
  MediaType,
  formatPlatform,
  isImageIndex,
  parseImageConfig,
  parseManifest,
  parsePlatform,
  selectPlatform,
  type Descriptor,
  type DockerManifest,
  type DockerManifestList,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  type ImagePlatform,
  type Manifest,
  type OciIndex,
  type OciManifest,
  type PlatformSelector,
} from './manifest/index.js';

// The .meta file next to each squashfs.
export {
  formatMeta,
  imageMetadataFromConfig,
  parseMeta,
  writeMetaFile,
  type FormatMetaInput,
  type ImageMetadata,
  type MetaFile,
} from './meta/index.js';

// Registry client.
export {
  DEFAULT_REGISTRY_TIMEOUTS,
  DEFAULT_RETRY_POLICY,
  BlobProofs,
  DEFAULT_BLOB_PROOF_OPTIONS,
  RegistryClient,
  resolveRegistryEndpoint,
  type AuthChallenge,
  type BlobProofKind,
  type BlobProofOptions,
  type BlobProofScope,
  type BlobRangeAnswer,
  type BlobRangeSource,
  type BlobProgress,
  type CredentialsLookup,
  type FetchBlobOptions,
  type FetchBlobResult,
  type ProxyOptions,
  type RegistryClientOptions,
  type RegistryCredentials,
  type RegistryEndpoint,
  type RegistryEndpointConfig,
  type RegistryProbe,
  type RegistryTimeouts,
  type ResolveImageOptions,
  type ResolvedRegistryImage,
  type RetryPolicy,
} from './registry/index.js';

// Blob cache.
export {
  BLOB_LOCK_HEARTBEAT_MS,
  BLOB_LOCK_STALE_MS,
  FsBlobStore,
  type BlobPutOptions,
  type BlobPutResult,
  type BlobSource,
  type BlobStat,
  type BlobStore,
  type FsBlobStoreOptions,
  type LiveBlobWrite,
} from './blob-store/index.js';

// Squashfs building.
export { buildSquashfs, type BuildSquashfsOptions, type BuildSquashfsResult } from './image-builder/index.js';

// Conversion: layers to <id>.squashfs + <id>.meta.
export {
  convertImage,
  type ConversionConfig,
  type ConvertImageOptions,
  type MetaAccess,
  type ConvertImageResult,
  type ConvertProgress,
  type ConvertSummary,
  type LayerSource,
} from './convert/index.js';

// Metadata store: image records and tags, lookup metrics, and (with the job store below) the whole store.
export {
  IMAGE_STATUSES,
  IN_FLIGHT_STATUSES,
  SqliteMetadataStore,
  isInFlightStatus,
  type CreateOrGetResult,
  type ImageProgress,
  type AccessList,
  type ImageRecord,
  type ImageRecordError,
  type ImageRecordFilter,
  type ImageRecordPatch,
  type ImageStatus,
  type ImageStore,
  type LookupMetric,
  type LookupMetricsStore,
  type MetadataStore,
  type MetadataStoreOptions,
  type NewImageRecord,
  type SqliteMetadataStoreOptions,
  type TagAccess,
  type UpdateExpectations,
} from './metadata/index.js';

// Job queue and job store.
export {
  InProcessJobQueue,
  JOB_KINDS,
  JOB_STATUSES,
  type ClaimOptions,
  type CloseOptions,
  type FailJobOptions,
  type InProcessJobQueueOptions,
  type JobClock,
  type JobContext,
  type JobError,
  type JobFilter,
  type JobHandler,
  type JobKind,
  type JobQueue,
  type JobRecord,
  type JobStatus,
  type JobStore,
  type JobTimer,
  type JsonValue,
  type NewJob,
  type ProcessOptions,
} from './jobs/index.js';

// Transfer of finished images to the systems.
export {
  LocalTransfer,
  SshTransfer,
  TRANSFER_TEMP_PATTERN,
  type LocalTransferOptions,
  type SshTransferOptions,
  type Transfer,
  type TransferFileOptions,
  type TransferPutOptions,
} from './transfer/index.js';

// MUNGE authentication, authorized locations, registry logins.
export {
  MAX_MUNGE_CREDENTIAL_BYTES,
  MungeErrorCode,
  createMungeVerifier,
  mungeDecode,
  mungeEncode,
  parseAuthorizedLocations,
  registryLoginFor,
  type AuthorizedLocations,
  type MungeCredential,
  type MungeEncodeOptions,
  type MungeIdentity,
  type MungeOptions,
  type MungeVerifier,
  type RegistryLogin,
} from './auth/index.js';

// The gateway's REST contract and its client.
export {
  GatewayClient,
  isWorkingStatus,
  type GatewayAuthenticator,
  type GatewayAutoexpireResult,
  type GatewayClientOptions,
  type GatewayExpireResult,
  type GatewayImage,
  type GatewayImportOptions,
  type GatewayMetricsRow,
  type GatewayPullOptions,
  type GatewayQueueEntry,
  type GatewayStatus,
  type GatewayWaitOptions,
} from './api/gateway-client.js';
export { readTrustAnchors } from './api/trust-anchors.js';
export {
  AclFieldSchema,
  AutoexpireResponseSchema,
  ErrorResponseSchema,
  ExpireResponseSchema,
  GATEWAY_AUTH_HEADER,
  GATEWAY_ROUTES,
  ImageResponseSchema,
  ImageStateSchema,
  ImageTypeSchema,
  ImportRequestBodySchema,
  ListResponseSchema,
  MISSING_FIELD,
  MetricsQuerySchema,
  MetricsResponseSchema,
  MetricsRowSchema,
  PullRequestBodySchema,
  QueueResponseSchema,
  StatusResponseSchema,
  SystemNameSchema,
  imageRoutePath,
  type ErrorResponse,
  type ImageResponse,
  type ImportRequestBody,
  type ListResponse,
  type PullRequestBody,
} from './api/routes-contract.js';

// Image service (the gateway's core), pulls, authentication of callers.
export {
  FAILURE_HOLD_MS,
  ImageService,
  canRead,
  copyFileAsCaller,
  createAuthenticator,
  createGroupResolver,
  createRegistryPuller,
  statusMessageOf,
  toImageResponse,
  mergeAccess,
  upstreamJson,
  viewFor,
  type AclRequest,
  type Authenticator,
  type AuthenticatorOptions,
  type Caller,
  type GroupResolver,
  type GroupResolverOptions,
  type ImagePuller,
  type ImageServiceOptions,
  type ImportCaller,
  type ImportReadCaller,
  type ImportReadOptions,
  type ImportRequest,
  type NssUser,
  type PullProgress,
  type PullTarget,
  type PulledImage,
  type QueueEntry,
  type ResolvedImage,
  type ServiceLogger,
} from './service/index.js';
export {
  DEFAULT_PULL_CONCURRENCY,
  DEFAULT_PULL_LIMITS,
  pullImage,
  type PullImageOptions,
  type PullImageProgress,
  type PullImageResult,
  type PullLimits,
} from './service/pull-image.js';

// Assembling the components from a configuration.
export {
  createDefaultQueue,
  createDefaultTransfer,
  createShifter,
  openDefaultStore,
  type Shifter,
  type ShifterComponents,
} from './create-shifter.js';

// Migration from an upstream Shifter site (MongoDB records and image directory).
export * from './migrate/index.js';
