/**
 * Types shared by the image service's request side, its jobs and its facade (`ImageService`).
 *
 * @packageDocumentation
 */
import type { ImageStatus } from '../metadata/index.js';

/** Minimal logger (pino-compatible). */
export interface ServiceLogger {
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
  error(object: Record<string, unknown>, message: string): void;
}

/** The parts of a caller an import job keeps (no registry credentials). */
export interface ImportCaller {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  readonly user: string;
}

/** ACL lists a pull or import request asks for. */
export interface AclRequest {
  /** Extra uids (the caller's uid is always added). */
  readonly allowedUids?: readonly number[] | undefined;
  /** Extra gids (the caller's gid is added when any are given, as upstream). */
  readonly allowedGids?: readonly number[] | undefined;
}

/** Import request fields. */
export interface ImportRequest extends AclRequest {
  /** Absolute path of the squashfs file on the target system. */
  readonly filepath: string;
  /** Only `squashfs`. */
  readonly format?: string;
}

/** One in-flight entry of `ImageService.queue`. */
export interface QueueEntry {
  readonly status: ImageStatus;
  readonly image: string;
  readonly status_message: string;
}

/** A logger that drops everything. */
export const silentLogger: ServiceLogger = { info() {}, warn() {}, error() {} };
