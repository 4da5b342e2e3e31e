#!/usr/bin/env bash
# Build the udiRoot runtime and run its C unit tests (pure functions: volume maps, image descriptors, .meta,
# udiRoot.conf, environment, entrypoint/cmd, in-root path resolution, gateway-lookup helpers).
# The root-only integration tests (real setuid binary, real test user, loop mounts) are vitest files under
# packages/udiroot-native/test/integration/ and run with the integration project.
# Last line: "N passed, N failed".
set -u
here="$(cd "$(dirname "$0")/../.." && pwd)"
native="$here/packages/udiroot-native/native"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
if ! make -s -C "$native" BUILD="$build" all "$build/unit-tests" >"$build/make.log" 2>&1; then
  cat "$build/make.log"
  echo "build of the udiRoot runtime failed"
  echo "0 passed, 1 failed"
  exit 1
fi
out="$("$build/unit-tests")"
status=$?
echo "$out"
if ! tail -n1 <<<"$out" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
  echo "0 passed, 1 failed"
  exit 1
fi
exit $status
