import type { GatewayImage, GatewayQueueEntry } from '@shifter/core';

function pad(value: number): string {
  return String(value).padStart(2, '0');
}

/**
 * Local time as upstream prints it: `YYYY-mm-ddTHH:MM:SS` (no zone).
 * @param date - the moment to format
 */
export function formatLocalTimestamp(date: Date): string {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/**
 * The `images` table: one row per tag, sorted by tag, in upstream's printf layout
 * `%-10s %-10s %-8s %-.10s   %s %-30s`.
 * @param images - the list answer
 */
export function formatImagesTable(images: readonly GatewayImage[]): string {
  const rows: Array<{ tag: string; line: string }> = [];
  for (const image of images) {
    const lastPull = formatLocalTimestamp(new Date(image.last_pull * 1000));
    for (const tag of image.tag) {
      const line = `${image.system.padEnd(10)} ${image.itype.padEnd(10)} ${image.status.padEnd(8)} ${image.id.slice(0, 10)}   ${lastPull} ${tag.padEnd(30)}`;
      rows.push({ tag, line });
    }
  }
  rows.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
  return rows.map((row) => `${row.line}\n`).join('');
}

/**
 * One pull progress line, upstream's `<timestamp> Pulling Image: <type>:<tag>, status: <STATUS>`, with the gateway's
 * progress text (layer and byte counts) after the status when `detail` is set.
 * @param now - time of the update
 * @param type - image type
 * @param tag - image tag
 * @param image - the latest answer
 * @param detail - append `status_message`
 */
export function formatPullLine(now: Date, type: string, tag: string, image: GatewayImage, detail: boolean): string {
  const base = `${formatLocalTimestamp(now)} Pulling Image: ${type}:${tag}, status: ${image.status}`;
  const message = image.status_message;
  return detail && message && message !== 'MISSING' ? `${base} (${message})` : base;
}

/**
 * The `queue` listing: `STATUS IMAGE [MESSAGE]`, one entry per line.
 * @param entries - the queue answer
 */
export function formatQueue(entries: readonly GatewayQueueEntry[]): string {
  return entries
    .map(
      (entry) =>
        `${entry.status.padEnd(11)} ${entry.image}${entry.status_message ? `  ${entry.status_message}` : ''}\n`,
    )
    .join('');
}
