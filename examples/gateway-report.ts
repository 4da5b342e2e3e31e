/**
 * A site script: report the images a gateway serves for one system, as the calling user sees them, with the ones
 * that have not been used for a while first (candidates for `shifterimg expire`).
 *
 *   npx tsx examples/gateway-report.ts http://gateway:8000 SYSTEM [MUNGE_SOCKET]
 *
 * Each request carries a fresh munge credential made in-process by @shifter/core's libmunge binding (munged's socket
 * defaults to /run/munge/munge.socket.2). On failure it prints `CODE: message` and exits with the catalogue's exit
 * code, like every Shifter tool. For an `https://` gateway signed by a site CA, set SHIFTER_GATEWAY_CA to the same
 * file or hashed directory as `gatewayCaPath` in udiRoot.conf; it then replaces Node's default CAs.
 */
import { GatewayClient, ShifterError, mungeEncode, readTrustAnchors, toShifterError } from '@shifter/core';

async function main(argv: string[]): Promise<number> {
  const [url, system, socketPath = '/run/munge/munge.socket.2'] = argv;
  if (!url || !system) {
    console.error('usage: gateway-report.ts GATEWAY_URL SYSTEM [MUNGE_SOCKET]');
    return 64;
  }
  const caPath = process.env.SHIFTER_GATEWAY_CA;
  const client = new GatewayClient({
    urls: [url],
    system,
    timeoutMs: 10_000,
    ...(caPath ? { ca: await readTrustAnchors(caPath) } : {}),
    authenticate: (payload) => mungeEncode(payload, { socketPath }),
  });
  const images = await client.list();
  const byLastPull = [...images].sort((a, b) => Number(a.last_pull) - Number(b.last_pull));
  for (const image of byLastPull) {
    const when = new Date(Number(image.last_pull) * 1000).toISOString();
    const tags = Array.isArray(image.tag) ? image.tag.join(',') : String(image.tag);
    console.log(`${when}  ${String(image.id).slice(0, 12)}  ${image.itype}:${tags}`);
  }
  console.log(`${images.length} image(s) on ${system}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const failure = ShifterError.isInstance(error) ? error : toShifterError(error);
    console.error(`${failure.code}: ${failure.message}`);
    process.exit(failure.exitCode);
  },
);
