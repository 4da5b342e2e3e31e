#!/usr/bin/env bash
# The contributor's checks, one test each: ESLint with type information (eslint.config.js), the formatting of the
# TypeScript/JavaScript (Prettier) and of the C (clang-format) — `npm run format` fixes both —, cppcheck and GCC's
# static analyzer on the C, shellcheck on every shell script. Run alone: `bash scripts/test-runners/lint.sh`.
# Last line: "N passed, N failed".
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root" || exit 1
CHECK_OUTPUT_LINES=60 CHECK_OUTPUT_END=head
# shellcheck source=scripts/lib/runner-check.sh
source "$root/scripts/lib/runner-check.sh"
native=packages/udiroot-native/native
mapfile -t udiroot_c < <(git ls-files -- "$native/src/*.c" "$native/tests/*.c")
mapfile -t shell_scripts < <(git ls-files -- '*.sh')
# The runtime's C as the Makefile compiles it (CONFIG_FILE is a build-time define); the munge addon with the Node
# headers it is built against.
cflags=(-std=gnu11 "-DCONFIG_FILE=\"/etc/shifter/udiRoot.conf\"" -I"$native/src")
node_include=${npm_config_nodedir:-/usr}/include/node

analyze() {
  local file status=0
  for file in "${udiroot_c[@]}"; do
    # The runtime's memory policy (udi_misc.c): short-lived processes free nothing, so leaks are not findings.
    gcc "${cflags[@]}" -fanalyzer -Wno-analyzer-malloc-leak -Werror -c -o /dev/null "$file" || status=1
  done
  gcc -std=gnu11 -I"$node_include" -fanalyzer -Werror -c -o /dev/null packages/core/native/munge.c || status=1
  return $status
}

check "eslint (type-aware)" npx eslint --max-warnings 0 .
check "format (prettier + clang-format; npm run format fixes it)" bash scripts/format.sh --check
check "cppcheck" cppcheck --enable=warning,portability,performance --std=c11 --inline-suppr --error-exitcode=1 --quiet \
  --suppress=missingIncludeSystem -DUDI_STATIC_ANALYSIS "${cflags[@]:1}" "$native/src" "$native/tests" packages/core/native/munge.c
check "gcc -fanalyzer" analyze
check "shellcheck" shellcheck "${shell_scripts[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
