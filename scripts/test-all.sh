#!/usr/bin/env bash
# THE test command: sets up a fresh Debian 12 machine (as root) and runs every test.
#
#   1. Debian packages, FerretDB and the test users   (scripts/test-harness.sh install)
#   2. npm ci --no-audit --no-fund                     (SHIFTER_TEST_SKIP_NPM_CI=1 skips it on a shared dev tree)
#   3. npm run build                                   (every workspace; a failed build fails the run)
#   4. the harness services and fixtures              (scripts/test-harness.sh start)
#   5. vitest, all projects (unit + integration)       → .state/vitest.json (and vitest-node<version>.json)
#   6. every scripts/test-runners/*.sh                 (last line of each: `N passed, N failed`)
#   7. the same on the newest supported Node line (24): its official binary (cached under /var/cache/shifter-node),
#      a copy of the tree in .state/node24/tree with the native parts built for it, vitest again, and the runners
#      marked `# test-all: every node` (scripts/lib/node-versions.sh)
#   then stops the harness (unless SHIFTER_KEEP_HARNESS=1 or it was already running before this run)
# and prints one line per Node version and then one final line `N passed, N failed[, N skipped]` (both summed);
# exits non-zero when anything failed, vitest failed, or nothing ran. A failed set-up step (install, build, harness) counts as one failed test, so the closing
# line never reads as green while the exit status is not. CI=true is exported: missing services fail, not skip.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=scripts/lib/harness-common.sh
source "$ROOT/scripts/lib/harness-common.sh"
# shellcheck source=scripts/lib/node-versions.sh
source "$ROOT/scripts/lib/node-versions.sh"
export CI=true
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

VITEST_TIMEOUT=${SHIFTER_TEST_VITEST_TIMEOUT:-1800}
RUNNER_TIMEOUT=${SHIFTER_TEST_RUNNER_TIMEOUT:-600}
STATE=$ROOT/.state
mkdir -p "$STATE/logs"

passed=0 failed=0 skipped=0
step_failed() {
  harness_log "FAILED: $*"
  failed=$((failed + 1))
}

harness_was_running=0
if scripts/test-harness.sh status >/dev/null 2>&1; then harness_was_running=1; fi
stop_harness() {
  if [[ ${SHIFTER_KEEP_HARNESS:-0} == 1 || $harness_was_running == 1 ]]; then
    harness_log "leaving the harness services running (stop them with scripts/test-harness.sh stop)"
  else
    scripts/test-harness.sh stop || true
  fi
}
trap 'stop_harness; trap - EXIT' EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || harness_die "run as root: the harness installs packages, creates users and starts munged"
command -v node >/dev/null || harness_die "Node.js 20 is required (node not on PATH)"

started=$SECONDS
harness_log "1/7 installing system packages, FerretDB, test users"
bash scripts/test-harness.sh install || step_failed "scripts/test-harness.sh install"

if [[ ${SHIFTER_TEST_SKIP_NPM_CI:-0} == 1 && -d node_modules ]]; then
  harness_log "2/7 npm ci skipped (SHIFTER_TEST_SKIP_NPM_CI=1)"
else
  harness_log "2/7 npm ci"
  if ! npm ci --no-audit --no-fund; then
    # Nothing can run without dependencies.
    step_failed "npm ci"
    echo "0 passed, $failed failed"
    exit 1
  fi
fi

harness_log "3/7 npm run build"
npm run build || step_failed "npm run build"

harness_log "4/7 starting the test harness"
bash scripts/test-harness.sh start || step_failed "scripts/test-harness.sh start"
if [[ -f $STATE/harness.env ]]; then
  set -a
  # shellcheck source=/dev/null
  source "$STATE/harness.env"
  set +a
fi

# Tallies per Node line, for the labelled summary lines above the closing line.
declare -A line_passed=() line_failed=()
tally() {
  local label=$1 p=$2 f=$3 s=${4:-0}
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  line_passed[$label]=$((${line_passed[$label]:-0} + p))
  line_failed[$label]=$((${line_failed[$label]:-0} + f))
}

