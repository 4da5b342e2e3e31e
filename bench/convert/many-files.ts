// Memory probe for huge layers: flatten one generated layer of N small files (streamed, never held in memory) and
// print the Node process's peak RSS. Usage: tsx bench/convert/many-files.ts [N=300000] [SCRATCH=/var/tmp]
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { applyLayer } from '@shifter/core/internal';

const count = Number(process.argv[2] ?? 300_000);
const scratch = mkdtempSync(join(process.argv[3] ?? '/var/tmp', 'shifter-many-'));
const root = join(scratch, 'rootfs');
mkdirSync(root);
const tar = pack();
const body = Buffer.alloc(100, 'x');
void (async () => {
  for (let i = 0; i < count; i++) {
    // A long-ish path, like node_modules trees.
    const name = `usr/lib/node_modules/pkg${Math.floor(i / 1000)}/lib/deeply/nested/module-${i}.js`;
    await new Promise<void>((resolve, reject) =>
      tar.entry({ name, size: body.length, mode: 0o644 }, body, (e) => (e ? reject(e) : resolve())),
    );
  }
  tar.finalize();
})();
const started = performance.now();
const summary = await applyLayer(root, tar as unknown as Readable, { layer: 'generated', maxEntries: count + 1 });
console.log(
  JSON.stringify({
    files: summary.entries,
    seconds: ((performance.now() - started) / 1000).toFixed(1),
    maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    heapUsedMB: Math.round(process.memoryUsage().heapUsed / 1048576),
  }),
);
rmSync(scratch, { recursive: true, force: true });
