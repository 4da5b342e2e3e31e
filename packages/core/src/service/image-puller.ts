/**
 * What the image service needs from the registry side: resolve a tag cheaply, then fetch and convert.
 *
 * @packageDocumentation
 */
import type { ImageReference } from '../reference/index.js';
import type { ImageMetadata } from '../meta/index.js';
import type { RegistryLogin } from '../auth/index.js';
import type { MetaAccess } from '../convert/index.js';

/** One pull as the puller sees it. */
export interface PullTarget {
  /** The parsed reference. */
  readonly reference: ImageReference;
  /** Target platform (`linux/amd64`). */
  readonly platform: string;
  /** Registry login from the caller's credential, if any. */
  readonly login?: RegistryLogin | undefined;
  /** Cancels the operation. */
  readonly signal?: AbortSignal | undefined;
}

/** A resolved tag. */
export interface ResolvedImage {
  /** Digest of the platform manifest (`sha256:…`); the image id is its hex. */
  readonly digest: string;
  /** True when the registry demanded credentials (the image is then private). */
  readonly private: boolean;
}

/** Progress of a fetch + convert. */
export type PullProgress =
  | {
      readonly phase: 'download';
      readonly layer: string;
      readonly index: number;
      readonly count: number;
      readonly bytesDone: number;
      readonly bytesTotal: number;
    }
  | {
      readonly phase: 'convert';
      readonly step: string;
      readonly layer?: string;
      readonly index?: number;
      readonly count?: number;
    };

/** Result of a fetch + convert. */
export interface PulledImage {
  /** Local path of the built `<id>.squashfs`. */
  readonly squashfsPath: string;
  /** Local path of the `<id>.meta` written next to it, with the ACL `access` answered. */
  readonly metaPath: string;
  /** Image metadata from the config. */
  readonly metadata: ImageMetadata;
}

/** Registry side of a pull. Both methods must be safe to repeat (jobs are delivered at least once). */
export interface ImagePuller {
  /**
   * Resolve the tag to its platform manifest digest with as few requests as possible.
   * @throws registry errors with their catalogue codes (`SHIFTER_REGISTRY_*`, `SHIFTER_PLATFORM_NOT_FOUND`, …)
   */
  resolve(target: PullTarget): Promise<ResolvedImage>;
  /**
   * Prove that the registry serves, to this target's login, every blob of the image with manifest `digest` (manifest,
   * config and layers), without converting: blobs the cache holds are checked against what the registry serves
   * (`BlobProofs`), the others are downloaded and verified. Used before a pull reuses an image already on the system.
   * @throws registry and integrity errors with their catalogue codes (`SHIFTER_REGISTRY_BLOB_UNKNOWN`,
   *   `SHIFTER_BLOB_UNPROVEN`, `SHIFTER_DIGEST_MISMATCH`, …)
   */
  prove(target: PullTarget & { readonly digest: string }): Promise<void>;
  /**
   * Download (through the blob cache) and convert the image with manifest `digest` into `outDir/<id>.squashfs` and
   * `outDir/<id>.meta` (written once, with the ACL `access` answers).
   * @throws registry, layer and conversion errors with their catalogue codes
   */
  fetch(
    target: PullTarget & {
      readonly digest: string;
      readonly outDir: string;
      readonly scratchDir: string;
      /** Called with the flattened tree before the squashfs is built (the site examiner); throw to refuse. */
      readonly examine?: (rootDir: string) => Promise<void>;
      /**
       * The `.meta` ACL, asked for once when the `.meta` is written (after the squashfs was built); public when
       * absent. Lets the service merge in records that became READY during the pull.
       */
      readonly access?: () => Promise<MetaAccess>;
    },
    onProgress: (progress: PullProgress) => void,
  ): Promise<PulledImage>;
}
