#!/usr/bin/env bash
# THE test command: sets up a fresh Debian 12 machine (as root) and runs every test.
#
#   1. Debian packages, FerretDB and the test users   (scripts/test-harness.sh install)
#   2. npm ci --no-audit --no-fund                     (SHIFTER_TEST_SKIP_NPM_CI=1 skips it on a shared dev tree)
#   3. npm run build                                   (every workspace; a failed build fails the run)
#   4. the harness services and fixtures              (scripts/test-harness.sh start)
#   5. vitest, all projects (unit + integration)       → .state/vitest.json
#   6. every scripts/test-runners/*.sh                 (last line of each: `N passed, N failed`)
#   7. stops the harness (unless SHIFTER_KEEP_HARNESS=1 or it was already running before this run)
# and prints one final line `N passed, N failed[, N skipped]`; exits non-zero when anything failed, vitest
# failed, or nothing ran. A failed set-up step (install, build, harness) counts as one failed test, so the closing
# line never reads as green while the exit status is not. CI=true is exported: missing services fail, not skip.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
# shellcheck source=scripts/lib/harness-common.sh
source "$ROOT/scripts/lib/harness-common.sh"
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
harness_log "1/6 installing system packages, FerretDB, test users"
bash scripts/test-harness.sh install || step_failed "scripts/test-harness.sh install"

if [[ ${SHIFTER_TEST_SKIP_NPM_CI:-0} == 1 && -d node_modules ]]; then
  harness_log "2/6 npm ci skipped (SHIFTER_TEST_SKIP_NPM_CI=1)"
else
  harness_log "2/6 npm ci"
  if ! npm ci --no-audit --no-fund; then
    # Nothing can run without dependencies.
    step_failed "npm ci"
    echo "0 passed, $failed failed"
    exit 1
  fi
fi

harness_log "3/6 npm run build"
npm run build || step_failed "npm run build"

harness_log "4/6 starting the test harness"
bash scripts/test-harness.sh start || step_failed "scripts/test-harness.sh start"
if [[ -f $STATE/harness.env ]]; then
  set -a
  # shellcheck source=/dev/null
  source "$STATE/harness.env"
  set +a
fi

harness_log "5/6 vitest (unit + integration)"
rm -f "$STATE/vitest.json"
timeout --kill-after=30 "$VITEST_TIMEOUT" npx vitest run --reporter=default --reporter=json \
  --outputFile="$STATE/vitest.json"
vitest_rc=$?
if [[ -s $STATE/vitest.json ]]; then
  read -r v_passed v_failed v_skipped < <(node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(r.numPassedTests, r.numFailedTests, (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0));
  ' "$STATE/vitest.json") || { v_passed=0 v_failed=0 v_skipped=0; }
  passed=$((passed + v_passed))
  failed=$((failed + v_failed))
  skipped=$((skipped + v_skipped))
  # vitest can fail without a failed test (a suite that does not load, an unhandled error): count it.
  if ((vitest_rc != 0 && v_failed == 0)); then step_failed "vitest exited $vitest_rc with no failed test"; fi
else
  step_failed "vitest exited $vitest_rc without writing $STATE/vitest.json"
fi

harness_log "6/6 extra runners (scripts/test-runners/*.sh)"
shopt -s nullglob
for runner in scripts/test-runners/*.sh; do
  name=$(basename "$runner" .sh)
  log=$STATE/logs/runner-$name.log
  harness_log "runner $name"
  # A runner may ask for more time with a line `# runner-timeout: SECONDS`.
  limit=$(sed -n 's/^# runner-timeout: \([0-9][0-9]*\)$/\1/p' "$runner" | head -n 1)
  timeout --kill-after=30 "${limit:-$RUNNER_TIMEOUT}" bash "$runner" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  last=$(tail -n 1 "$log")
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    if ((rc != 0 && BASH_REMATCH[2] == 0)); then step_failed "runner $name exited $rc but reported no failure"; fi
  else
    step_failed "runner $name exited $rc without a closing 'N passed, N failed' line"
  fi
done

stop_harness
trap - EXIT
harness_log "finished in $((SECONDS - started)) s"
summary="$passed passed, $failed failed"
((skipped == 0)) || summary+=", $skipped skipped"
echo "$summary"
((failed == 0 && vitest_rc == 0 && passed > 0))
