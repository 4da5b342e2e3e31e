#!/usr/bin/env bash
# The README's first command, run on a fresh clone exactly as written (root, harness running): the command is taken
# from the README's first ```sh block, run in a `git clone` of this checkout's HEAD (so it installs the npm
# dependencies and builds by itself), pointed at the test registry with SHIFTER_DEMO_REGISTRY and kept out of the
# machine's own paths with its SHIFTER_DEMO_* knobs. It must end with a container run by the unprivileged test user
# from an image pulled through the gateway; then the stop line it printed must stop the gateway.
#
# The clone's `npm ci` compiles better-sqlite3 from source (1-2 min on an idle 2-core machine, 9 min under load 13).
# runner-timeout: 1500
# Last line: "N passed, N failed".
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
finish() { echo "$passed passed, $failed failed"; exit $((failed > 0)); }

for var in SHIFTER_TEST_REGISTRY SHIFTER_TEST_USER; do
  [[ -n ${!var:-} ]] || { not_ok "harness variable $var is not set"; finish; }
done
[[ $(id -u) == 0 ]] || { not_ok "must run as root"; finish; }

# The first command of "## The two commands".
first=$(awk '/^## The two commands/{s=1} s && /^```sh/{getline; print; exit}' "$ROOT/README.md")
check "the README's first command is found" test -n "$first"

T=$(mktemp -d /var/lib/shifter-readme-test.XXXXXX)
chmod 0755 "$T"
cleanup() {
  [[ ! -s $T/state/gateway.pid ]] || kill -TERM "$(<"$T/state/gateway.pid")" 2>/dev/null
  [[ ! -x $T/prefix/sbin/unsetupRoot ]] || "$T/prefix/sbin/unsetupRoot" >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT

if git -C "$ROOT" rev-parse HEAD >/dev/null 2>&1; then
  git clone --quiet --no-hardlinks "$ROOT" "$T/clone"
fi
check "a fresh clone of HEAD" test -f "$T/clone/README.md"

port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
started=$SECONDS
(
  cd "$T/clone" &&
    env SHIFTER_DEMO_REGISTRY="$SHIFTER_TEST_REGISTRY" SHIFTER_DEMO_IMAGE=test/busybox:latest \
      SHIFTER_DEMO_USER="$SHIFTER_TEST_USER" SHIFTER_DEMO_DIR="$T/state" SHIFTER_DEMO_PREFIX="$T/prefix" \
      SHIFTER_DEMO_SYSCONFDIR="$T/etc" SHIFTER_DEMO_PORT="$port" bash -c "$first"
) >"$T/out.log" 2>"$T/err.log"
rc=$?
echo "# the first command took $((SECONDS - started)) s"
[[ $rc == 0 ]] || { tail -n 30 "$T/err.log"; cat "$T/out.log"; }
check "\`$first\` exits 0" test "$rc" = 0
uid=$(id -u "$SHIFTER_TEST_USER")
check "it ran a container as $SHIFTER_TEST_USER (uid $uid) from the pulled image" \
  grep -Eq "^hello from .* as $SHIFTER_TEST_USER \\(uid $uid\\) in image [0-9a-f]{64}$" "$T/out.log"
check "it pulled through the gateway (READY)" grep -q 'status: READY' "$T/err.log"
check "it prints the next commands" grep -q "shifterimg pull test/busybox:latest" "$T/out.log"
check "it names the gateway's pid and log files" grep -q "Gateway: pid [0-9]* in $T/state/gateway.pid, log $T/state/gateway.log" "$T/out.log"
pid=$(cat "$T/state/gateway.pid" 2>/dev/null)
check "the gateway runs in the background" kill -0 "${pid:-0}"
stop=$(sed -n 's/^Stop it: *//p' "$T/out.log")
(cd / && bash -c "$stop") >/dev/null 2>&1
for _ in $(seq 100); do kill -0 "${pid:-0}" 2>/dev/null || break; sleep 0.1; done
check "the printed stop line stops it" test -n "$stop" -a ! -e "/proc/${pid:-0}"
finish
