#!/usr/bin/env bash
# test-all: every node
# The publishable @shifter/* packages as a user gets them, one test each:
#   - the API report of @shifter/core (docs/decisions/shifter-core.api.md, API Extractor) matches the built types:
#     a change of the public surface fails here until `npm run api:update` records it in the report;
#   - `npm pack` of every publishable workspace, checked with publint and are-the-types-wrong;
#   - the tarballs installed together into a scratch project outside the repository, each package imported there on
#     the Node that runs this script, and the command-line tools started (`--help`).
# Needs the workspaces built (`npm run build`, step 3 of scripts/test-all.sh). Last line: "N passed, N failed".
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root" || exit 1
CHECK_OUTPUT_LINES=40 CHECK_OUTPUT_END=tail
# shellcheck source=scripts/lib/runner-check.sh
source "$root/scripts/lib/runner-check.sh"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# name → workspace folder, for every package that is not "private".
declare -A workspace=([@shifter/core]=packages/core [@shifter/gateway]=packages/gateway [@shifter/cli]=packages/cli
  [@shifter/udiroot]=packages/udiroot-native)
order=(@shifter/core @shifter/gateway @shifter/cli @shifter/udiroot)

check "API report of @shifter/core is current (npm run api:update)" \
  npx api-extractor run --config packages/core/api-extractor.json

tarball() { # package name → tarball path in $scratch
  local name=${1#@}
  printf '%s/%s-%s.tgz' "$scratch" "${name/\//-}" "$(node -p "require('./${workspace[$1]}/package.json').version")"
}
pack_all() {
  local args=() name
  for name in "${order[@]}"; do args+=(-w "$name"); done
  npm pack --silent --pack-destination "$scratch" "${args[@]}" >/dev/null || return 1
  for name in "${order[@]}"; do [[ -s $(tarball "$name") ]] || return 1; done
}
check "npm pack of ${order[*]}" pack_all

for name in "${order[@]}"; do
  check "publint $name" npx publint run "$(tarball "$name")" --strict
  # ESM-only packages: the CommonJS and node10 resolutions are not offered, so not judged.
  check "are-the-types-wrong $name" npx attw "$(tarball "$name")" --profile esm-only
done

install_all() {
  local project=$scratch/project tarballs=() name
  mkdir -p "$project" || return 1
  printf '{ "name": "shifter-pack-check", "private": true, "type": "module" }\n' >"$project/package.json"
  for name in "${order[@]}"; do tarballs+=("$(tarball "$name")"); done
  # Install scripts are skipped: the imports below open no database, so better-sqlite3 needs no build here (its
  # build is exercised by the repository's own install).
  (cd "$project" && npm install --silent --no-audit --no-fund --prefer-offline --ignore-scripts --no-package-lock \
    "${tarballs[@]}")
}
check "install the tarballs into a scratch project" install_all

import_in_project() { # package specifier, expected export
  # shellcheck disable=SC2016 # the script is JavaScript: its ${...} are template literals
  (cd "$scratch/project" && node --input-type=module -e '
    const [specifier, name] = process.argv.slice(1);
    const module = await import(specifier);
    if (!(name in module)) throw new Error(`${specifier} does not export ${name}`);
    const where = import.meta.resolve(specifier);
    if (!where.includes("/node_modules/")) throw new Error(`${specifier} resolved outside node_modules: ${where}`);
    console.log(`${specifier}: ${Object.keys(module).length} exports on Node ${process.versions.node}`);
  ' "$1" "$2")
}
check "import @shifter/core" import_in_project @shifter/core pullImage
check "import @shifter/core/internal" import_in_project @shifter/core/internal applyLayer
check "import @shifter/gateway" import_in_project @shifter/gateway buildApp
check "import @shifter/cli" import_in_project @shifter/cli COMMANDS
check "import @shifter/udiroot" import_in_project @shifter/udiroot runShifter
check "shifterimg --help from the installed package" bash -c "cd '$scratch/project' && ./node_modules/.bin/shifterimg --help"
check "shifter-gateway --help from the installed package" \
  bash -c "cd '$scratch/project' && ./node_modules/.bin/shifter-gateway --help"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
