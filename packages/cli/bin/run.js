#!/usr/bin/env node
// Production entry. `shifterimg lookup IMAGE` runs on every job start, so plain lookups are answered by the small
// oclif-free bundle dist/fast-lookup.js; everything else (and any lookup it does not understand, such as --help)
// goes to the full CLI in dist/index.js.
const argv = process.argv.slice(2);
if (argv[0] === 'lookup') {
  // Start making the request's munge credential now, so munge runs while the bundle and udiRoot.conf load.
  // The socket comes from the environment (SHIFTER_MUNGE_SOCKET), never from the configuration, so it is known here.
  const { spawn } = await import('node:child_process');
  const credential = makeCredential(spawn, process.env.SHIFTER_MUNGE_SOCKET);
  const { runFastLookup } = await import('../dist/fast-lookup.js');
  const prefetched = credential.then(unwrap);
  prefetched.catch(() => undefined); // handled by the fast path, or unused when the full CLI takes over
  const code = await runFastLookup(argv, { credential: prefetched });
  if (code !== undefined) {
    process.exitCode = code;
  } else {
    await runFull();
  }
} else {
  await runFull();
}

async function runFull() {
  const { execute } = await import('../dist/index.js');
  await execute({ dir: import.meta.url });
}

// Resolves to { credential } or { error }; never rejects, so an unused failure is not an unhandled rejection. The
// fast path turns an error into the same SHIFTER_AUTH_UNAVAILABLE report it would make itself.
function makeCredential(spawn, socket) {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn('munge', socket ? ['-S', socket] : [], { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ error });
      return;
    }
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (err += chunk));
    child.on('error', (error) => resolve({ error }));
    child.on('close', (code) => resolve(code === 0 && out.startsWith('MUNGE:') ? { credential: out.trim() } : { error: new Error(err.trim() || `munge exit status ${code}`) }));
    child.stdin.on('error', () => undefined);
    child.stdin.end('');
  });
}

function unwrap(result) {
  if (result.credential) return result.credential;
  throw result.error;
}
