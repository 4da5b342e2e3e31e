#!/usr/bin/env bash
# The integration-test harness: starts on loopback everything the integration tests need and stops it by PID.
#
#   scripts/test-harness.sh install  only the installation part of start (Debian packages, FerretDB, test users)
#   scripts/test-harness.sh start    install what is missing, build/reuse fixtures, start services, push fixtures,
#                                    write .state/harness.env (idempotent: running services are kept)
#   scripts/test-harness.sh stop     stop every service this harness started (by the PIDs in .state/pids/)
#   scripts/test-harness.sh status   one line per service; exit 0 when all are up, 3 otherwise
#   scripts/test-harness.sh env      print .state/harness.env (`eval "$(scripts/test-harness.sh env)"`)
#   scripts/test-harness.sh prune    delete cached fixtures that this checkout's builders no longer produce
#   scripts/test-harness.sh run CMD  run CMD with .state/harness.env exported (e.g. `… run npx vitest run --project
#                                    integration packages/core/test/integration`)
#
# Must run as root (apt, users, munged, fixture ownership). docs/testing.md describes every service and fixture.
# Knobs: SHIFTER_TEST_TOKEN_TTL (token lifetime, default 5 s), SHIFTER_FIXTURE_CACHE (default
# /var/cache/shifter-test-fixtures), SHIFTER_HARNESS_SKIP_LARGE=1 (skip the big and debian fixtures),
# SHIFTER_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/harness-common.sh
source "$ROOT/scripts/lib/harness-common.sh"

STATE=$ROOT/.state
PIDS=$STATE/pids
LOGS=$STATE/logs
ENV_FILE=$STATE/harness.env
FIXTURE_CACHE=${SHIFTER_FIXTURE_CACHE:-/var/cache/shifter-test-fixtures}
FIXTURE_SRC=$ROOT/test/harness/fixtures
TOKEN_TTL=${SHIFTER_TEST_TOKEN_TTL:-5}
GO_BIN=${GOBIN:-${HOME:-/root}/go/bin}
FERRETDB=$GO_BIN/ferretdb
FERRETDB_VERSION=v1.24.2
MUNGE_SOCKET=/run/munge/munge.socket.2
REGISTRY_USER=shifter
TEST_USER=shiftertest TEST_UID=2001
TEST_USER2=shiftertest2 TEST_UID2=2002
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# name → port; the registry names are also the directory names under .state/registry/.
declare -A REGISTRY_PORT=([plain]=5000 [basic]=5001 [token]=5002)
TOKEN_PORT=5003 MONGO_PORT=27017 REDIS_PORT=6379
# The second FerretDB (PostgreSQL backend, the production-like one) and its PostgreSQL.
MONGO_PG_PORT=27018 POSTGRES_PORT=5433
SMALL_FIXTURES=(busybox whiteout multiarch weird)
LARGE_FIXTURES=(big debian)

APT_PACKAGES=(docker-registry skopeo umoci busybox-static debootstrap squashfs-tools squashfs-tools-ng squashfuse
  redis-server munge libmunge-dev apache2-utils openssl openssh-server openssh-client charliecloud jq iproute2 zstd
  util-linux curl ca-certificates postgresql xfsprogs rsync clang-format cppcheck shellcheck libssl-dev slurmctld slurmd
  slurm-client libslurm-dev
  # deploy tests: systemd-analyze (package systemd; PID 1 stays what it is), dockerd + docker-compose 1.29
  systemd docker.io docker-compose)

# ---------------------------------------------------------------------------------------------------------------
# Installation

install_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]} > 0)); then
    harness_log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

