// Flatten-only timing (no squashfs build): mergeLayers (memory backend) or flattenLayers (disk backend) of the first
// image of an OCI layout, in one process. Prints { mode, wallMs, userMs, sysMs }; user CPU time is the steadier figure
// on a shared machine. Usage: node <bundle of this file> LAYOUT merge|disk   (scratch under $SCRATCH, default /var/tmp)
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type LayerSource } from '@shifter/core';
import { flattenLayers, mergeLayers } from '@shifter/core/internal';

const [layout, mode] = process.argv.slice(2) as [string, 'merge' | 'disk'];
interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string };
}
const blob = (d: string) => join(layout, 'blobs', ...d.split(':'));
const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
let desc = index.manifests[0] as Descriptor;
if (/index|list/.test(desc.mediaType))
  desc = JSON.parse(readFileSync(blob(desc.digest), 'utf8')).manifests.find(
    (m: Descriptor) => m.platform?.architecture === 'amd64',
  );
const manifest = JSON.parse(readFileSync(blob(desc.digest), 'utf8')) as { layers: Descriptor[] };
const layers: LayerSource[] = manifest.layers.map((l) => ({
  digest: l.digest,
  mediaType: l.mediaType,
  size: l.size,
  open: async () => createReadStream(blob(l.digest), { highWaterMark: 1 << 20 }),
}));
const scratch = mkdtempSync(join(process.env.SCRATCH ?? '/var/tmp', 'shifter-flat-'));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
if (mode === 'merge') {
  const spoolDir = join(scratch, 'spool');
  mkdirSync(spoolDir);
  await mergeLayers(layers, { spoolDir });
} else {
  const root = join(scratch, 'root');
  mkdirSync(root);
  await flattenLayers(root, layers);
}
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
rmSync(scratch, { recursive: true, force: true });
console.log(
  JSON.stringify({
    mode,
    wallMs: Math.round(wall),
    userMs: Math.round(cpu.user / 1000),
    sysMs: Math.round(cpu.system / 1000),
  }),
);
