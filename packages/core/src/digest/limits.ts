/**
 * Caps on bytes taken from remote servers before anything is parsed. A registry (or anything pretending to be
 * one) controls these bodies; without a cap a single response could exhaust memory, as happened to
 * containers/image (CVE-2022-2990-class issues) and to Docker's token handling.
 */

/**
 * Largest manifest or index read into memory. Manifests are JSON read whole; real ones are a few KiB, and the
 * distribution spec lets registries refuse manifests over 4 MiB, so nothing legitimate is lost.
 */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Largest token-server answer. Tokens are a few KiB of JWT; 1 MiB leaves room for odd servers, not for abuse. */
export const MAX_TOKEN_BYTES = 1024 * 1024;

/**
 * Largest image config blob read into memory. Configs carry history and labels and can reach hundreds of KiB on
 * images with many layers; 8 MiB is generous while still bounding memory per pull.
 */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** Largest error body read from a registry just to extract its error code. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Byte caps applied to remote content. */
export interface SizeLimits {
  /** See {@link MAX_MANIFEST_BYTES}. */
  maxManifestBytes: number;
  /** See {@link MAX_TOKEN_BYTES}. */
  maxTokenBytes: number;
  /** See {@link MAX_CONFIG_BYTES}. */
  maxConfigBytes: number;
  /** Largest compressed layer accepted (a descriptor declaring more is refused before download). */
  maxLayerBytes: number;
}

/** Default {@link SizeLimits}. */
export const DEFAULT_SIZE_LIMITS: Readonly<SizeLimits> = Object.freeze({
  maxManifestBytes: MAX_MANIFEST_BYTES,
  maxTokenBytes: MAX_TOKEN_BYTES,
  maxConfigBytes: MAX_CONFIG_BYTES,
  maxLayerBytes: 16 * 1024 ** 3,
});
