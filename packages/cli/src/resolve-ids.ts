import { execFile } from 'node:child_process';
import { ShifterError } from '@shifter/core';

/** Which database a name is looked up in. */
export type IdDatabase = 'passwd' | 'group';

/** Looks a user or group name up and returns its numeric id, or undefined when unknown. */
export type NameResolver = (database: IdDatabase, name: string) => Promise<number | undefined>;

/** Resolve through NSS with `getent`, so LDAP/SSSD users work as they do for the runtime. */
export const getentResolver: NameResolver = (database, name) =>
  new Promise((resolve, reject) => {
    execFile('getent', [database, name], { encoding: 'utf8', timeout: 10_000 }, (error, stdout) => {
      // getent exits 2 for "not found"; anything else is a real failure.
      if (error && (error as { code?: unknown }).code === 2) return resolve(undefined);
      if (error)
        return reject(
          new ShifterError('SHIFTER_IO_FAILED', `cannot run getent ${database} ${name}: ${error.message}`, {
            cause: error,
          }),
        );
      const id = Number(stdout.split('\n', 1)[0]?.split(':')[2]);
      resolve(Number.isInteger(id) ? id : undefined);
    });
  });

/**
 * Turn `--user`/`--group` values (comma lists of names or numeric ids, possibly repeated) into unique ids.
 *
 * @param values - the flag values
 * @param database - `passwd` for users, `group` for groups
 * @param resolver - name look-up (default {@link getentResolver})
 * @throws ShifterError `SHIFTER_USAGE_INVALID_ARGUMENT` for an unknown name or an id out of range
 */
export async function resolveIds(
  values: readonly string[] | undefined,
  database: IdDatabase,
  resolver: NameResolver = getentResolver,
): Promise<number[]> {
  const ids = new Set<number>();
  const what = database === 'passwd' ? 'user' : 'group';
  for (const item of (values ?? [])
    .flatMap((value) => value.split(','))
    .map((part) => part.trim())
    .filter(Boolean)) {
    if (/^\d+$/.test(item)) {
      const id = Number(item);
      if (id > 0xfffffffe)
        throw new ShifterError('SHIFTER_USAGE_INVALID_ARGUMENT', `${what} id ${item} is out of range`);
      ids.add(id);
      continue;
    }
    const id = await resolver(database, item);
    if (id === undefined) {
      throw new ShifterError(
        'SHIFTER_USAGE_INVALID_ARGUMENT',
        `unknown ${what} "${item}": give a ${what} name or a numeric id`,
        {
          details: { [what]: item },
        },
      );
    }
    ids.add(id);
  }
  return [...ids];
}
