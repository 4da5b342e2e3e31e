import type { ImageResponse } from '../api/routes-contract.js';
import { MISSING_FIELD } from '../api/routes-contract.js';
import type { ImageRecord } from '../metadata/index.js';

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * The `status_message` of a record: its failure as `CODE: message`, else its progress (step, layer, bytes done /
 * total), else its stored message.
 * @param record - the image record
 */
export function statusMessageOf(record: ImageRecord): string {
  if (record.status === 'FAILURE' && record.error) return `${record.error.code}: ${record.error.message}`;
  const progress = record.progress;
  if (progress && record.status !== 'READY') {
    const parts = [progress.step];
    if (progress.layer) parts.push(progress.layer);
    if (progress.bytesDone !== undefined) {
      parts.push(
        progress.bytesTotal
          ? `${formatBytes(progress.bytesDone)} / ${formatBytes(progress.bytesTotal)}`
          : formatBytes(progress.bytesDone),
      );
    }
    return parts.join(' ');
  }
  return record.statusMessage;
}

/**
 * Map a record to upstream's image response (`id, system, itype, tag, status, userACL, groupACL, ENV, ENTRY,
 * WORKDIR, LABELS, last_pull, status_message`); unknown values are `"MISSING"` as upstream, times are seconds.
 * @param record - the image record
 * @param options - `labels: false` reports LABELS as MISSING (labels disabled in the config)
 */
export function toImageResponse(record: ImageRecord, options: { labels?: boolean } = {}): ImageResponse {
  const known = record.status === 'READY' || record.status === 'EXPIRING' || record.status === 'EXPIRED';
  const response: ImageResponse = {
    id: record.imageId ?? MISSING_FIELD,
    system: record.system,
    itype: record.itype,
    tag: record.tags.length > 0 ? [...record.tags] : record.pulltag ? [record.pulltag] : [],
    status: record.status,
    userACL: [...record.userAcl],
    groupACL: [...record.groupAcl],
    ENV: known ? [...record.env] : MISSING_FIELD,
    ENTRY: known ? (record.entrypoint ? [...record.entrypoint] : '') : MISSING_FIELD,
    WORKDIR: known ? (record.workdir ?? '') : MISSING_FIELD,
    LABELS: known && options.labels !== false ? { ...record.labels } : MISSING_FIELD,
    last_pull: (record.lastPull ?? record.createdAt) / 1000,
    status_message: statusMessageOf(record),
  };
  if (record.status === 'FAILURE' && record.error) response.code = record.error.code;
  return response;
}

// Keys whose numbers upstream writes from Python floats (`time.time()`), so always with a fractional part.
const FLOAT_KEYS = /"(last_pull|time)":(-?\d+)(?=[,}\]])/g;

/**
 * Serialise a gateway answer as upstream's gateway does: `last_pull` (and a metrics row's `time`) always carry a
 * fractional part (`1700000000.0`, never `1700000000`), because upstream's client reads them as doubles and an
 * integer there is shown as 1970. Everything else is `JSON.stringify`.
 *
 * The rewrite is safe on any JSON text: an unescaped `"` only ever delimits a string, so `"last_pull":<digits>`
 * followed by `,`, `}` or `]` can only be that key with an integral number value.
 * @param value - an image response, a list answer, metrics rows or any other JSON value
 * @returns the JSON text
 * @example
 * ```ts
 * upstreamJson({ last_pull: 1_700_000_000 }); // '{"last_pull":1700000000.0}'
 * ```
 */
export function upstreamJson(value: unknown): string {
  return JSON.stringify(value).replace(FLOAT_KEYS, '"$1":$2.0');
}
