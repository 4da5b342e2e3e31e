#!/usr/bin/env bash
# Run every benchmark against the test harness (which it starts if needed), one after the other, so they do not
# disturb each other. Not part of CI. Each benchmark prints its ratios against the peer tools measured in the same
# run; bench/RESULTS.md records them. Needs root (page-cache drops, setuid runtime, test users).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run() { echo "=== $*"; bash scripts/test-harness.sh run "$@"; }
run bash bench/pull-convert/run.sh
run bash bench/convert/run.sh
run bash bench/gateway/run.sh
run node bench/cli/lookup-cold.mjs --runs 30
run bash bench/runtime/run.sh 100
run bash bench/slurm/run.sh 20
run bash bench/munge/run.sh
run bash bench/metadata/run.sh
