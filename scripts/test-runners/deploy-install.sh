#!/usr/bin/env bash
# The installs of docs/install.md and the systemd units, end to end (root, harness running, `npm run build` done):
#
#   1. deploy/install.sh gateway, login and compute, each into its own scratch prefix and configuration directory;
#      every installed file is owned by root, with the modes the runtime checks (shifter 4755, udiRoot.conf 0644)
#   2. `systemd-analyze verify` of the installed shifter-gateway.service and shifter-worker@cluster.service
#   3. serve and worker@cluster started the way the units start them (scripts/lib/run-unit.sh: the unit's user,
#      ExecStart, environment, and a read-only file system outside ReadWritePaths in a mount namespace), on the
#      harness's MongoDB-protocol server and Redis (distributed mode)
#   4. the login node's shifterimg (the one-file bundle) pulls a test-registry image as the unprivileged test user,
#      munge-authenticated; the image reaches READY and lands in the image directory, owned by the service user,
#      0644
#   5. the image runs as the unprivileged test user with the login node's and the compute node's `shifter`
#
# Last line: "N passed, N failed".
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
finish() { echo "$passed passed, $failed failed"; exit $((failed > 0)); }

for var in SHIFTER_TEST_REGISTRY SHIFTER_TEST_MONGO_URL SHIFTER_TEST_REDIS_URL SHIFTER_TEST_MUNGE_SOCKET SHIFTER_TEST_USER; do
  if [[ -z ${!var:-} ]]; then
    not_ok "harness variable $var is not set (run under scripts/test-harness.sh run, or after test-harness.sh start)"
    finish
  fi
done
[[ $(id -u) == 0 ]] || { not_ok "must run as root"; finish; }
command -v systemd-analyze >/dev/null || { not_ok "systemd-analyze is missing (package systemd; scripts/test-harness.sh install)"; finish; }

# Not under /tmp or /var/tmp: the units' PrivateTmp hides those from the services.
S=$(mktemp -d /var/lib/shifter-deploy-test.XXXXXX)
chmod 0755 "$S"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for prefix in "$S/login" "$S/compute"; do
    [[ ! -x $prefix/sbin/unsetupRoot ]] || "$prefix/sbin/unsetupRoot" >/dev/null 2>&1 || true
  done
  # Leftover container mounts of this test, then the scratch tree.
  grep -o " $S/[^ ]*" /proc/self/mountinfo | sort -r | while read -r mp; do umount -l "$mp" 2>/dev/null; done
  rm -rf "$S"
}
trap cleanup EXIT

USER_T=$SHIFTER_TEST_USER
SERVICE_USER=shifter
PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
URL=http://127.0.0.1:$PORT
IMAGES=$S/images
TAG=$SHIFTER_TEST_REGISTRY/test/busybox:latest

# 1. installs ----------------------------------------------------------------------------------------------------
install_ok=1
bash "$ROOT/deploy/install.sh" gateway --prefix "$S/gw" --sysconfdir "$S/gw/etc" --state-dir "$S/state" \
  --cache-dir "$S/cache" --image-dir "$IMAGES" --unit-dir "$S/units" --system cluster --user "$SERVICE_USER" \
  >"$S/install-gateway.log" 2>&1 || { cat "$S/install-gateway.log"; install_ok=0; }
check "install gateway into a scratch prefix" test $install_ok = 1
for node in login compute; do
  if bash "$ROOT/deploy/install.sh" "$node" --prefix "$S/$node" --sysconfdir "$S/$node/etc" --gateway "$URL" \
    --system cluster --image-dir "$IMAGES" --runtime-dir "$S/$node/run" >"$S/install-$node.log" 2>&1; then
    ok "install $node into a scratch prefix"
  else
    cat "$S/install-$node.log"
    not_ok "install $node into a scratch prefix"
  fi
done

mode_of() { stat -c '%a %U:%G' "$1" 2>/dev/null; }
check "every installed file is owned by root" test -z "$(find "$S/gw" "$S/login" "$S/compute" ! -user root -print -quit)"
check "nothing installed is group- or other-writable (but the setuid binary's own bits)" \
  test -z "$(find "$S/gw" "$S/login" "$S/compute" ! -type l -perm /022 -print -quit)"
