#!/usr/bin/env bash
# Typecheck every workspace (strict tsc, no emit), the examples included, and build the API reference with
# typedoc (its warnings about missing TSDoc fail the check). One test per project.
# Last line: "N passed, N failed".
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root" || exit 1
passed=0
failed=0
check() {
  local name=$1
  shift
  if out="$("$@" 2>&1)"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    echo "$out" | head -40
    failed=$((failed + 1))
  fi
}
for project in packages/core packages/gateway packages/cli packages/udiroot-native examples; do
  check "tsc $project" npx tsc -p "$project/tsconfig.json" --noEmit
done
docs_out="$(mktemp -d)"
check "typedoc @shifter/core" npx typedoc --out "$docs_out" --treatWarningsAsErrors
rm -rf "$docs_out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
