#!/usr/bin/env bash
# `npm run format`: Prettier on the TypeScript and JavaScript (.prettierrc.json), clang-format on the C (.clang-format;
# packages/core/native keeps its 2-space indent). `npm run format:check` (--check) changes nothing and fails when a
# file is not formatted; scripts/test-runners/lint.sh runs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
check=0
[[ ${1:-} == --check ]] && check=1
mapfile -t c_files < <(git ls-files --cached --others --exclude-standard -- '*.c' '*.h')
if ((check)); then
  status=0
  npx prettier --check --log-level warn '**/*.{ts,mts,cts,js,mjs,cjs}' || status=1
  clang-format --dry-run --Werror "${c_files[@]}" || status=1
  exit $status
fi
# Twice: on a few long member chains Prettier's first pass is not yet its own fixed point.
for _ in 1 2; do npx prettier --write --log-level warn '**/*.{ts,mts,cts,js,mjs,cjs}'; done
clang-format -i "${c_files[@]}"
