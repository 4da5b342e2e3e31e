#!/usr/bin/env bash
# Install Shifter on one node type, from a built checkout (`npm run build`; the C runtime is built here).
#
#   deploy/install.sh gateway|login|compute [options]
#
#   gateway   the image gateway host: shifter-gateway (Node service and its production dependencies), the one-file
#             shifterimg, systemd units (shifter-gateway.service, shifter-worker@.service), the service user, a
#             gateway.json template, its state/cache directories
#   login     a login node: shifterimg as one file (needs only Node >= 20) and the setuid runtime `shifter`
#   compute   a compute node: shifter, setupRoot, unsetupRoot and the Slurm SPANK plugin when it is built; no Node.js
#
# Options (defaults in brackets):
#   --prefix DIR         installation prefix [/usr/local]
#   --sysconfdir DIR     configuration directory; `shifter` is built with DIR/udiRoot.conf baked in [/etc/shifter]
#   --gateway URL        the gateway udiRoot.conf points at (login, compute) [http://127.0.0.1:8000]
#   --system NAME        this system's name at the gateway [cluster]
#   --image-dir DIR      the shared image directory (imagePath; the gateway's delivery target) [/var/shifter/images]
#   --runtime-dir DIR    where the runtime mounts images (udiMount, loopMount) [/var/lib/shifter/runtime]
#   --state-dir DIR      gateway state: SQLite store, scratch (gateway) [/var/lib/shifter]
#   --cache-dir DIR      gateway blob cache (gateway) [/var/cache/shifter]
#   --unit-dir DIR       where the systemd units go (gateway) [/etc/systemd/system]
#   --user NAME          the gateway's service user (gateway) [shifter]
#   --image-writer NAME|UID  the account that owns the delivered images (udiRoot.conf imageWriter; login, compute):
#                        the gateway's service user or its transfer account [the --user, when it exists here]
#   --force-config       overwrite an existing udiRoot.conf / gateway.json (default: keep it)
#   --app-only           gateway: only the programs (shifter-gateway, shifterimg) under the prefix, no user, units
#                        or configuration (the container images are built this way, deploy/compose/)
#
# Everything installed is owned by root; `shifter` is 4755, udiRoot.conf 0644 (the runtime refuses a configuration
# not owned by root or writable by group/other). Re-running upgrades the files in place (temp file + rename).
# docs/install.md describes each node type; docs/upgrade.md the upgrade of a running site.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NATIVE=$ROOT/packages/udiroot-native/native

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
log() { printf 'install.sh: %s\n' "$*" >&2; }

(($# > 0)) || die "usage: install.sh gateway|login|compute [options] (--help)"
case $1 in
  -h|--help) sed -n '2,31p' "$0" | sed 's/^# \?//'; exit 0 ;;
  gateway|login|compute) NODE_TYPE=$1; shift ;;
  *) die "unknown node type $1 (gateway, login or compute)" ;;
esac

PREFIX=/usr/local SYSCONFDIR=/etc/shifter GATEWAY_URL=http://127.0.0.1:8000 SYSTEM=cluster
IMAGE_DIR=/var/shifter/images RUNTIME_DIR=/var/lib/shifter/runtime STATE_DIR=/var/lib/shifter
CACHE_DIR=/var/cache/shifter UNIT_DIR=/etc/systemd/system SERVICE_USER=shifter FORCE_CONFIG=0 APP_ONLY=0
while (($# > 0)); do
  case $1 in
    --prefix) PREFIX=$2; shift 2 ;;
    --sysconfdir) SYSCONFDIR=$2; shift 2 ;;
    --gateway) GATEWAY_URL=$2; shift 2 ;;
    --system) SYSTEM=$2; shift 2 ;;
    --image-dir) IMAGE_DIR=$2; shift 2 ;;
    --runtime-dir) RUNTIME_DIR=$2; shift 2 ;;
    --state-dir) STATE_DIR=$2; shift 2 ;;
    --cache-dir) CACHE_DIR=$2; shift 2 ;;
    --unit-dir) UNIT_DIR=$2; shift 2 ;;
    --user) SERVICE_USER=$2; shift 2 ;;
    --image-writer) IMAGE_WRITER=$2; shift 2 ;;
    --force-config) FORCE_CONFIG=1; shift ;;
    --app-only) APP_ONLY=1; shift ;;
    *) die "unknown option $1" ;;
  esac
