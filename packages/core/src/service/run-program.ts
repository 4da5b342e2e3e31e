/**
 * Running programs for the image service's jobs: the site examiner, and reading a file to import as the user who asked.
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ShifterError } from '../errors/index.js';
import { copyFileAsCaller, type ImportReadOptions } from './import-reader.js';
import type { ImportCaller } from './service-types.js';

const execFileAsync = promisify(execFile);

/**
 * Run the site's examiner (`config.examiner`) on an unpacked image: `examiner <rootDir> <imageId>`. A non-zero exit
 * rejects the image.
 * @throws {@link ShifterError} `SHIFTER_EXAMINATION_FAILED` with the exit code and the first 2000 characters of output
 */
export async function runExaminer(examiner: string, rootDir: string, id: string, signal: AbortSignal): Promise<void> {
  try {
    await execFileAsync(examiner, [rootDir, id], { signal, maxBuffer: 4 * 1024 * 1024 });
  } catch (error) {
    const failure = error as { code?: unknown; stderr?: string; stdout?: string };
    throw new ShifterError('SHIFTER_EXAMINATION_FAILED', `the examiner rejected image ${id}`, {
      cause: error,
      details: { exitCode: failure.code, output: String(failure.stderr || failure.stdout || '').slice(0, 2000) },
    });
  }
}

/**
 * Copies the file an import names, reading it as the caller who asked (see {@link copyFileAsCaller}, the default:
 * regular files only, checked on the open descriptor, up to `limits.maxImportBytes`, under `limits.importTimeoutMs`
 * and the job's signal).
 */
export type ReadFileAs = (
  caller: ImportCaller,
  path: string,
  destination: string,
  options: ImportReadOptions,
) => Promise<unknown>;

/** The default {@link ReadFileAs}: {@link copyFileAsCaller}. */
export const defaultReadFileAs: ReadFileAs = copyFileAsCaller;