# FerretDB's `go install` binary panics at start (it needs build/version/version.txt, which only its own build
# tooling writes), so build from a copy of the module source with that file added.
install_ferretdb() {
  if [[ -x $FERRETDB && $("$FERRETDB" --version 2>/dev/null || true) == *"$FERRETDB_VERSION"* ]]; then return; fi
  command -v go >/dev/null || harness_die "go is needed to build FerretDB (Go >= 1.24 in /usr/local/go/bin)"
  harness_log "building FerretDB $FERRETDB_VERSION (go module proxy)"
  local work mod
  work=$(mktemp -d)
  (
    cd "$work"
    go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" >mod.json
    mod=$(jq -r .Dir mod.json)
    cp -r "$mod" src
    chmod -R u+w src
    echo "$FERRETDB_VERSION" >src/build/version/version.txt
    cd src
    GOFLAGS=-mod=mod go build -o "$work/ferretdb" ./cmd/ferretdb
  ) >"$LOGS/ferretdb-build.log" 2>&1 || {
    tail -n 20 "$LOGS/ferretdb-build.log" >&2
    rm -rf "$work"
    harness_die "FerretDB build failed (log: $LOGS/ferretdb-build.log)"
  }
  mkdir -p "$GO_BIN"
  install -m 0755 "$work/ferretdb" "$FERRETDB.new"
  mv -f "$FERRETDB.new" "$FERRETDB"
  rm -rf "$work"
}

ensure_user() {
  local name=$1 uid=$2 existing
  if existing=$(id -u "$name" 2>/dev/null); then
    [[ $existing == "$uid" ]] || harness_die "user $name exists with uid $existing, expected $uid"
    return
  fi
  if getent passwd "$uid" >/dev/null; then harness_die "uid $uid is taken by $(getent passwd "$uid" | cut -d: -f1)"; fi
  harness_log "creating user $name (uid $uid)"
  if getent group "$name" >/dev/null; then
    useradd -m -u "$uid" -g "$name" -s /bin/bash "$name"
  elif getent group "$uid" >/dev/null; then
    harness_die "gid $uid is taken by $(getent group "$uid" | cut -d: -f1)"
  else
    groupadd -g "$uid" "$name"
    useradd -m -u "$uid" -g "$name" -s /bin/bash "$name"
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# Secrets and certificates (kept across starts; regenerated when missing or about to expire)

ensure_secrets() {
  mkdir -p "$STATE/secrets"
  chmod 0700 "$STATE/secrets"
  local s=$STATE/secrets
  [[ -s $s/registry-password ]] || openssl rand -hex 16 | atomic_write "$s/registry-password" 0600
  [[ -s $s/http-secret ]] || openssl rand -hex 32 | atomic_write "$s/http-secret" 0600
  REGISTRY_PASSWORD=$(<"$s/registry-password")
  if [[ ! -s $s/htpasswd ]] || ! htpasswd -vbB "$s/htpasswd" "$REGISTRY_USER" "$REGISTRY_PASSWORD" >/dev/null 2>&1; then
    htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASSWORD" | atomic_write "$s/htpasswd" 0644
  fi
  mkdir -p "$STATE/certs/skopeo"
  local certs=$STATE/certs
  if ! openssl x509 -checkend 86400 -noout -in "$certs/tls.crt" >/dev/null 2>&1; then
    harness_log "generating the TLS certificate of the Basic-auth registry"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$certs/tls.key" -out "$certs/tls.crt" -days 30 \
      -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null
    chmod 0644 "$certs/tls.crt" "$certs/tls.key"
  fi
  cp -f "$certs/tls.crt" "$certs/skopeo/ca.crt"
  if ! openssl x509 -checkend 86400 -noout -in "$certs/token.crt" >/dev/null 2>&1; then
    harness_log "generating the token signing certificate"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$certs/token.key" -out "$certs/token.crt" -days 30 \
      -subj /CN=shifter-test-token-server 2>/dev/null
    chmod 0600 "$certs/token.key"
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# Fixtures

fixture_hash() {
  cat "$FIXTURE_SRC/lib.sh" "$FIXTURE_SRC/$1.sh" | sha256sum | cut -c1-16
}

# Builds fixture NAME into the cache unless a completed copy for the current builder scripts is there, then links
# it into .state/fixtures. Built into a temp directory and renamed, so an interrupted build is never reused.
ensure_fixture() {
  local name=$1 hash dir tmp started
  hash=$(fixture_hash "$name")
  dir=$FIXTURE_CACHE/$hash/$name
  if [[ ! -f $dir/index.json ]]; then
    mkdir -p "$FIXTURE_CACHE/$hash"
    tmp=$(mktemp -d "$FIXTURE_CACHE/$hash/.$name.XXXXXX")
    started=$SECONDS
    harness_log "building fixture $name"
    if ! bash "$FIXTURE_SRC/$name.sh" "$tmp/layout" >"$LOGS/fixture-$name.log" 2>&1; then
      tail -n 30 "$LOGS/fixture-$name.log" >&2
      rm -rf "$tmp"
      harness_die "fixture $name failed to build (log: $LOGS/fixture-$name.log)"
    fi
    rm -rf "$dir"
    mv "$tmp/layout" "$dir"
    rmdir "$tmp"
    chmod a+rx "$FIXTURE_CACHE" "$FIXTURE_CACHE/$hash"
    harness_log "fixture $name built in $((SECONDS - started)) s"
  fi
  mkdir -p "$STATE/fixtures"
  ln -sfn "$dir" "$STATE/fixtures/$name"
}

ensure_fixtures() {
  local pids=() name failed=0
  for name in "$@"; do
    ensure_fixture "$name" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || harness_die "fixture build failed"
}

# ---------------------------------------------------------------------------------------------------------------
# Registries

write_registry_config() {
  local name=$1 port=${REGISTRY_PORT[$1]} dir=$STATE/registry/$1
  {
    cat <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $(<"$STATE/secrets/http-secret")
EOF
    case $name in
      basic)
        cat <<EOF
  tls:
    certificate: $STATE/certs/tls.crt
    key: $STATE/certs/tls.key
auth:
  htpasswd:
    realm: shifter-test-basic
    path: $STATE/secrets/htpasswd
EOF
        ;;
      token)
        cat <<EOF
auth:
  token:
    realm: http://127.0.0.1:$TOKEN_PORT/token
    service: shifter-test-registry
    issuer: shifter-test-token-server
    rootcertbundle: $STATE/certs/token.crt
EOF
        ;;
    esac
  } | atomic_write "$dir/config.yml"
}

