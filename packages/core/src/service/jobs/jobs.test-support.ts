// Fakes of the narrow dependencies of the job handlers (unit tests only).
import { readFileSync } from 'node:fs';
import { StoreError } from '../../errors/index.js';
import {
  fillImageRecord,
  type AccessList,
  type ImageRecord,
  type ImageRecordPatch,
  type ImageStatus,
  type NewImageRecord,
  type UpdateExpectations,
} from '../../metadata/index.js';

/** One call a fake recorded. */
export interface Call {
  readonly method: string;
  readonly args: unknown[];
}

/** In-memory image records with the store methods the handlers pick (and nothing else). */
export class MemoryRecords {
  readonly records = new Map<string, ImageRecord>();
  readonly calls: Call[] = [];
  private next = 1;

  add(input: Partial<ImageRecord> & Pick<ImageRecord, 'status'>): ImageRecord {
    const recordId = `r${this.next++}`;
    const record = {
      ...fillImageRecord({ system: 'cluster', itype: 'docker', ...input } as NewImageRecord, {
        recordId,
        createdAt: 1,
      }),
      ...input,
      recordId,
    };
    this.records.set(recordId, record);
    return record;
  }

  async get(recordId: string): Promise<ImageRecord | null> {
    return this.records.get(recordId) ?? null;
  }

  async update(recordId: string, patch: ImageRecordPatch, expectations: UpdateExpectations = {}): Promise<ImageRecord> {
    this.calls.push({ method: 'update', args: [recordId, patch, expectations] });
    const record = this.records.get(recordId);
    if (!record) throw new StoreError('SHIFTER_IMAGE_NOT_FOUND', `no record ${recordId}`);
    const expected = expectations.expectStatus;
    const allowed: readonly ImageStatus[] | undefined =
      expected === undefined ? undefined : typeof expected === 'string' ? [expected] : expected;
    if (allowed && !allowed.includes(record.status)) throw new StoreError('SHIFTER_JOB_CONFLICT', 'status moved');
    const updated = { ...record, ...patch, revision: record.revision + 1 };
    this.records.set(recordId, updated);
    return updated;
  }

  async findReadyByImageId(system: string, imageId: string): Promise<ImageRecord | null> {
    return (
      [...this.records.values()].find((r) => r.system === system && r.imageId === imageId && r.status === 'READY') ??
      null
    );
  }

  async moveTag(recordId: string, tag: string, access?: AccessList): Promise<ImageRecord> {
    this.calls.push({ method: 'moveTag', args: [recordId, tag, access] });
    const record = this.records.get(recordId)!;
    const updated = { ...record, tags: [...record.tags.filter((t) => t !== tag), tag] };
    this.records.set(recordId, updated);
    return updated;
  }

  async removeTag(recordId: string, tag: string): Promise<ImageRecord> {
    this.calls.push({ method: 'removeTag', args: [recordId, tag] });
    const record = this.records.get(recordId)!;
    const updated = { ...record, tags: record.tags.filter((t) => t !== tag) };
    this.records.set(recordId, updated);
    return updated;
  }
}

/** A transfer that remembers what it was asked (no files). */
export class MemoryTransfer {
  readonly onSystem = new Set<string>();
  readonly calls: Call[] = [];
  /** The `.meta` text each put carried. */
  readonly metas = new Map<string, string>();
  async exists(id: string): Promise<boolean> {
    return this.onSystem.has(id);
  }
  async put(localImage: string, localMeta: string, id: string, options: { private?: boolean } = {}): Promise<void> {
    this.calls.push({ method: 'put', args: [localImage, localMeta, id, { private: options.private }] });
    this.metas.set(id, readFileSync(localMeta, 'utf8'));
    this.onSystem.add(id);
  }
  async putMeta(localMeta: string, id: string): Promise<void> {
    this.calls.push({ method: 'putMeta', args: [localMeta, id] });
  }
  async remove(id: string): Promise<boolean> {
    this.calls.push({ method: 'remove', args: [id] });
    return this.onSystem.delete(id);
  }
}

/** A progress sink that writes states through `records` (as the real one does) and logs them. */
export function recordingProgress(records: MemoryRecords) {
  const states: { recordId: string; status: ImageStatus; step: string | undefined }[] = [];
  const forgotten: string[] = [];
  return {
    states,
    forgotten,
    async setState(recordId: string, status: ImageStatus, progress: { step: string } | null, extra = {}) {
      states.push({ recordId, status, step: progress?.step });
      return records.update(recordId, { status, ...extra });
    },
    report(recordId: string, status: ImageStatus, progress: { step: string }) {
      states.push({ recordId, status, step: progress.step });
    },
    forget(recordId: string) {
      forgotten.push(recordId);
    },
  };
}

/** A placement that logs the shared steps it was asked for. */
export function recordingPlacement() {
  const calls: Call[] = [];
  return {
    calls,
    async attachTag(...args: unknown[]) {
      calls.push({ method: 'attachTag', args });
    },
    async settleFileAccess(...args: unknown[]) {
      calls.push({ method: 'settleFileAccess', args });
    },
  };
}
