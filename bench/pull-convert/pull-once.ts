// One cold pull → squashfs with @shifter/core's pullImage, in its own process so its peak RSS is its own.
// Child processes (mksquashfs/tar2sqfs) are measured separately by polling /proc for this process's descendants.
// Prints one JSON line: { wallMs, resolveMs, nodeMaxRssMB, childPeakRssMB, squashfsBytes, layers, bytes }.
// Usage: node --conditions=@shifter/source --import tsx bench/pull-convert/pull-once.ts REF OUTDIR CACHEDIR SCRATCH [tar2sqfs|mksquashfs]
import { readdirSync, readFileSync } from 'node:fs';
import { pullImage } from '@shifter/core';

const [ref, outDir, cacheDir, scratch, tool = 'tar2sqfs'] = process.argv.slice(2);
if (!ref || !outDir || !cacheDir || !scratch) {
  console.error('usage: pull-once.ts REF OUTDIR CACHEDIR SCRATCH [tar2sqfs|mksquashfs]');
  process.exit(64);
}

function children(pid: number): number[] {
  const found: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (list) for (const child of list.split(/\s+/)) found.push(Number(child), ...children(Number(child)));
    }
  } catch {
    // the process ended while we looked
  }
  return found;
}
function rssKB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
let childPeakKB = 0;
const poll = setInterval(() => {
  const total = children(process.pid).reduce((sum, pid) => sum + rssKB(pid), 0);
  childPeakKB = Math.max(childPeakKB, total);
}, 50);

const started = performance.now();
let resolvedAt = 0;
const result = await pullImage(ref, {
  cacheDir,
  outDir,
  expandDir: scratch,
  conversion: { tool: tool as 'mksquashfs' | 'tar2sqfs', compression: 'zstd', compressionLevel: 3 },
  onProgress: (event) => {
    if (event.phase === 'resolved') resolvedAt = performance.now();
  },
});
const wallMs = performance.now() - started;
clearInterval(poll);
console.log(
  JSON.stringify({
    wallMs: Math.round(wallMs),
    resolveMs: Math.round(resolvedAt - started),
    flattenMs: Math.round(result.conversion.timings.flattenMs),
    squashfsMs: Math.round(result.conversion.timings.squashfsMs),
    nodeMaxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    childPeakRssMB: Math.round(childPeakKB / 1024),
    squashfsBytes: result.conversion.squashfsBytes,
    layers: result.layers.downloaded,
    bytes: result.layers.bytes,
  }),
);
