#!/usr/bin/env bash
# Run the Shifter Image Gateway on this machine, embedded mode: SQLite metadata, in-process job queue, munged for
# authentication, and one demo system ("demo") writing images into a local directory.
#
#   scripts/run-gateway.sh [--config FILE] [--host HOST] [--port PORT]
#
# On a fresh Debian machine (as root) it installs what is missing (munge, squashfs tools, Node dependencies),
# creates a munge key and starts munged if needed, builds the packages, writes a demo config (unless --config is
# given) and runs `shifter-gateway serve` in the foreground (Ctrl-C stops it).
#
# Environment knobs:
#   SHIFTER_DEMO_DIR        state directory of the demo (default /var/lib/shifter-demo): gateway.db, images/, cache/
#   SHIFTER_DEMO_REGISTRY   an extra registry host:port reachable over plain HTTP (e.g. 127.0.0.1:5000); it becomes
#                           location "local", so `local/test/busybox:latest` pulls from it. Docker Hub stays the default.
#   SHIFTER_DEMO_PLATFORM   target platform of the demo system (default linux/amd64)
# Try it:  curl -s -X POST -H "authentication: $(munge -n)" http://127.0.0.1:8000/api/pull/demo/docker/alpine:3.20/
# docs/gateway.md explains the rest.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_DIR=${SHIFTER_DEMO_DIR:-/var/lib/shifter-demo}
CONFIG=''
HOST=127.0.0.1
PORT=8000
while (($# > 0)); do
  case $1 in
    --config) CONFIG=$2; shift 2 ;;
    --host) HOST=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run-gateway.sh: unknown argument $1" >&2; exit 64 ;;
  esac
done

log() { printf 'run-gateway: %s\n' "$*" >&2; }

install_packages() {
  local wanted=(munge squashfs-tools squashfs-tools-ng openssh-client ca-certificates) missing=() pkg
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  command -v node >/dev/null || missing+=(nodejs npm)
  if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -ne 0 ]]; then log "missing packages ${missing[*]}: run as root or install them"; exit 69; fi
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

start_munged() {
  local socket=/run/munge/munge.socket.2
  if [[ -S $socket ]] && munge -n >/dev/null 2>&1; then return; fi
  if [[ $(id -u) -ne 0 ]]; then log "munged is not running and starting it needs root"; exit 69; fi
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating a munge key"
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key; else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n >/dev/null 2>&1 && return; sleep 0.1; done
  log "munged did not come up"; exit 69
}

build() {
  cd "$ROOT"
  if [[ ! -d node_modules/fastify ]]; then log "installing Node dependencies"; npm install --no-audit --no-fund; fi
  log "building @shifter/core and @shifter/gateway"
  npm run build --silent -w @shifter/core -w @shifter/gateway
}

write_demo_config() {
  install -d -m 0755 "$DEMO_DIR" "$DEMO_DIR/images"
  install -d -m 0700 "$DEMO_DIR/cache" "$DEMO_DIR/expand"
  CONFIG=$DEMO_DIR/gateway.json
  local registries='{}'
  if [[ -n ${SHIFTER_DEMO_REGISTRY:-} ]]; then
    registries="{\"local\": {\"url\": \"http://${SHIFTER_DEMO_REGISTRY}\", \"insecure\": true}}"
  fi
  cat >"$CONFIG.tmp" <<JSON
{
  "gateway": { "host": "$HOST", "port": $PORT },
  "storage": { "cacheDir": "$DEMO_DIR/cache", "expandDir": "$DEMO_DIR/expand" },
  "metadata": { "kind": "sqlite", "path": "$DEMO_DIR/gateway.db" },
  "queue": { "kind": "in-process", "concurrency": 2 },
  "systems": {
    "demo": {
      "transfer": { "kind": "local", "imageDir": "$DEMO_DIR/images" },
      "platform": "${SHIFTER_DEMO_PLATFORM:-linux/amd64}",
      "admins": ["root"]
    }
  },
  "registries": $registries,
  "importUsers": "all",
  "metrics": true
}
JSON
  mv "$CONFIG.tmp" "$CONFIG"
  log "demo config: $CONFIG (system demo → $DEMO_DIR/images)"
}

install_packages
start_munged
build
[[ -n $CONFIG ]] || write_demo_config
log "serving on http://$HOST:$PORT (status: /api/status, API docs: /api/docs)"
exec node "$ROOT/packages/gateway/bin/shifter-gateway.js" serve --config "$CONFIG" --host "$HOST" --port "$PORT"
