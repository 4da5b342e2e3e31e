// Wall time of 50 concurrent pulls of one tag against a running gateway: `pulls.ts URL SYSTEM TAG N`.
// Each request carries its own fresh credential (made with `munge -n` ahead of each wave). Prints JSON.
import { execFileSync } from 'node:child_process';

const [url, system, tag, count = '50'] = process.argv.slice(2);
const n = Number(count);
const credentials = (k: number) => Array.from({ length: k }, () => execFileSync('munge', ['-n']).toString().trim());
const path = `${url}/api/pull/${system}/docker/${encodeURIComponent(tag!)}/`;
const post = async (credential: string) => {
  const response = await fetch(path, { method: 'POST', headers: { authentication: credential } });
  return (await response.json()) as { status: string; id: string };
};
let wave = credentials(n);
const started = performance.now();
const first = await Promise.all(wave.map(post));
const distinctFirst = new Set(first.map((answer) => answer.status)).size;
let status = first[0]!.status;
let polls = 0;
while (!['READY', 'FAILURE'].includes(status)) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  wave = credentials(1);
  status = (await post(wave[0]!)).status;
  polls++;
}
const wallMs = performance.now() - started;
process.stdout.write(
  `${JSON.stringify({ requests: n, status, wallMs: Math.round(wallMs), polls, distinctFirstStates: distinctFirst })}\n`,
);
