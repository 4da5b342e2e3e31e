// Upstream's way of checking credentials, for comparison only: one `unmunge` process per request.
import { spawn } from 'node:child_process';
import { AuthError, type MungeIdentity, type MungeVerifier } from '@shifter/core';

export function createUnmungeVerifier(socketPath: string): MungeVerifier {
  return {
    socketPath,
    verify(credential) {
      return new Promise<MungeIdentity>((resolve, reject) => {
        const child = spawn('unmunge', ['--socket', socketPath], { stdio: ['pipe', 'pipe', 'ignore'] });
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.on('error', reject);
        child.on('close', (code) => {
          if (code === 15) return reject(new AuthError('SHIFTER_AUTH_EXPIRED'));
          if (code === 17) return reject(new AuthError('SHIFTER_AUTH_REPLAYED'));
          if (code !== 0) return reject(new AuthError('SHIFTER_AUTH_INVALID'));
          const payload = out.split('\n\n').slice(1).join('\n\n');
          let authorizedLocations = null;
          try {
            authorizedLocations = JSON.parse(payload).authorized_locations ?? null;
          } catch {}
          const uid = Number(/^UID:.*\((\d+)\)/m.exec(out)?.[1]);
          const gid = Number(/^GID:.*\((\d+)\)/m.exec(out)?.[1]);
          const now = Math.floor(Date.now() / 1000);
          resolve({ uid, gid, payload, encodeTime: now, decodeTime: now, authorizedLocations });
        });
        child.stdin.end(credential);
      });
    },
  };
}
