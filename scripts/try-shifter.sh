#!/usr/bin/env bash
# A single-node Shifter on this machine, in one command (as root, on Debian 12):
#
#   bash scripts/try-shifter.sh          set up, pull a small image, run it once as an unprivileged user
#   bash scripts/try-shifter.sh --stop   stop the gateway it started
#
# It installs what is missing (Debian packages, npm dependencies), starts munged, builds, starts the image gateway on
# embedded defaults (SQLite store, in-process queue) in the background with its pid and log file under the state
# directory, installs `shifterimg` and the setuid runtime `shifter` (deploy/install.sh login) with a udiRoot.conf
# pointing at the gateway, pulls a small image through the gateway and runs it as an unprivileged user. It ends by
# printing what to type next and how to stop the gateway. Running it again restarts the gateway and keeps its images.
#
# Knobs (environment):
#   SHIFTER_DEMO_REGISTRY   pull from this registry (host:port, plain HTTP) instead of Docker Hub, the default:
#                           it becomes the gateway's default location (e.g. 127.0.0.1:5000)
#   SHIFTER_DEMO_IMAGE      the image to pull and run [busybox:latest]
#   SHIFTER_DEMO_USER       the unprivileged user who runs it [$SUDO_USER, else nobody]
#   SHIFTER_DEMO_DIR        state: gateway.json, gateway.db, gateway.pid, gateway.log, images/ [/var/lib/shifter-demo]
#   SHIFTER_DEMO_PREFIX     where shifterimg and shifter are installed [/usr/local]
#   SHIFTER_DEMO_SYSCONFDIR where udiRoot.conf goes (compiled into shifter) [/etc/shifter]
#   SHIFTER_DEMO_PORT       the gateway's port on 127.0.0.1 [8000]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_DIR=${SHIFTER_DEMO_DIR:-/var/lib/shifter-demo}
PREFIX=${SHIFTER_DEMO_PREFIX:-/usr/local}
SYSCONFDIR=${SHIFTER_DEMO_SYSCONFDIR:-/etc/shifter}
PORT=${SHIFTER_DEMO_PORT:-8000}
IMAGE=${SHIFTER_DEMO_IMAGE:-busybox:latest}
RUN_AS=${SHIFTER_DEMO_USER:-${SUDO_USER:-nobody}}
URL=http://127.0.0.1:$PORT
PIDFILE=$DEMO_DIR/gateway.pid
LOGFILE=$DEMO_DIR/gateway.log
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'try-shifter: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The gateway we started, if it still runs: its pid file names it, and its command line names our config.
running_pid() {
  local pid
  [[ -s $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--config $DEMO_DIR/gateway.json" || return 1
  echo "$pid"
}

stop_gateway() {
  local pid
  if pid=$(running_pid); then
    kill -TERM "$pid"
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "stopped the gateway (pid $pid)"
  fi
  rm -f "$PIDFILE"
}

if [[ ${1:-} == --stop ]]; then stop_gateway; exit 0; fi
[[ $# == 0 ]] || die "usage: try-shifter.sh [--stop]"
[[ $(id -u) == 0 ]] || die "run as root: it installs packages, the setuid runtime, and starts munged"
id -u "$RUN_AS" >/dev/null 2>&1 || die "user $RUN_AS does not exist (set SHIFTER_DEMO_USER)"
[[ $(id -u "$RUN_AS") != 0 ]] || die "SHIFTER_DEMO_USER must be an unprivileged user, not root"

# 1. packages -------------------------------------------------------------------------------------------------------
wanted=(munge libmunge-dev squashfs-tools squashfs-tools-ng gcc make libc6-dev ca-certificates curl util-linux)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done
command -v node >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]} > 0)); then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
((major >= 20)) || die "Node.js >= 20 is needed (found $(node --version))"

# 2. munged -----------------------------------------------------------------------------------------------------------
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating a munge key"
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || die "munged does not answer"
fi

