import { mungeEncode, ShifterError } from '@shifter/core';
import { mungeEncodeWithCli } from './munge-encode.js';

/** munged's compiled-in default socket, used when `SHIFTER_MUNGE_SOCKET` is not set. */
export const DEFAULT_MUNGE_SOCKET = '/run/munge/munge.socket.2';

/** Whether `error` says the libmunge addon is missing or does not load (as opposed to munged refusing). */
function addonUnavailable(error: unknown): boolean {
  if (!ShifterError.isInstance(error) || error.code !== 'SHIFTER_AUTH_UNAVAILABLE') return false;
  // Errors from munged itself carry libmunge's error number; addon load failures do not.
  return error.details.mungeCode === undefined;
}

/**
 * Sign `payload` for the gateway: in-process through core's libmunge addon when it is built and installed next to
 * the bundle (a few milliseconds), else by running the `munge` command.
 * @param payload - `""` or the `authorized_locations` JSON
 * @param socketPath - munged socket (default {@link DEFAULT_MUNGE_SOCKET})
 * @throws AuthError `SHIFTER_AUTH_UNAVAILABLE` when munged cannot be reached by either way
 */
export async function signWithMunge(payload: string, socketPath: string | undefined): Promise<string> {
  try {
    return await mungeEncode(payload, { socketPath: socketPath ?? DEFAULT_MUNGE_SOCKET });
  } catch (error) {
    if (!addonUnavailable(error)) throw error;
    return mungeEncodeWithCli(payload, { socketPath });
  }
}