registry_ready() {
  case $1 in
    plain) [[ $(http_status "http://127.0.0.1:${REGISTRY_PORT[plain]}/v2/") == 200 ]] ;;
    basic) [[ $(http_status "https://127.0.0.1:${REGISTRY_PORT[basic]}/v2/" --cacert "$STATE/certs/tls.crt") == 401 ]] ;;
    token) [[ $(http_status "http://127.0.0.1:${REGISTRY_PORT[token]}/v2/") == 401 ]] ;;
  esac
}

# Starts registry NAME with fresh storage unless our instance already runs. Returns 0 when it (re)started, so
# the caller knows the fixtures must be pushed again.
start_registry() {
  local name=$1 port=${REGISTRY_PORT[$1]} dir=$STATE/registry/$1 pid
  if pidfile_alive "$PIDS/registry-$name" "registry-$name" >/dev/null; then return 1; fi
  port_open "$port" && harness_die "port $port is in use by a process this harness did not start (ss -ltnp)"
  rm -rf "$dir"
  mkdir -p "$dir/storage"
  write_registry_config "$name"
  # The config path names the instance, which is how pidfile_alive recognises the process later.
  cp "$dir/config.yml" "$dir/registry-$name.yml"
  setsid docker-registry serve "$dir/registry-$name.yml" 9>&- >"$LOGS/registry-$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDS/registry-$name"
  wait_for 20 registry_ready "$name" || {
    tail -n 20 "$LOGS/registry-$name.log" >&2
    harness_die "registry $name did not come up on :$port"
  }
  harness_log "registry $name up on 127.0.0.1:$port (pid $pid)"
  return 0
}