# 3. build --------------------------------------------------------------------------------------------------------------
cd "$ROOT"
if [[ ! -d node_modules/fastify ]]; then say "installing npm dependencies (npm ci)"; npm ci --no-audit --no-fund --loglevel=error; fi
say "building the gateway and shifterimg"
npm run build --silent -w @shifter/core -w @shifter/gateway -w @shifter/cli >"$DEMO_DIR.build.log" 2>&1 ||
  { tail -n 30 "$DEMO_DIR.build.log" >&2; die "the build failed (log: $DEMO_DIR.build.log)"; }
rm -f "$DEMO_DIR.build.log"

# 4. the gateway, in the background ---------------------------------------------------------------------------------
install -d -m 0755 "$DEMO_DIR" "$DEMO_DIR/images"
install -d -m 0700 "$DEMO_DIR/cache" "$DEMO_DIR/expand"
registries='{}' default_registry=''
if [[ -n ${SHIFTER_DEMO_REGISTRY:-} ]]; then
  registries="{\"local\": {\"url\": \"http://$SHIFTER_DEMO_REGISTRY\", \"insecure\": true}}"
  default_registry='"defaultRegistry": "local",'
fi
cat >"$DEMO_DIR/gateway.json.tmp" <<JSON
{
  "gateway": { "host": "127.0.0.1", "port": $PORT },
  "storage": { "cacheDir": "$DEMO_DIR/cache", "expandDir": "$DEMO_DIR/expand" },
  "metadata": { "kind": "sqlite", "path": "$DEMO_DIR/gateway.db" },
  "queue": { "kind": "in-process", "concurrency": 2 },
  "systems": { "demo": { "transfer": { "kind": "local", "imageDir": "$DEMO_DIR/images" }, "admins": ["root"] } },
  "registries": $registries, $default_registry
  "importUsers": "all"
}
JSON
mv "$DEMO_DIR/gateway.json.tmp" "$DEMO_DIR/gateway.json"
stop_gateway
setsid node "$ROOT/packages/gateway/bin/shifter-gateway.js" serve --config "$DEMO_DIR/gateway.json" \
  </dev/null >>"$LOGFILE" 2>&1 &
echo $! >"$PIDFILE"
for _ in $(seq 150); do curl -fsS "$URL/api/status" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$URL/api/status" >/dev/null 2>&1 || { tail -n 20 "$LOGFILE" >&2; die "the gateway did not start (log: $LOGFILE)"; }
say "gateway up on $URL (pid $(<"$PIDFILE"), log $LOGFILE)"

# 5. shifterimg and the setuid runtime ----------------------------------------------------------------------------
bash "$ROOT/deploy/install.sh" login --prefix "$PREFIX" --sysconfdir "$SYSCONFDIR" --gateway "$URL" --system demo \
  --image-dir "$DEMO_DIR/images" --runtime-dir "$DEMO_DIR/runtime" --force-config 2>&1 | grep -v '^install.sh: wrote' >&2

# 6. pull and run as the user -----------------------------------------------------------------------------------------
as_user() { (cd / && runuser -u "$RUN_AS" -- env -i PATH="$PREFIX/bin:/usr/bin:/bin" HOME=/tmp "$@"); }
say "pulling $IMAGE through the gateway as $RUN_AS"
as_user "$PREFIX/bin/shifterimg" pull "$IMAGE" >&2
say "running it as $RUN_AS:"
as_user "$PREFIX/bin/shifter" "--image=$IMAGE" /bin/sh -c 'echo "hello from $(head -n 1 /etc/os-release 2>/dev/null || uname -s) as $(id -un) (uid $(id -u)) in image $SHIFTER_IMAGE"'

stop_env=''
[[ $DEMO_DIR == /var/lib/shifter-demo ]] || stop_env="SHIFTER_DEMO_DIR=$DEMO_DIR "
cat <<EOF

Shifter is running on this machine (system "demo", gateway $URL).
Next, as any user:
  $PREFIX/bin/shifterimg pull $IMAGE
  $PREFIX/bin/shifterimg images
  $PREFIX/bin/shifter --image=$IMAGE /bin/sh
Manual pages: man shifter, man shifterimg, man udiRoot.conf
Gateway: pid $(<"$PIDFILE") in $PIDFILE, log $LOGFILE
Stop it:  ${stop_env}bash $ROOT/scripts/try-shifter.sh --stop
EOF
