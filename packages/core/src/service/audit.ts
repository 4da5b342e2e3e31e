/**
 * Audit records: one log line per pull, import, expiry and ACL request, naming the caller's uid.
 *
 * Every record is written at `info` level through the service logger with `audit: true`, a stable `action` and the
 * message `audit`, so a site can route them apart (`jq 'select(.audit)'` on the gateway's JSON log). Actions:
 *
 * - `pull.request`, `import.request`: a caller started a pull or import (`uid`, `user`, `system`, `type`, `tag`,
 *   the ACL it asked for: `private`, `userAcl`, `groupAcl`; `filepath` for imports). Joining a pull already in
 *   flight starts nothing and writes no record.
 * - `pull.done`, `import.done`, `pull.failed`, `import.failed`, `expire.done`: the job's outcome (`recordId` ties it to its
 *   request; `imageId`, `code`).
 * - `expire.request`, `autoexpire.request`: an admin expired a tag or ran autoexpire (`uid`, `user`, `system`, the
 *   tags or image ids).
 *
 * @packageDocumentation
 */

/** The logger side audit records need (pino-compatible). */
export interface AuditLogger {
  info(object: Record<string, unknown>, message: string): void;
}

/** Actions of {@link auditRecord}. */
export type AuditAction =
  | 'pull.request'
  | 'import.request'
  | 'expire.request'
  | 'autoexpire.request'
  | 'pull.done'
  | 'import.done'
  | 'expire.done'
  | 'pull.failed'
  | 'import.failed'
  | 'expire.failed';

/** Who did it (absent for a job's outcome, which names its request by `recordId`). */
export interface AuditActor {
  readonly uid: number;
  readonly user: string;
}

/**
 * Write one audit record.
 * @param logger - the service logger
 * @param action - what happened
 * @param actor - the caller, when the record is a request
 * @param fields - system, type, tag, ACL, record and image ids
 */
export function auditRecord(
  logger: AuditLogger,
  action: AuditAction,
  actor: AuditActor | null,
  fields: Record<string, unknown>,
): void {
  logger.info({ audit: true, action, ...(actor ? { uid: actor.uid, user: actor.user } : {}), ...fields }, 'audit');
}
