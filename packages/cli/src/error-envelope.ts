import { inspect } from 'node:util';
import { lookupErrorCode, type ShifterError } from '@shifter/core';

/** Error body printed under `--json`: the same envelope the gateway answers with. */
export interface ErrorEnvelope {
  status: number;
  error: string;
  code: string;
  message: string;
  details: Record<string, unknown>;
}

/**
 * The gateway's error envelope for an error (`status`, `error` and `message` as upstream, plus `code` and `details`).
 * @param error - the error to describe
 */
export function errorEnvelope(error: ShifterError): ErrorEnvelope {
  return {
    status: lookupErrorCode(error.code).httpStatus,
    error: error.code,
    code: error.code,
    message: error.message,
    details: error.details,
  };
}

/**
 * Print an error the way every command does: `CODE: message` on stderr, or the envelope on stdout under `--json`.
 * @param error - the error
 * @param json - whether `--json` was given
 * @param verbose - whether to add the cause
 * @returns the exit code to use
 */
export function reportError(error: ShifterError, json: boolean, verbose: boolean): number {
  if (json) {
    process.stdout.write(`${JSON.stringify(errorEnvelope(error), null, 2)}\n`);
  } else {
    process.stderr.write(`${error.code}: ${error.message}\n`);
    if (verbose && error.cause !== undefined)
      process.stderr.write(`cause: ${error.cause instanceof Error ? error.cause.stack : inspect(error.cause)}\n`);
  }
  return error.exitCode;
}
