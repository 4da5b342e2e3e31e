/**
 * NSS user and group lookups for ACL checks, without a process per request.
 *
 * Upstream ran `id -G <uid>` on the gateway host for every private-image check. Here one `getent passwd` and one
 * `getent group` run per refresh; the parsed tables are cached for a short time, so a lookup under load costs a map
 * read.
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** A user as NSS knows it. */
export interface NssUser {
  /** Login name. */
  readonly name: string;
  /** uid. */
  readonly uid: number;
  /** Primary gid. */
  readonly gid: number;
}

/** Resolves uids to names and groups. */
export interface GroupResolver {
  /** The user with this uid, or null. */
  user(uid: number): Promise<NssUser | null>;
  /** gids of every group the user belongs to (primary and supplementary), sorted; empty for unknown users. */
  groupsOf(uid: number): Promise<number[]>;
}

/** Options of {@link createGroupResolver}. */
export interface GroupResolverOptions {
  /** How long parsed tables are reused, in seconds (default 60). */
  readonly ttlSeconds?: number;
  /**
   * Reads the passwd and group tables as text (`name:x:uid:gid:…` and `name:x:gid:members`). Defaults to
   * `getent passwd` / `getent group` (all NSS sources), falling back to /etc/passwd and /etc/group.
   */
  readonly readTables?: () => Promise<{ passwd: string; group: string }>;
  /** Clock in ms (tests). */
  readonly now?: () => number;
}

async function defaultReadTables(): Promise<{ passwd: string; group: string }> {
  const read = async (database: string): Promise<string> => {
    try {
      return (await execFileAsync('getent', [database], { maxBuffer: 64 * 1024 * 1024 })).stdout;
    } catch {
      return readFile(`/etc/${database}`, 'utf8');
    }
  };
  const [passwd, group] = await Promise.all([read('passwd'), read('group')]);
  return { passwd, group };
}

interface Tables {
  readonly users: Map<number, NssUser>;
  readonly groupsByUser: Map<string, number[]>;
  readonly loadedAt: number;
}

function parseTables(passwd: string, group: string, loadedAt: number): Tables {
  const users = new Map<number, NssUser>();
  for (const line of passwd.split('\n')) {
    const [name, , uidText, gidText] = line.split(':');
    if (!name || !uidText || !gidText || !/^\d+$/.test(uidText) || !/^\d+$/.test(gidText)) continue;
    const uid = Number(uidText);
    // The first entry wins, as getpwuid() does.
    if (!users.has(uid)) users.set(uid, { name, uid, gid: Number(gidText) });
  }
  const groupsByUser = new Map<string, number[]>();
  for (const line of group.split('\n')) {
    const [, , gidText, members] = line.split(':');
    if (!gidText || !/^\d+$/.test(gidText) || !members) continue;
    for (const member of members.split(',')) {
      const name = member.trim();
      if (!name) continue;
      const list = groupsByUser.get(name) ?? [];
      list.push(Number(gidText));
      groupsByUser.set(name, list);
    }
  }
  return { users, groupsByUser, loadedAt };
}

/**
 * Create a cached NSS resolver.
 *
 * @param options - cache lifetime and table source
 * @returns a resolver; concurrent lookups during a refresh share one refresh
 */
export function createGroupResolver(options: GroupResolverOptions = {}): GroupResolver {
  const ttlMs = (options.ttlSeconds ?? 60) * 1000;
  const now = options.now ?? Date.now;
  const readTables = options.readTables ?? defaultReadTables;
  let tables: Tables | null = null;
  let refreshing: Promise<Tables> | null = null;

  const current = async (): Promise<Tables> => {
    if (tables && now() - tables.loadedAt < ttlMs) return tables;
    refreshing ??= readTables()
      .then(({ passwd, group }) => {
        tables = parseTables(passwd, group, now());
        return tables;
      })
      .finally(() => {
        refreshing = null;
      });
    return refreshing;
  };

  return {
    async user(uid) {
      return (await current()).users.get(uid) ?? null;
    },
    async groupsOf(uid) {
      const t = await current();
      const user = t.users.get(uid);
      if (!user) return [];
      return [...new Set([user.gid, ...(t.groupsByUser.get(user.name) ?? [])])].sort((a, b) => a - b);
    },
  };
}