start_token_server() {
  local pid conf=$STATE/token-server.json
  if pid=$(pidfile_alive "$PIDS/token-server" token-server.mjs); then
    # A changed TTL must take effect: restart (tokens are stateless, the registry does not care).
    if [[ -f $conf ]] && [[ $(jq -r .ttlSeconds "$conf") == "$TOKEN_TTL" ]]; then return; fi
    stop_pidfile "$PIDS/token-server" token-server.mjs token-server
  fi
  port_open "$TOKEN_PORT" && harness_die "port $TOKEN_PORT is in use by a process this harness did not start"
  jq -n --arg key "$STATE/certs/token.key" --arg cert "$STATE/certs/token.crt" --argjson port "$TOKEN_PORT" \
    --argjson ttl "$TOKEN_TTL" --arg user "$REGISTRY_USER" --arg pass "$REGISTRY_PASSWORD" \
    '{host: "127.0.0.1", port: $port, keyFile: $key, certFile: $cert, issuer: "shifter-test-token-server",
      service: "shifter-test-registry", ttlSeconds: $ttl, users: {($user): $pass}, publicPrefixes: ["test/"]}' |
    atomic_write "$conf" 0600
  setsid node "$ROOT/test/harness/token-server.mjs" "$conf" 9>&- >"$LOGS/token-server.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDS/token-server"
  wait_for 20 token_server_ready || {
    tail -n 20 "$LOGS/token-server.log" >&2
    harness_die "token server did not come up on :$TOKEN_PORT"
  }
  harness_log "token server up on 127.0.0.1:$TOKEN_PORT (pid $pid, ttl ${TOKEN_TTL}s)"
}

token_server_ready() { [[ $(http_status "http://127.0.0.1:$TOKEN_PORT/healthz") == 200 ]]; }

# skopeo options to push to registry NAME.
push_opts() {
  case $1 in
    plain) echo "--dest-tls-verify=false" ;;
    basic) echo "--dest-cert-dir=$STATE/certs/skopeo --dest-creds=$REGISTRY_USER:$REGISTRY_PASSWORD" ;;
    token) echo "--dest-tls-verify=false --dest-creds=$REGISTRY_USER:$REGISTRY_PASSWORD" ;;
  esac
}

# push REGISTRY FIXTURE SRC_TAG DEST_REPO DEST_TAG [extra skopeo options]
push_image() {
  local reg=$1 fixture=$2 tag=$3 repo=$4 dtag=$5
  shift 5
  # shellcheck disable=SC2046 # push_opts is a word list by design
  skopeo copy --quiet --all --retry-times 2 $(push_opts "$reg") "$@" \
    "oci:$STATE/fixtures/$fixture:$tag" "docker://127.0.0.1:${REGISTRY_PORT[$reg]}/$repo:$dtag"
}

# Pushes every fixture registry NAME should hold (the list is the contract in docs/testing.md).
push_fixtures() {
  local reg=$1 log=$LOGS/push-$1.log set=$2
  {
    if [[ $set == small ]]; then
      push_image "$reg" busybox latest test/busybox latest
      push_image "$reg" busybox v2s2 test/busybox v2s2 --format v2s2
      push_image "$reg" whiteout latest test/whiteout latest
      push_image "$reg" multiarch latest test/multiarch latest
      push_image "$reg" multiarch list test/multiarch list --format v2s2
      push_image "$reg" weird latest test/weird latest
      [[ $reg != token ]] || push_image "$reg" busybox latest private/busybox latest
    else
      push_image "$reg" big latest test/big latest
      push_image "$reg" debian latest test/debian latest
    fi
  } >>"$log" 2>&1
}

