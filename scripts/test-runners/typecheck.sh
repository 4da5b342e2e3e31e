#!/usr/bin/env bash
# Typecheck every workspace (strict tsc, no emit), the examples included, and build the API reference with
# typedoc (its warnings about missing TSDoc fail the check). One test per project.
# Last line: "N passed, N failed".
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root" || exit 1
CHECK_OUTPUT_LINES=40 CHECK_OUTPUT_END=head
# shellcheck source=scripts/lib/runner-check.sh
source "$root/scripts/lib/runner-check.sh"
for project in packages/core packages/gateway packages/cli packages/udiroot-native examples; do
  check "tsc $project" npx tsc -p "$project/tsconfig.json" --noEmit
done
docs_out="$(mktemp -d)"
check "typedoc @shifter/core" npx typedoc --out "$docs_out" --treatWarningsAsErrors
rm -rf "$docs_out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