check "login: shifter is 4755 root" test "$(mode_of "$S/login/bin/shifter")" = "4755 root:root"
check "login: shifterimg is one bundled file" test "$(mode_of "$S/login/lib/shifter/shifterimg.mjs")" = "755 root:root"
check "login: no other file under lib/shifter" test "$(ls "$S/login/lib/shifter")" = "shifterimg.mjs"
check "compute: shifter 4755, setupRoot and unsetupRoot 0755, root" test \
  "$(mode_of "$S/compute/bin/shifter"),$(mode_of "$S/compute/sbin/setupRoot"),$(mode_of "$S/compute/sbin/unsetupRoot")" = \
  "4755 root:root,755 root:root,755 root:root"
check "login and compute: shifter-lookup 0755 root" test \
  "$(mode_of "$S/login/bin/shifter-lookup"),$(mode_of "$S/compute/bin/shifter-lookup")" = "755 root:root,755 root:root"
check "compute: the Slurm plugin is 0644 root and runs this prefix's shifter-lookup" \
  bash -c '[[ "$1" == "644 root:root" ]] && grep -qa "$2/bin/shifter-lookup" "$2/lib/shifter/shifter_spank.so"' _ \
  "$(mode_of "$S/compute/lib/shifter/shifter_spank.so")" "$S/compute"
check "compute: no Node.js program installed" test -z "$(grep -rl '^#!.*node' "$S/compute" 2>/dev/null)"
check "udiRoot.conf is 0644 root on login and compute" test \
  "$(mode_of "$S/login/etc/udiRoot.conf"),$(mode_of "$S/compute/etc/udiRoot.conf")" = "644 root:root,644 root:root"
check "shifter has its installation's udiRoot.conf baked in" grep -qa "$S/compute/etc/udiRoot.conf" "$S/compute/bin/shifter"
check "man pages installed" test -f "$S/login/share/man/man1/shifter.1" -a -f "$S/login/share/man/man1/shifterimg.1" \
  -a -f "$S/login/share/man/man5/udiRoot.conf.5"

# 2. units -------------------------------------------------------------------------------------------------------
cp "$S/units/shifter-worker@.service" "$S/units/shifter-worker@cluster.service"
if out=$(MANPATH=$S/gw/share/man: systemd-analyze verify "$S/units/shifter-gateway.service" \
  "$S/units/shifter-worker@cluster.service" 2>&1); then
  ok "systemd-analyze verify shifter-gateway.service shifter-worker@cluster.service"
else
  echo "$out"
  not_ok "systemd-analyze verify shifter-gateway.service shifter-worker@cluster.service"
fi

# The emulation itself: the gateway unit with a probe as ExecStart may write its state but nothing else.
sed "s|^ExecStart=.*|ExecStart=/bin/sh -c 'id -un; touch $S/state/probe \&\& echo state-writable; touch $S/gw/etc/probe 2>/dev/null \|\| echo etc-read-only; touch /usr/probe 2>/dev/null \|\| echo usr-read-only; ls /root \| wc -l'|" \
  "$S/units/shifter-gateway.service" >"$S/probe.service"
probe=$(bash "$ROOT/scripts/lib/run-unit.sh" "$S/probe.service" 2>/dev/null | tr '\n' ' ')
check "the unit emulation: service user, ReadWritePaths writable, the rest read-only, /root hidden ($probe)" \
  test "$probe" = "$SERVICE_USER state-writable etc-read-only usr-read-only 0 "
rm -f "$S/state/probe"

