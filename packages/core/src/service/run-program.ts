/**
 * Running site programs from a worker: the examiner that may reject an image before it is converted.
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ShifterError } from '../errors/index.js';

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
