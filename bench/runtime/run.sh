#!/usr/bin/env bash
# Runtime start-up benchmark (see bench-runtime.ts). Run as root from the repository root after
# `scripts/test-harness.sh start`:  bash bench/runtime/run.sh [runs-per-variant]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null  # written by scripts/test-harness.sh start
if [[ -f .state/harness.env ]]; then set -a; . .state/harness.env; set +a; fi
exec node --import tsx --conditions=@shifter/source bench/runtime/bench-runtime.ts "${1:-100}"
