import { z } from 'zod';
import { isDigest } from '../digest/index.js';

/** Platform of an index entry. */
export interface ImagePlatform {
  /** Operating system, e.g. `linux`. */
  os: string;
  /** CPU architecture in Go's spelling, e.g. `amd64`, `arm64`. */
  architecture: string;
  /** CPU variant, e.g. `v8` for arm64, `v7` for arm. */
  variant?: string;
  /** OS version (Windows images). */
  'os.version'?: string;
}

/** A content descriptor (OCI image-spec descriptor.md). */
export interface Descriptor {
  /** Media type of the referenced content. */
  mediaType: string;
  /** Digest of the referenced content; validated sha256/sha512. */
  digest: string;
  /** Size in bytes of the referenced content. */
  size: number;
  /** Alternative download locations (foreign layers); Shifter never fetches from them. */
  urls?: string[];
  /** Free-form annotations. */
  annotations?: Record<string, string>;
  /** Platform, in index entries only. */
  platform?: ImagePlatform;
}

/** zod schema of a {@link ImagePlatform}. */
export const imagePlatformSchema = z.looseObject({
  os: z.string().max(64),
  architecture: z.string().max(64),
  variant: z.string().max(64).optional(),
  'os.version': z.string().max(256).optional(),
});

/** zod schema of a {@link Descriptor}; digests must be sha256/sha512, sizes non-negative safe integers. */
export const descriptorSchema = z.looseObject({
  mediaType: z.string().min(1).max(256),
  digest: z.string().refine(isDigest, 'must be sha256:<64 hex> or sha512:<128 hex>'),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: imagePlatformSchema.optional(),
});
