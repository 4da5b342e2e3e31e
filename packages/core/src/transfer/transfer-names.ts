/**
 * File names and argument checks every transfer implementation shares.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { ShifterError } from '../errors/index.js';
import { IMAGE_FORMAT_PATTERN, IMAGE_ID_PATTERN } from './transfer.js';

/** Paths are limited to these characters so they survive ssh, scp and a remote shell without surprises. */
const SAFE_DIRECTORY = /^\/[A-Za-z0-9._/+@-]*$/;

/**
 * Check an image directory: absolute, no `..`, only `[A-Za-z0-9._/+@-]`.
 * @throws ShifterError `SHIFTER_CONFIG_INVALID` otherwise.
 */
export function checkImageDir(imageDir: string): string {
  if (!isAbsolute(imageDir) || !SAFE_DIRECTORY.test(imageDir) || imageDir.split('/').includes('..')) {
    throw new ShifterError(
      'SHIFTER_CONFIG_INVALID',
      `imageDir must be an absolute path of [A-Za-z0-9._/+@-] without '..', got ${JSON.stringify(imageDir)}`,
    );
  }
  return imageDir.length > 1 ? imageDir.replace(/\/+$/, '') : imageDir;
}

/**
 * Check an image id and format before they become file names.
 * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT`.
 */
export function checkIdAndFormat(id: string, format: string): void {
  if (typeof id !== 'string' || !IMAGE_ID_PATTERN.test(id)) {
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      `image id must be lower-case hex (8-128 chars), got ${JSON.stringify(id)}`,
    );
  }
  if (typeof format !== 'string' || !IMAGE_FORMAT_PATTERN.test(format) || format === 'meta') {
    throw new ShifterError(
      'SHIFTER_USAGE_INVALID_ARGUMENT',
      `image format must be a short lower-case word, got ${JSON.stringify(format)}`,
    );
  }
}

/** Final names of an image and its meta. */
export function imageFileNames(id: string, format: string): { image: string; meta: string } {
  return { image: `${id}.${format}`, meta: `${id}.meta` };
}

/** A fresh temp name in the image directory for the file with extension `ext` (matches TRANSFER_TEMP_PATTERN). */
export function tempFileName(id: string, ext: string): string {
  return `.${id}.${ext}.shifter-tmp-${randomBytes(6).toString('hex')}`;
}

/** File mode of an image (and its meta). */
export function imageMode(isPrivate: boolean | undefined): number {
  return isPrivate ? 0o600 : 0o644;
}
