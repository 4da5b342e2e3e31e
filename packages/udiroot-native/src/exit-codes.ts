/**
 * Exit codes of the udiRoot programs (`shifter`, `setupRoot`, `unsetupRoot`), mirrored from `native/src/udi_misc.h`
 * (`UDI_EX_*`). A unit test parses the header and fails when the two drift apart.
 */
export const UDI_EXIT_CODES = {
  UDI_EX_OK: 0,
  UDI_EX_FAILURE: 1,
  UDI_EX_USAGE: 64,
  UDI_EX_DATAERR: 65,
  UDI_EX_NOINPUT: 66,
  UDI_EX_NOUSER: 67,
  UDI_EX_UNAVAILABLE: 69,
  UDI_EX_SOFTWARE: 70,
  UDI_EX_OSERR: 71,
  UDI_EX_NOPERM: 77,
  UDI_EX_CONFIG: 78,
  UDI_EX_UNTRUSTED: 79,
  UDI_EX_EXEC_FAILED: 127,
} as const;

/** Name of a runtime exit code, e.g. `UDI_EX_NOPERM`. */
export type UdiExitCodeName = keyof typeof UDI_EXIT_CODES;

/**
 * The `@shifter/core` error code that best describes each failing runtime exit code, for tools that report runtime
 * failures through the common catalogue (`docs/errors.md`).
 */
export const UDI_EXIT_TO_ERROR_CODE = {
  UDI_EX_FAILURE: 'SHIFTER_INTERNAL',
  UDI_EX_USAGE: 'SHIFTER_USAGE_INVALID_ARGUMENT',
  UDI_EX_DATAERR: 'SHIFTER_USAGE_INVALID_ARGUMENT',
  UDI_EX_NOINPUT: 'SHIFTER_IMAGE_NOT_FOUND',
  UDI_EX_NOUSER: 'SHIFTER_AUTH_FORBIDDEN',
  UDI_EX_UNAVAILABLE: 'SHIFTER_GATEWAY_UNAVAILABLE',
  UDI_EX_SOFTWARE: 'SHIFTER_INTERNAL',
  UDI_EX_OSERR: 'SHIFTER_INTERNAL',
  UDI_EX_NOPERM: 'SHIFTER_AUTH_FORBIDDEN',
  UDI_EX_CONFIG: 'SHIFTER_CONFIG_INVALID',
  UDI_EX_UNTRUSTED: 'SHIFTER_CONFIG_INSECURE',
  UDI_EX_EXEC_FAILED: 'SHIFTER_USAGE_INVALID_ARGUMENT',
} as const;

/**
 * Name of a runtime exit code.
 *
 * @param code - the process exit status of `shifter`
 * @returns the `UDI_EX_*` name, or `undefined` when the status is not one of the runtime's own. A status that is
 *   one of them may still come from the command run in the container (docs/runtime.md, "Exit codes").
 */
export function udiExitCodeName(code: number): UdiExitCodeName | undefined {
  for (const [name, value] of Object.entries(UDI_EXIT_CODES)) if (value === code) return name as UdiExitCodeName;
  return undefined;
}
