#!/usr/bin/env bash
# Slurm plugin cost (see bench-slurm.ts). Run as root from the repository root after `scripts/test-harness.sh start`:
#   bash bench/slurm/run.sh [runs-per-variant]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=/dev/null
if [[ -f .state/harness.env ]]; then set -a; . .state/harness.env; set +a; fi
exec node --import tsx --conditions=@shifter/source bench/slurm/bench-slurm.ts "${1:-20}"
