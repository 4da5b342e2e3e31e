# shellcheck shell=bash
# The counting `check` of the test runners (scripts/test-runners/*.sh), sourced by them.
#   check NAME CMD…   runs CMD, prints "ok   NAME" or "FAIL NAME" and CMD's output (the first or last
#                     $CHECK_OUTPUT_LINES lines: "head" or "tail" by $CHECK_OUTPUT_END), counts into passed/failed.
# A runner ends with `echo "$passed passed, $failed failed"`, the line scripts/test-all.sh reads.
passed=0
failed=0
CHECK_OUTPUT_LINES=${CHECK_OUTPUT_LINES:-40}
CHECK_OUTPUT_END=${CHECK_OUTPUT_END:-head}
check() {
  local name=$1 out
  shift
  if out="$("$@" 2>&1)"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    echo "$out" | "$CHECK_OUTPUT_END" -n "$CHECK_OUTPUT_LINES"
    failed=$((failed + 1))
  fi
}