# 3. serve + worker@cluster as the units run them (distributed mode on the harness's store and queue) -------------
database=shifter_deploy_$$_$RANDOM
cat >"$S/gw/etc/gateway.json" <<EOF
{
  "gateway": { "host": "127.0.0.1", "port": $PORT },
  "storage": { "cacheDir": "$S/cache/blobs", "expandDir": "$S/state/expand" },
  "metadata": { "kind": "mongo", "url": "$SHIFTER_TEST_MONGO_URL", "database": "$database" },
  "queue": { "kind": "redis", "url": "$SHIFTER_TEST_REDIS_URL", "prefix": "$database" },
  "allowedRegistries": ["$SHIFTER_TEST_REGISTRY"],
  "systems": {
    "cluster": { "transfer": { "kind": "local", "imageDir": "$IMAGES" }, "mungeSocketPath": "$SHIFTER_TEST_MUNGE_SOCKET",
                 "admins": ["root"] }
  },
  "logLevel": "info"
}
EOF
chmod 0644 "$S/gw/etc/gateway.json"
bash "$ROOT/scripts/lib/run-unit.sh" "$S/units/shifter-gateway.service" >"$S/serve.log" 2>&1 &
pids+=($!)
bash "$ROOT/scripts/lib/run-unit.sh" "$S/units/shifter-worker@.service" cluster >"$S/worker.log" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 150); do
  if curl -fsS "$URL/api/status" >/dev/null 2>&1; then up=1; break; fi
  sleep 0.2
done
check "serve (as the unit runs it) answers /api/status" test $up = 1
check "serve runs as the service user" test "$(ps -o user= -p "$(pgrep -f "serve --config $S/gw/etc/gateway.json" | tail -n 1)" 2>/dev/null)" = "$SERVICE_USER"
check "worker@cluster runs as the service user" test "$(ps -o user= -p "$(pgrep -f "worker --config $S/gw/etc/gateway.json --system cluster" | tail -n 1)" 2>/dev/null)" = "$SERVICE_USER"
check "the gateway host's shifterimg reaches the gateway" \
  env SHIFTER_CONFIG="$S/login/etc/udiRoot.conf" "$S/gw/bin/shifterimg" status

# 4. pull through the login node's shifterimg, as the unprivileged user --------------------------------------------
as_user() { cd / && runuser -u "$USER_T" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp "$@"; }
if out=$(as_user "$S/login/bin/shifterimg" pull "$TAG" 2>&1); then
  ok "shifterimg pull $TAG as $USER_T (munge)"
else
  echo "$out"; tail -n 30 "$S/serve.log" "$S/worker.log"
  not_ok "shifterimg pull $TAG as $USER_T (munge)"
fi
id=$(as_user "$S/login/bin/shifterimg" lookup "$TAG" 2>/dev/null)
check "the image is READY (lookup answers an id)" test -n "$id"
check "the image file is in the image directory, 0644, owned by $SERVICE_USER" \
  test "$(mode_of "$IMAGES/$id.squashfs")" = "644 $SERVICE_USER:$SERVICE_USER"
check "its .meta is 0644" test "$(stat -c %a "$IMAGES/$id.meta" 2>/dev/null)" = 644
check "no write outside ReadWritePaths: the gateway's files are only in state, cache and images" \
  test -z "$(find "$S/gw" -newer "$S/gw/etc/gateway.json" -type f -print -quit)"

# 5. run it as the unprivileged user from each prefix --------------------------------------------------------------
for node in login compute; do
  out=$(as_user "$S/$node/bin/shifter" "--image=docker:$TAG" sh -c 'echo "$SHIFTER_IMAGE $(id -u)"' 2>&1)
  if [[ $out == "$id $(id -u "$USER_T")" ]]; then ok "$node: shifter runs the image as $USER_T"; else
    echo "$out"; not_ok "$node: shifter runs the image as $USER_T"; fi
done

# Tidy: the MongoDB database of this run (the Redis keys carry its prefix and are few).
node --input-type=module -e "
  const { MongoClient } = await import('$S/gw/lib/shifter/gateway/node_modules/mongodb/lib/index.js');
  const client = new MongoClient(process.argv[1]); await client.connect();
  await client.db(process.argv[2]).dropDatabase(); await client.close();" "$SHIFTER_TEST_MONGO_URL" "$database" 2>/dev/null || true
finish
