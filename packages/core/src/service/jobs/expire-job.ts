/**
 * The expire job: remove an EXPIRING image's files from its system (unless another READY record shares them) and
 * mark the record EXPIRED.
 *
 * @packageDocumentation
 */
import type { JobRecord, JsonValue } from '../../jobs/index.js';
import type { MetadataStore } from '../../metadata/index.js';
import type { Transfer } from '../../transfer/index.js';
import type { ExpirePayload } from './job-payloads.js';

/** What an {@link ExpireJob} needs: nothing else of the service. */
export interface ExpireJobDeps {
  /** The record methods the job uses. */
  readonly store: Pick<MetadataStore, 'get' | 'findReadyByImageId' | 'removeTag' | 'update'>;
  /** Transfer of each system. */
  readonly transferFor: (system: string) => Pick<Transfer, 'remove'>;
}

/** Runs `expire` jobs: `EXPIRING → EXPIRED`. Idempotent: a record not EXPIRING is left alone. */
export class ExpireJob {
  constructor(private readonly deps: ExpireJobDeps) {}

  /**
   * Run one expire job.
   * @returns `{ imageId, removed }`, or `{ skipped: true }` when the record is not EXPIRING
   */
  async run(job: JobRecord, payload: ExpirePayload): Promise<JsonValue> {
    const { store } = this.deps;
    const record = await store.get(payload.recordId);
    if (!record || record.status !== 'EXPIRING') return { skipped: true };
    const id = record.imageId;
    let removed = false;
    // Another READY record may carry the same file (an import and a pull of identical bytes); keep it then.
    const sharing = id ? await store.findReadyByImageId(job.system, id) : null;
    if (id && !sharing) removed = await this.deps.transferFor(job.system).remove(id, { format: record.format });
    for (const tag of record.tags) await store.removeTag(record.recordId, tag);
    await store.update(
      record.recordId,
      { status: 'EXPIRED', statusMessage: 'Image expired' },
      { expectStatus: 'EXPIRING' },
    );
    return { imageId: id, removed };
  }
}
