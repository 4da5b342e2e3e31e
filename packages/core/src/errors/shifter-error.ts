import { ERROR_CATALOG, type ErrorCode, lookupErrorCode } from './error-catalog.js';

const MARKER = Symbol.for('shifter.error');

/** Options every Shifter error accepts. */
export interface ShifterErrorOptions {
  /** The underlying error; logged, never shown to remote clients. */
  cause?: unknown;
  /** Structured facts about the failure (layer digest, entry name, tool stderr…); safe to show to clients. */
  details?: Record<string, unknown>;
  /** Overrides the catalogue's retryable flag (e.g. a 500 from a registry that is known to be permanent). */
  retryable?: boolean;
}

/**
 * Base class of every error Shifter reports. Match on {@link ShifterError.code}, not on the class: codes are stable
 * across versions and copies of the library, classes are not.
 *
 * @example
 * ```ts
 * try { await pullImage(ref, options); }
 * catch (error) {
 *   if (ShifterError.isInstance(error) && error.code === 'SHIFTER_REGISTRY_MANIFEST_UNKNOWN') { … }
 * }
 * ```
 */
export class ShifterError extends Error {
  /** Stable code from the catalogue (`docs/errors.md`). */
  readonly code: ErrorCode;
  /** Structured, client-safe details. */
  readonly details: Record<string, unknown>;
  /** Whether retrying the same operation may succeed. */
  readonly retryable: boolean;
  private readonly [MARKER] = true;

  constructor(code: ErrorCode, message?: string, options: ShifterErrorOptions = {}) {
    super(message ?? ERROR_CATALOG[code].summary, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
    this.retryable = options.retryable ?? lookupErrorCode(code).retryable;
  }

  /** HTTP status the gateway answers for this error. */
  get httpStatus(): number {
    return lookupErrorCode(this.code).httpStatus;
  }

  /** Exit code the command-line tools use for this error. */
  get exitCode(): number {
    return lookupErrorCode(this.code).exitCode;
  }

  /** True for any ShifterError, including ones created by another copy of this library. */
  static isInstance(value: unknown): value is ShifterError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }

  /** The JSON form used in gateway error bodies and `--json` output. */
  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Reference (image name) errors. */
export class InvalidReferenceError extends ShifterError {}
/** Registry protocol, availability and authorisation errors. */
export class RegistryError extends ShifterError {
  /** HTTP status the registry answered, when there was one. */
  readonly registryStatus: number | undefined;
  constructor(code: ErrorCode, message?: string, options: ShifterErrorOptions & { registryStatus?: number } = {}) {
    super(code, message, options);
    this.registryStatus = options.registryStatus;
  }
}
/** Digest, size and integrity errors. */
export class IntegrityError extends ShifterError {}
/** Manifest and image-config errors. */
export class ManifestError extends ShifterError {}
/** Refusals and failures while applying layers. */
export class LayerError extends ShifterError {}
/** squashfs build and external tool errors. */
export class ConversionError extends ShifterError {}
/** Errors while delivering images to a system. */
export class TransferError extends ShifterError {}
/** Configuration errors. */
export class ConfigError extends ShifterError {}
/** Missing images, systems, records. */
export class NotFoundError extends ShifterError {}
/** Authentication and authorisation errors. */
export class AuthError extends ShifterError {}
/** Metadata store, queue and job errors. */
export class StoreError extends ShifterError {}

/**
 * Wrap anything thrown into a ShifterError; ShifterErrors pass through unchanged, anything else becomes
 * `SHIFTER_INTERNAL` with the original as its cause.
 */
export function toShifterError(error: unknown): ShifterError {
  if (ShifterError.isInstance(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ShifterError('SHIFTER_INTERNAL', message, { cause: error });
}
