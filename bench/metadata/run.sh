#!/usr/bin/env bash
# Metadata store operation rates, SQLite vs the MongoDB store on FerretDB (see store-ops.ts).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec node --import tsx --conditions=@shifter/source bench/metadata/store-ops.ts "${SHIFTER_TEST_MONGO_URL:-mongodb://127.0.0.1:27017/}" "${1:-2000}"
