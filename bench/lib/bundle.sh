#!/usr/bin/env bash
# bench/lib/bundle.sh ENTRY.ts OUT.mjs — bundle a benchmark driver as ONE ES module (esbuild, shipped with tsx), as a
# production build would: running through tsx would add TypeScript compilation to the time and memory measured.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$ROOT/node_modules/.bin/esbuild" "$1" --bundle --platform=node --format=esm --target=node20 \
  --conditions=@shifter/source --outfile="$2" --log-level=warning \
  --external:better-sqlite3 --external:mongodb --external:ioredis --external:bullmq \
  --banner:js="import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);"
