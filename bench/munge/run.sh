#!/usr/bin/env bash
# Munge decode throughput: in-process binding vs one unmunge process per credential (see decode-rate.ts).
set -euo pipefail
cd "$(dirname "$0")/../.."
npm run build:native -w @shifter/core >/dev/null 2>&1
exec node --import tsx --conditions=@shifter/source bench/munge/decode-rate.ts "${SHIFTER_TEST_MUNGE_SOCKET:-/run/munge/munge.socket.2}" "${1:-8000}"
