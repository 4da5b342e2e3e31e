// One conversion of a single-layer image (a gzip tar on disk) with @shifter/core's convertImage, in its own process
// so its peak RSS is its own. Prints one JSON line: { wallMs, entries, method, nodeMaxRssMB }.
// Usage: convert-names.mjs LAYER.tar.gz OUTDIR SCRATCH MAX_IN_MEMORY_NAMES
import { createReadStream, statSync } from 'node:fs';
import { convertImage } from '@shifter/core';

const [layer, outDir, scratch, maxNames] = process.argv.slice(2);
if (!layer || !outDir || !scratch || !maxNames) {
  console.error('usage: convert-names.mjs LAYER.tar.gz OUTDIR SCRATCH MAX_IN_MEMORY_NAMES');
  process.exit(64);
}
const started = performance.now();
const result = await convertImage(
  [
    {
      digest: `sha256:${'0'.repeat(64)}`,
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      size: statSync(layer).size,
      open: async () => createReadStream(layer),
    },
  ],
  {},
  outDir,
  {
    id: 'ab'.repeat(32),
    expandDir: scratch,
    conversion: { maxInMemoryNames: Number(maxNames) },
  },
);
console.log(
  JSON.stringify({
    wallMs: Math.round(performance.now() - started),
    entries: result.summary.entries,
    method: result.summary.method,
    nodeMaxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