# The cache hashes of a fixture set: what a registry's push marker records.
fixture_set_hashes() {
  local name names
  if [[ $1 == small ]]; then names=("${SMALL_FIXTURES[@]}"); else names=("${LARGE_FIXTURES[@]}"); fi
  for name in "${names[@]}"; do printf '%s=%s\n' "$name" "$(fixture_hash "$name")"; done
}
pushed_current() {
  local marker=$STATE/registry/$1/pushed-$2
  [[ -f $marker && $(<"$marker") == "$(fixture_set_hashes "$2")" ]]
}
mark_pushed() { fixture_set_hashes "$2" | atomic_write "$STATE/registry/$1/pushed-$2"; }

# ---------------------------------------------------------------------------------------------------------------
# FerretDB, Redis, munged

# A healthy server this harness did not start (e.g. started by hand while developing) is used as it is, never
# stopped; a registry is never adopted that way, since it would lack the fixtures and credentials.
start_ferretdb() {
  local pid dir=$STATE/ferretdb
  if pidfile_alive "$PIDS/ferretdb" ferretdb >/dev/null; then return; fi
  if port_open "$MONGO_PORT"; then
    harness_log "WARNING: using the MongoDB-protocol server already listening on :$MONGO_PORT (not started here)"
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  # --debug-addr on an ephemeral port: the default 127.0.0.1:8088 could collide with a service under test.
  setsid "$FERRETDB" --handler=sqlite --sqlite-url="file:$dir/" --state-dir="$dir" --telemetry=disable \
    --listen-addr="127.0.0.1:$MONGO_PORT" --debug-addr=127.0.0.1:0 --log-level=warn \
    9>&- >"$LOGS/ferretdb.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDS/ferretdb"
  wait_for 30 port_open "$MONGO_PORT" || {
    tail -n 20 "$LOGS/ferretdb.log" >&2
    harness_die "FerretDB did not come up on :$MONGO_PORT"
  }
  harness_log "FerretDB up on 127.0.0.1:$MONGO_PORT (pid $pid)"
}

