// One cold conversion of an OCI layout image with @shifter/core's convertImage, run in its own process so its peak
// RSS is its own. Prints one JSON line: { wallMs, flattenMs, squashfsMs, maxRssMB, squashfsBytes, entries, unpackedBytes }.
// Usage: tsx bench/convert/convert-once.ts LAYOUT TAG OUTDIR SCRATCH [mksquashfs|tar2sqfs]
import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LayerSource, convertImage } from '@shifter/core';

const [layout, tag, outDir, scratch, tool = 'mksquashfs'] = process.argv.slice(2);
if (!layout || !tag || !outDir || !scratch) {
  console.error('usage: convert-once.ts LAYOUT TAG OUTDIR SCRATCH [mksquashfs|tar2sqfs]');
  process.exit(64);
}
interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string };
}
const blob = (digest: string) => join(layout, 'blobs', ...digest.split(':'));
const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
let descriptor = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
if (descriptor && /index|list/.test(descriptor.mediaType)) {
  const inner = JSON.parse(readFileSync(blob(descriptor.digest), 'utf8')) as { manifests: Descriptor[] };
  descriptor = inner.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
}
if (!descriptor) throw new Error(`no ${tag} in ${layout}`);
const manifest = JSON.parse(readFileSync(blob(descriptor.digest), 'utf8')) as {
  config: Descriptor;
  layers: Descriptor[];
};
const layers: LayerSource[] = manifest.layers.map((l) => ({
  digest: l.digest,
  mediaType: l.mediaType,
  size: l.size,
  open: async () => createReadStream(blob(l.digest), { highWaterMark: 1024 * 1024 }),
}));
const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8')) as unknown;
const started = performance.now();
const result = await convertImage(layers, config, outDir, {
  id: descriptor.digest.split(':')[1] as string,
  expandDir: scratch,
  conversion: { tool: tool as 'mksquashfs' | 'tar2sqfs', compression: 'zstd', compressionLevel: 3 },
});
console.log(
  JSON.stringify({
    wallMs: Math.round(performance.now() - started),
    flattenMs: Math.round(result.summary.timings.flattenMs),
    squashfsMs: Math.round(result.summary.timings.squashfsMs),
    maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    squashfsBytes: result.summary.squashfsBytes,
    entries: result.summary.entries,
    unpackedBytes: result.summary.unpackedBytes,
  }),
);