# run_vitest LABEL DIR: every vitest project in DIR, on the `node` first on PATH, counted under LABEL.
run_vitest() {
  local label=$1 dir=$2 json="$STATE/vitest-$1.json" rc v_passed v_failed v_skipped
  rm -f "$json"
  (cd "$dir" && timeout --kill-after=30 "$VITEST_TIMEOUT" npx vitest run --reporter=default --reporter=json \
    --outputFile="$json")
  rc=$?
  if [[ -s $json ]]; then
    read -r v_passed v_failed v_skipped < <(node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      console.log(r.numPassedTests, r.numFailedTests, (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0));
    ' "$json") || { v_passed=0 v_failed=0 v_skipped=0; }
    tally "$label" "$v_passed" "$v_failed" "$v_skipped"
    # vitest can fail without a failed test (a suite that does not load, an unhandled error): count it.
    if ((rc != 0 && v_failed == 0)); then step_failed "$label: vitest exited $rc with no failed test"; fi
  else
    step_failed "$label: vitest exited $rc without writing $json"
  fi
  ((rc == 0)) || vitest_rc=$rc
}

# run_runner LABEL DIR RUNNER: one scripts/test-runners/*.sh in DIR, counted under LABEL.
run_runner() {
  local label=$1 dir=$2 runner=$3 name log rc last
  name=$(basename "$runner" .sh)
  log=$STATE/logs/runner-$label-$name.log
  harness_log "$label: runner $name"
  # A runner may ask for more time with a line `# runner-timeout: SECONDS`.
  limit=$(sed -n 's/^# runner-timeout: \([0-9][0-9]*\)$/\1/p' "$runner" | head -n 1)
  (cd "$dir" && timeout --kill-after=30 "${limit:-$RUNNER_TIMEOUT}" bash "$runner") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  last=$(tail -n 1 "$log")
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    tally "$label" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    if ((rc != 0 && BASH_REMATCH[2] == 0)); then step_failed "$label: runner $name exited $rc but reported no failure"; fi
  else
    step_failed "$label: runner $name exited $rc without a closing 'N passed, N failed' line"
  fi
}

vitest_rc=0
shopt -s nullglob
node_label="node$(node -p process.versions.node)"

harness_log "5/7 $node_label: vitest (unit + integration)"
run_vitest "$node_label" "$ROOT"
# The plain name that earlier runs wrote, for tools that read it.
[[ -s $STATE/vitest-$node_label.json ]] && cp "$STATE/vitest-$node_label.json" "$STATE/vitest.json"

harness_log "6/7 $node_label: extra runners (scripts/test-runners/*.sh)"
for runner in scripts/test-runners/*.sh; do
  run_runner "$node_label" "$ROOT" "$runner"
done

# 7. The newest supported Node line runs the suite again, in a copy of the tree whose native parts are built for it
# (scripts/lib/node-versions.sh); runners whose result depends on the Node version say so with a line
# `# test-all: every node` and run again too. SHIFTER_TEST_SECOND_NODE=none skips it (a quick local run only).
second_node=${SHIFTER_TEST_SECOND_NODE:-24}
if [[ $second_node != none && $second_node != "$(node -p 'process.versions.node.split(".")[0]')" ]]; then
  node_started=$SECONDS
  harness_log "7/7 Node $second_node: fetching the official binary, preparing $STATE/node$second_node/tree"
  if node_dist=$(node_fetch "$second_node") &&
    node_tree_prepare "$ROOT" "$node_dist" "$STATE/node$second_node/tree"; then
    second_label="node$("$node_dist/bin/node" -p process.versions.node)"
    harness_log "7/7 $second_label: prepared in $((SECONDS - node_started)) s; vitest (unit + integration)"
    saved_path=$PATH
    export PATH="$node_dist/bin:$PATH" npm_config_nodedir="$node_dist"
    run_vitest "$second_label" "$STATE/node$second_node/tree"
    for runner in scripts/test-runners/*.sh; do
      grep -q '^# test-all: every node' "$runner" || continue
      run_runner "$second_label" "$STATE/node$second_node/tree" "$runner"
    done
    export PATH=$saved_path
    unset npm_config_nodedir
  else
    step_failed "Node $second_node: fetching the binary or building the tree copy for it"
  fi
  harness_log "7/7 Node $second_node: $((SECONDS - node_started)) s in all"
else
  harness_log "7/7 second Node line skipped (SHIFTER_TEST_SECOND_NODE=$second_node)"
fi

stop_harness
trap - EXIT
harness_log "finished in $((SECONDS - started)) s"
for label in $(printf '%s\n' "${!line_passed[@]}" | sort -V); do
  harness_log "$label: ${line_passed[$label]} passed, ${line_failed[$label]} failed"
done
summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary"
((failed == 0 && vitest_rc == 0 && passed > 0))