# PostgreSQL (Debian's server binaries, run directly as the postgres user, fresh cluster per start, TCP on loopback
# only) behind a second FerretDB. Durability is off (fsync, synchronous_commit): the data is disposable test data.
postgres_bin() { local dirs=(/usr/lib/postgresql/*/bin); printf '%s' "${dirs[-1]}"; }
postgres_ready() { "$(postgres_bin)/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" 2>/dev/null; }

start_postgres() {
  local dir=$STATE/postgres bin
  bin=$(postgres_bin)
  if pidfile_alive "$PIDS/postgres" "$dir/data" >/dev/null && postgres_ready; then return; fi
  port_open "$POSTGRES_PORT" && harness_die "port $POSTGRES_PORT is in use by something this harness did not start"
  rm -rf "$dir"
  install -d -o postgres -g postgres -m 0700 "$dir"
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-instructions \
    9>&- >"$LOGS/postgres-initdb.log" 2>&1 || {
    tail -n 20 "$LOGS/postgres-initdb.log" >&2
    harness_die "initdb failed"
  }
  runuser -u postgres -- setsid "$bin/postgres" -D "$dir/data" -p "$POSTGRES_PORT" -k "$dir" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=200 9>&- >"$LOGS/postgres.log" 2>&1 </dev/null &
  wait_for 30 postgres_ready || {
    tail -n 20 "$LOGS/postgres.log" >&2
    harness_die "PostgreSQL did not come up on :$POSTGRES_PORT"
  }
  head -n 1 "$dir/data/postmaster.pid" >"$PIDS/postgres"
  "$bin/createdb" -h 127.0.0.1 -p "$POSTGRES_PORT" -U postgres ferretdb
  harness_log "PostgreSQL up on 127.0.0.1:$POSTGRES_PORT (pid $(<"$PIDS/postgres"))"
}

start_ferretdb_pg() {
  local pid dir=$STATE/ferretdb-pg
  if pidfile_alive "$PIDS/ferretdb-pg" ferretdb >/dev/null; then return; fi
  port_open "$MONGO_PG_PORT" && harness_die "port $MONGO_PG_PORT is in use by something this harness did not start"
  rm -rf "$dir"
  mkdir -p "$dir"
  setsid "$FERRETDB" --handler=postgresql --postgresql-url="postgres://postgres@127.0.0.1:$POSTGRES_PORT/ferretdb" \
    --state-dir="$dir" --telemetry=disable --listen-addr="127.0.0.1:$MONGO_PG_PORT" --debug-addr=127.0.0.1:0 \
    --log-level=warn 9>&- >"$LOGS/ferretdb-pg.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDS/ferretdb-pg"
  wait_for 30 port_open "$MONGO_PG_PORT" || {
    tail -n 20 "$LOGS/ferretdb-pg.log" >&2
    harness_die "FerretDB (PostgreSQL) did not come up on :$MONGO_PG_PORT"
  }
  harness_log "FerretDB (PostgreSQL backend) up on 127.0.0.1:$MONGO_PG_PORT (pid $pid)"
}

redis_ready() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

start_redis() {
  if pidfile_alive "$PIDS/redis" redis-server >/dev/null; then return; fi
  if redis_ready; then
    harness_log "WARNING: using the redis already listening on :$REDIS_PORT (not started here)"
    return
  fi
  port_open "$REDIS_PORT" && harness_die "port $REDIS_PORT is in use by something that does not answer PING"
  mkdir -p "$STATE/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$STATE/redis" --pidfile "$PIDS/redis" --logfile "$LOGS/redis.log" 9>&-
  wait_for 20 redis_ready || harness_die "redis did not come up on :$REDIS_PORT"
  harness_log "redis up on 127.0.0.1:$REDIS_PORT (pid $(<"$PIDS/redis"))"
}

munge_ready() {
  local out
  out=$(munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" 2>/dev/null) || return 1
  [[ $out =~ STATUS:\ +Success ]]
}

start_munged() {
  if munge_ready; then return; fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  [[ -s /etc/munge/munge.key ]] || harness_die "/etc/munge/munge.key is missing (reinstall the munge package)"
  # munged forks; it writes its own PID file, which we copy so that `stop` only ever kills the daemon we started.
  runuser -u munge -- /usr/sbin/munged --force --socket="$MUNGE_SOCKET" 9>&- >"$LOGS/munged.log" 2>&1 || {
    cat "$LOGS/munged.log" /var/log/munge/munged.log 2>/dev/null | tail -n 20 >&2
    harness_die "munged failed to start"
  }
  wait_for 10 test -s /run/munge/munged.pid || true
  cp /run/munge/munged.pid "$PIDS/munged"
  wait_for 10 munge_ready || harness_die "munge round trip fails"
  harness_log "munged up on $MUNGE_SOCKET (pid $(<"$PIDS/munged"))"
}

# ---------------------------------------------------------------------------------------------------------------
# The environment file

write_env() {
  {
    echo "# Written by scripts/test-harness.sh start on $(date -u +%FT%TZ); services documented in docs/testing.md."
    echo "export SHIFTER_TEST_REGISTRY=127.0.0.1:${REGISTRY_PORT[plain]}"
    echo "export SHIFTER_TEST_REGISTRY_BASIC=127.0.0.1:${REGISTRY_PORT[basic]}"
    echo "export SHIFTER_TEST_REGISTRY_USER=$REGISTRY_USER"
    echo "export SHIFTER_TEST_REGISTRY_PASSWORD=$REGISTRY_PASSWORD"
    echo "export SHIFTER_TEST_CA_FILE=$STATE/certs/tls.crt"
    echo "export SHIFTER_TEST_REGISTRY_TOKEN=127.0.0.1:${REGISTRY_PORT[token]}"
    echo "export SHIFTER_TEST_TOKEN_SERVER=http://127.0.0.1:$TOKEN_PORT"
    echo "export SHIFTER_TEST_TOKEN_TTL=$TOKEN_TTL"
    echo "export SHIFTER_TEST_FIXTURES=$STATE/fixtures"
    echo "export SHIFTER_TEST_MONGO_URL=mongodb://127.0.0.1:$MONGO_PORT/"
    echo "export SHIFTER_TEST_MONGO_PG_URL=mongodb://127.0.0.1:$MONGO_PG_PORT/"
    echo "export SHIFTER_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    echo "export SHIFTER_TEST_MUNGE_SOCKET=$MUNGE_SOCKET"
    echo "export SHIFTER_TEST_USER=$TEST_USER"
    echo "export SHIFTER_TEST_USER2=$TEST_USER2"
    [[ ${1:-} != partial ]] || echo "export SHIFTER_TEST_HARNESS_PARTIAL=1"
  } | atomic_write "$ENV_FILE" 0644
}

# ---------------------------------------------------------------------------------------------------------------
# Commands

cmd_install() {
  [[ $(id -u) == 0 ]] || harness_die "run as root (apt, users, munged, fixture ownership)"
  install_packages
  install_ferretdb
  ensure_user "$TEST_USER" "$TEST_UID"
  ensure_user "$TEST_USER2" "$TEST_UID2"
}

cmd_start() {
  [[ $TOKEN_TTL =~ ^[1-9][0-9]*$ ]] || harness_die "SHIFTER_TEST_TOKEN_TTL must be a positive integer"
  local started=$SECONDS reg
  cmd_install
  ensure_secrets
  ensure_fixtures "${SMALL_FIXTURES[@]}"

  start_token_server
  local -a restarted=()
  for reg in plain basic token; do
    if start_registry "$reg"; then restarted+=("$reg"); fi
  done
  local pids=() failed=0
  for reg in plain basic token; do
    # Pushed again when the registry restarted, when an earlier push never completed (interrupted start), or
    # when a fixture was rebuilt since (its builder changed): the registry must serve what the layouts hold.
    if [[ " ${restarted[*]} " == *" $reg "* ]] || ! pushed_current "$reg" small; then
      (push_fixtures "$reg" small && mark_pushed "$reg" small) &
      pids+=($!)
    fi
  done
  start_ferretdb
  start_postgres
  start_ferretdb_pg
  start_redis
  start_munged
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || harness_die "pushing the small fixtures failed (logs: $LOGS/push-*.log)"
  write_env partial
  harness_log "small fixtures pushed; services up after $((SECONDS - started)) s"

  if [[ ${SHIFTER_HARNESS_SKIP_LARGE:-0} != 1 ]]; then
    ensure_fixtures "${LARGE_FIXTURES[@]}"
    if ! pushed_current plain large; then
      push_fixtures plain large || harness_die "pushing the large fixtures failed (log: $LOGS/push-plain.log)"
      mark_pushed plain large
    fi
    write_env
  fi
  harness_log "harness ready in $((SECONDS - started)) s; environment: $ENV_FILE"
}

cmd_stop() {
  local reg
  for reg in plain basic token; do stop_pidfile "$PIDS/registry-$reg" "registry-$reg" "registry $reg"; done
  stop_pidfile "$PIDS/token-server" token-server.mjs "token server"
  stop_pidfile "$PIDS/ferretdb" ferretdb FerretDB
  stop_pidfile "$PIDS/ferretdb-pg" ferretdb "FerretDB (PostgreSQL)"
  stop_pidfile "$PIDS/postgres" "$STATE/postgres/data" PostgreSQL
  stop_pidfile "$PIDS/redis" redis-server redis
  stop_pidfile "$PIDS/munged" munged munged
  rm -f "$ENV_FILE"
}

cmd_status() {
  local ok=0 reg
  line() { printf '%-14s %-5s %s\n' "$1" "$2" "$3"; }
  for reg in plain basic token; do
    if pidfile_alive "$PIDS/registry-$reg" "registry-$reg" >/dev/null && registry_ready "$reg"; then
      line "registry-$reg" up "127.0.0.1:${REGISTRY_PORT[$reg]} pid $(<"$PIDS/registry-$reg")"
    else
      line "registry-$reg" down ""
      ok=3
    fi
  done
  if pidfile_alive "$PIDS/token-server" token-server.mjs >/dev/null && token_server_ready; then
    line token-server up "127.0.0.1:$TOKEN_PORT pid $(<"$PIDS/token-server") $(curl -s "http://127.0.0.1:$TOKEN_PORT/stats")"
  else
    line token-server down "" && ok=3
  fi
  if port_open "$MONGO_PORT"; then
    line ferretdb up "127.0.0.1:$MONGO_PORT $(pidfile_alive "$PIDS/ferretdb" ferretdb >/dev/null && echo "pid $(<"$PIDS/ferretdb")" || echo "(not started by the harness)")"
  else
    line ferretdb down "" && ok=3
  fi
  if postgres_ready && port_open "$MONGO_PG_PORT"; then
    line ferretdb-pg up "127.0.0.1:$MONGO_PG_PORT on PostgreSQL 127.0.0.1:$POSTGRES_PORT"
  else
    line ferretdb-pg down "" && ok=3
  fi
  if redis_ready; then line redis up "127.0.0.1:$REDIS_PORT"; else line redis down "" && ok=3; fi
  if munge_ready; then line munged up "$MUNGE_SOCKET"; else line munged down "" && ok=3; fi
  if [[ -f $ENV_FILE ]]; then
    if grep -q SHIFTER_TEST_HARNESS_PARTIAL "$ENV_FILE"; then line env partial "$ENV_FILE (large fixtures missing)"
    else line env ok "$ENV_FILE"; fi
  else
    line env down "" && ok=3
  fi
  return $ok
}

# Other checkouts may still use another hash, so this is an explicit command, never part of start.
cmd_prune() {
  local keep=() name dir
  for name in "${SMALL_FIXTURES[@]}" "${LARGE_FIXTURES[@]}"; do keep+=("$(fixture_hash "$name")"); done
  for dir in "$FIXTURE_CACHE"/*/; do
    [[ -d $dir ]] || continue
    if [[ " ${keep[*]} " != *" $(basename "$dir") "* ]]; then
      harness_log "removing stale fixture cache $dir"
      rm -rf --one-file-system "$dir"
    fi
  done
}

cmd_env() {
  [[ -f $ENV_FILE ]] || harness_die "no $ENV_FILE: run scripts/test-harness.sh start"
  grep '^export ' "$ENV_FILE"
}

main() {
  local cmd=${1:-}
  case $cmd in
    install | start | stop | prune)
      mkdir -p "$PIDS" "$LOGS"
      # One start/stop at a time: several engineers (and test-all.sh) may call start concurrently.
      exec 9>"$STATE/harness.lock"
      if ! flock -n 9; then
        harness_log "waiting for another harness start/stop to finish"
        flock 9
      fi
      "cmd_$cmd"
      ;;
    status) cmd_status ;;
    env) cmd_env ;;
    run)
      shift
      (($# > 0)) || harness_die "usage: $0 run CMD [ARGS...]"
      [[ -f $ENV_FILE ]] || harness_die "no $ENV_FILE: run scripts/test-harness.sh start"
      set -a
      # shellcheck source=/dev/null
      source "$ENV_FILE"
      set +a
      exec "$@"
      ;;
    *)
      echo "usage: $0 install|start|stop|status|env|prune|run CMD..." >&2
      exit 64
      ;;
  esac
}

main "$@"