done
for dir in PREFIX SYSCONFDIR IMAGE_DIR RUNTIME_DIR STATE_DIR CACHE_DIR UNIT_DIR; do
  [[ ${!dir} == /* ]] || die "--${dir,,} must be an absolute path (got ${!dir})"
done
[[ $(id -u) == 0 ]] || die "run as root: the runtime is installed setuid root"

# install_file MODE SRC DEST: root-owned, via a temp file and a rename (a running binary is never half-written).
install_file() {
  local mode=$1 src=$2 dest=$3 tmp
  install -d -o root -g root -m 0755 "$(dirname "$dest")"
  tmp=$(mktemp "$(dirname "$dest")/.install.XXXXXX")
  install -o root -g root -m "$mode" "$src" "$tmp"
  mv -f "$tmp" "$dest"
}

# write_config MODE DEST: stdin into DEST unless it exists (or --force-config).
write_config() {
  local mode=$1 dest=$2 tmp
  if [[ -e $dest && $FORCE_CONFIG == 0 ]]; then
    log "keeping the existing $dest (--force-config overwrites it)"
    cat >/dev/null
    return
  fi
  install -d -o root -g root -m 0755 "$(dirname "$dest")"
  tmp=$(mktemp "$(dirname "$dest")/.config.XXXXXX")
  cat >"$tmp"
  chown root:root "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
  log "wrote $dest"
}

BUILD=''
build_runtime() {
  BUILD=$(mktemp -d)
  log "building the udiRoot runtime for $SYSCONFDIR/udiRoot.conf"
  # `all` also builds the Slurm plugin where Slurm's headers are (libslurm-dev); the prefix is compiled into it
  # (it runs PREFIX/bin/shifter-lookup at submission and PREFIX/sbin/setupRoot in the prolog).
  make -s -C "$NATIVE" BUILD="$BUILD" CONFIG_FILE="$SYSCONFDIR/udiRoot.conf" PREFIX="$PREFIX" all >"$BUILD/make.log" 2>&1 || {
    cat "$BUILD/make.log" >&2
    die "building the runtime failed (gcc, make, libmunge-dev and libssl-dev are needed)"
  }
}
cleanup() { [[ -z $BUILD ]] || rm -rf "$BUILD"; }
trap cleanup EXIT

install_shifter() {
  install_file 4755 "$BUILD/shifter" "$PREFIX/bin/shifter"
  # The unprivileged submit-time lookup and validation of the Slurm plugin (docs/slurm.md).
  install_file 0755 "$BUILD/shifter-lookup" "$PREFIX/bin/shifter-lookup"
}

install_compute_tools() {
  install_file 0755 "$BUILD/setupRoot" "$PREFIX/sbin/setupRoot"
  install_file 0755 "$BUILD/unsetupRoot" "$PREFIX/sbin/unsetupRoot"
  local plugin found=0
  shopt -s nullglob
  for plugin in "$BUILD"/*.so; do
    install_file 0644 "$plugin" "$PREFIX/lib/shifter/$(basename "$plugin")"
    log "installed the Slurm plugin $PREFIX/lib/shifter/$(basename "$plugin") (add it to plugstack.conf, docs/install.md)"
    found=1
  done
  shopt -u nullglob
  ((found)) || log "no Slurm plugin built (needs libslurm-dev): skipped"
}

install_man_pages() {
  install_file 0644 "$ROOT/deploy/man/shifter.1" "$PREFIX/share/man/man1/shifter.1"
  install_file 0644 "$ROOT/deploy/man/shifterimg.1" "$PREFIX/share/man/man1/shifterimg.1"
  install_file 0644 "$ROOT/deploy/man/udiRoot.conf.5" "$PREFIX/share/man/man5/udiRoot.conf.5"
}

# shifterimg: the one bundled file, plus (for a configuration path other than the CLI's default) a two-line
# wrapper that sets SHIFTER_CONFIG.
install_shifterimg() {
  local bundle=$ROOT/packages/cli/dist/shifterimg.mjs
  [[ -f $bundle ]] || die "$bundle is missing: run \`npm run build\` first"
  install_file 0755 "$bundle" "$PREFIX/lib/shifter/shifterimg.mjs"
  local tmp
  install -d -o root -g root -m 0755 "$PREFIX/bin"
  tmp=$(mktemp "$PREFIX/bin/.install.XXXXXX")
  if [[ $SYSCONFDIR == /etc/shifter ]]; then
    rm -f "$tmp"
    ln -sfn ../lib/shifter/shifterimg.mjs "$tmp"
  else
    # shellcheck disable=SC2016 # ${SHIFTER_CONFIG:-…} and "$@" are for the installed wrapper, not this script
    printf '#!/bin/sh\nSHIFTER_CONFIG=${SHIFTER_CONFIG:-%s/udiRoot.conf} exec node %s "$@"\n' \
      "$SYSCONFDIR" "$PREFIX/lib/shifter/shifterimg.mjs" >"$tmp"
    chmod 0755 "$tmp"
  fi
  mv -Tf "$tmp" "$PREFIX/bin/shifterimg"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  ((major >= 20)) || log "WARNING: shifterimg needs Node.js >= 20 on PATH (found: ${major/#0/none})"
}

write_udiroot_conf() {
  install -d -o root -g root -m 0755 "$RUNTIME_DIR" "$RUNTIME_DIR/udiMount" "$RUNTIME_DIR/loopMount"
  # The runtime trusts image files owned by root or by this one account (the gateway writes them as its service
  # user): without it, images delivered by a non-root gateway are refused (exit 79).
  local writer=${IMAGE_WRITER:-}
  if [[ -z $writer ]] && id -u "$SERVICE_USER" >/dev/null 2>&1; then writer=$SERVICE_USER; fi
  [[ -n $writer ]] || log "no imageWriter: $SERVICE_USER is not a user here; images must be root's (or pass --image-writer UID)"
  write_config 0644 "$SYSCONFDIR/udiRoot.conf" <<EOF
# udiRoot.conf: the Shifter runtime's configuration (man 5 udiRoot.conf). Must stay owned by root, mode 0644.
system=$SYSTEM
imageGateway=$GATEWAY_URL
imagePath=$IMAGE_DIR
udiMount=$RUNTIME_DIR/udiMount
loopMount=$RUNTIME_DIR/loopMount
udiRootPath=$PREFIX
defaultImageType=docker
populateEtcDynamically=1
allowLibcPwdCalls=1
rootfsType=tmpfs
gatewayTimeout=30
${writer:+imageWriter=$writer}
EOF
}

# The gateway's Node service: its packages' dist and their production dependencies (no dev tools), under
# PREFIX/lib/shifter/gateway, run by PREFIX/bin/shifter-gateway.
install_gateway_service() {
  local app=$PREFIX/lib/shifter/gateway staging dep rel
  for pkg in core gateway; do
    [[ -f $ROOT/packages/$pkg/dist/index.js ]] || die "packages/$pkg/dist is missing: run \`npm run build\` first"
  done
  install -d -o root -g root -m 0755 "$PREFIX/lib/shifter"
  staging=$(mktemp -d "$PREFIX/lib/shifter/.gateway.XXXXXX")
  log "copying the gateway and its production dependencies"
  mkdir -p "$staging/node_modules/@shifter"
  # Production dependencies of the gateway and core, including core's optional store/queue drivers (mongodb,
  # ioredis, bullmq) but not its test-only peer vitest: each root package and everything it requires, transitively.
  # shellcheck disable=SC2016 # a Node program: $ is JavaScript, not shell
  (cd "$ROOT" && npm ls --all --long --json 2>/dev/null) | ROOT=$ROOT node -e '
    const root = process.env.ROOT;
    const manifest = (p) => JSON.parse(require("fs").readFileSync(`${root}/packages/${p}/package.json`, "utf8"));
    const names = new Set(["mongodb", "ioredis", "bullmq"]);
    for (const p of ["core", "gateway"]) for (const n of Object.keys(manifest(p).dependencies ?? {})) names.add(n);
    const byPath = new Map();
    const size = (d) => Object.keys(d?.dependencies ?? {}).length;
    const index = (deps) => {
      for (const dep of Object.values(deps ?? {})) {
        if (!dep.path) continue;
        if (!byPath.has(dep.path) || size(dep) > size(byPath.get(dep.path))) byPath.set(dep.path, dep);
        index(dep.dependencies);
      }
    };
    const out = new Set();
    const walk = (path) => {
      if (out.has(path)) return;
      out.add(path);
      for (const [name, dep] of Object.entries(byPath.get(path)?.dependencies ?? {})) if (name !== "vitest" && dep.path) walk(dep.path);
    };
    let input = "";
    process.stdin.on("data", (c) => (input += c)).on("end", () => {
      index(JSON.parse(input).dependencies);
      for (const name of names) if (!name.startsWith("@shifter/")) walk(`${root}/node_modules/${name}`);
      for (const path of [...out].sort()) console.log(path);
    });' |
    while read -r dep; do
      [[ $dep == "$ROOT"/node_modules/* ]] || continue
      rel=${dep#"$ROOT"/}
      [[ $rel == node_modules/@shifter/* ]] && continue
      mkdir -p "$staging/$(dirname "$rel")"
      cp -a "$dep" "$staging/$rel"
    done
  for pkg in core gateway; do
    mkdir -p "$staging/node_modules/@shifter/$pkg"
    cp -a "$ROOT/packages/$pkg/package.json" "$ROOT/packages/$pkg/dist" "$staging/node_modules/@shifter/$pkg/"
  done
  cp -a "$ROOT/packages/gateway/bin" "$staging/node_modules/@shifter/gateway/"
  if [[ -f $ROOT/packages/core/native/build/Release/shifter_munge.node ]]; then
    mkdir -p "$staging/node_modules/@shifter/core/native/build/Release"
    cp -a "$ROOT/packages/core/native/build/Release/shifter_munge.node" "$staging/node_modules/@shifter/core/native/build/Release/"
  fi
  chown -R root:root "$staging"
  chmod -R u=rwX,go=rX "$staging"
  chmod 0755 "$staging"
  rm -rf "$app.old"
  [[ ! -e $app ]] || mv "$app" "$app.old"
  mv "$staging" "$app"
  rm -rf "$app.old"
  local tmp
  install -d -o root -g root -m 0755 "$PREFIX/bin"
  tmp=$(mktemp "$PREFIX/bin/.install.XXXXXX")
  printf '#!/bin/sh\nexec node %s "$@"\n' "$app/node_modules/@shifter/gateway/bin/shifter-gateway.js" >"$tmp"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$PREFIX/bin/shifter-gateway"
}

ensure_service_user() {
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    log "creating the service user $SERVICE_USER"
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
      --comment 'Shifter image gateway' "$SERVICE_USER"
  fi
  # The munge socket must be reachable (it is world-connectable by default); image files the gateway writes are
  # owned by this user, private ones mode 0600 (the runtime opens them as root after its ACL check).
  install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0700 "$STATE_DIR" "$CACHE_DIR"
  install -d -o root -g root -m 0755 "$(dirname "$IMAGE_DIR")"
  install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0755 "$IMAGE_DIR"
}

write_gateway_config() {
  write_config 0644 "$SYSCONFDIR/gateway.json" <<EOF
{
  "gateway": { "host": "127.0.0.1", "port": 8000 },
  "storage": { "cacheDir": "$CACHE_DIR/blobs", "expandDir": "$STATE_DIR/expand" },
  "metadata": { "kind": "sqlite", "path": "$STATE_DIR/gateway.db" },
  "queue": { "kind": "in-process", "concurrency": 2 },
  "systems": {
    "$SYSTEM": { "transfer": { "kind": "local", "imageDir": "$IMAGE_DIR" }, "admins": ["root"] }
  }
}
EOF
}

# The units are templates: @PREFIX@, @SYSCONFDIR@, @STATEDIR@, @CACHEDIR@, @IMAGEDIR@ and @USER@ are this
# installation's.
install_units() {
  local unit tmp
  for unit in shifter-gateway.service shifter-worker@.service; do
    install -d -o root -g root -m 0755 "$UNIT_DIR"
    tmp=$(mktemp "$UNIT_DIR/.unit.XXXXXX")
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" -e "s|@STATEDIR@|$STATE_DIR|g" \
      -e "s|@CACHEDIR@|$CACHE_DIR|g" -e "s|@IMAGEDIR@|$IMAGE_DIR|g" -e "s|@USER@|$SERVICE_USER|g" \
      "$ROOT/deploy/systemd/$unit" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$UNIT_DIR/$unit"
  done
  log "units in $UNIT_DIR: systemctl daemon-reload && systemctl enable --now shifter-gateway"
}

case $NODE_TYPE in
  compute)
    build_runtime
    install_shifter
    install_compute_tools
    install_man_pages
    write_udiroot_conf
    ;;
  login)
    build_runtime
    install_shifter
    install_shifterimg
    install_man_pages
    write_udiroot_conf
    ;;
  gateway)
    # The service's tools: squashfs builders and munge (Debian packages squashfs-tools, squashfs-tools-ng, munge).
    if ((APP_ONLY == 0)); then
      for tool in mksquashfs tar2sqfs unsquashfs munge node; do
        command -v "$tool" >/dev/null || log "WARNING: $tool is not installed; the gateway needs it (docs/install.md)"
      done
    fi
    install_gateway_service
    install_shifterimg
    if ((APP_ONLY)); then log "gateway programs installed into $PREFIX"; exit 0; fi
    install_man_pages
    ensure_service_user
    write_gateway_config
    install_units
    ;;
esac
log "$NODE_TYPE node installed into $PREFIX (configuration: $SYSCONFDIR)"
