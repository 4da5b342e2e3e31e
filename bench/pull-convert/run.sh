#!/usr/bin/env bash
# Pull → squashfs benchmark, cold: empty blob cache and dropped page cache before every run. Contenders:
#   tar2sqfs          @shifter/core pullImage with the default builder (registry → blob cache → layers merged in
#                     memory → one tar streamed into tar2sqfs), zstd level 3
#   mksquashfs        the same with conversion.tool = mksquashfs (layers unpacked into a tree → mksquashfs)
#   gateway           an embedded gateway: `shifter-gateway serve --config FILE` (SQLite store, in-process queue, local
#                     transfer into an image directory, conversion on the gateway's defaults), started fresh for every
#                     run (not timed), timed from the POST of the pull to the first poll answering READY (re-POST every
#                     POLL_MS with a fresh munge credential, made ahead of the run) — what a user waits for
#   peer              `skopeo copy docker://… oci:DIR` + `umoci unpack` + `mksquashfs -comp zstd
#                     -Xcompression-level 3` (upstream Shifter's external pipeline, and Sarus')
# All contenders run in the same invocation, ROUNDS rounds interleaved; medians and ratios against the peer are
# printed. Node's peak RSS is the pullImage process's own (getrusage) or the gateway process's (VmHWM, start-up
# included); child processes are reported separately (peak of the summed RSS of its descendants, polled every 50 ms).
#
# Three parts, in this order:
#   1. loopback     every image × CONTENDERS straight from the harness registry.
#   2. throttled    THROTTLED_IMAGES × THROTTLED_CONTENDERS through bench/lib/throttle-proxy.mjs, a reverse proxy in
#                   front of the registry that limits the TOTAL throughput over all connections to THROTTLE_MBPS MB/s
#                   (one token bucket) and records every blob GET. Printed per contender: wall time, when the last
#                   byte left the proxy, wall − last byte (for the gateway: READY − last byte, the conversion time NOT
#                   hidden behind the download; target ≤ 1.5 s), and the peak of concurrent blob GETs.
#   3. layers       an image of LAYERS_COUNT small layers (LAYER_KB KiB of random bytes each; built once with umoci
#                   and pushed to the harness registry as test/layersN:<KB>k, reused while it is there) pulled through
#                   the gateway behind the proxy, once per entry of LAYERS_LIMITS: `default` (no
#                   limits.concurrentDownloads in the config; the documented default is 3) or a number (written as
#                   limits.concurrentDownloads). The peak of concurrent blob GETs should equal the limit. A gateway
#                   whose config schema does not know the key refuses to start: that case is reported and skipped.
# Targets are checked and printed as "target … met/NOT met"; the last line is "N passed, N failed" (targets met or
# not, and pulls that did not end READY). The exit status is 0 unless the script itself fails.
#
#   bench/pull-convert/run.sh [REPO:TAG ...]    default: $IMAGES or test/big:latest test/debian:latest on
#                                               $SHIFTER_TEST_REGISTRY
#   ROUNDS=3  SCRATCH=/var/tmp/shifter-bench-pull  DROP_CACHES=1 (needs root)
#   CONTENDERS="tar2sqfs peer mksquashfs gateway"  (loopback part; drop tar2sqfs/mksquashfs for a quicker run)
#   THROTTLE_MBPS=25 (0 skips part 2)  THROTTLED_IMAGES=test/debian:latest  THROTTLED_CONTENDERS="gateway peer"
#   LAYERS_LIMITS="default 6" ("" skips part 3)  LAYERS_COUNT=30  LAYER_KB=1024  LAYERS_MBPS=$THROTTLE_MBPS (25 if 0)
#   POLL_MS=25  GATEWAY_FROM=source (the checkout's TypeScript through tsx) | dist (packages/gateway/dist: build first)
#   GATEWAY_TOOL=  (unset: the gateway's default conversion.tool; or tar2sqfs / mksquashfs)
#   GATEWAY_ROOT=  the checkout whose gateway runs (default: this one; e.g. another worktree, to compare a branch)
# Example, gateway against the peer only, one round: ROUNDS=1 CONTENDERS="gateway peer" IMAGES=test/debian:latest \
#   bash scripts/test-harness.sh run bash bench/pull-convert/run.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
SCRATCH=${SCRATCH:-/var/tmp/shifter-bench-pull}
DROP_CACHES=${DROP_CACHES:-1}
CONTENDERS=${CONTENDERS:-tar2sqfs peer mksquashfs gateway}
THROTTLE_MBPS=${THROTTLE_MBPS:-25}
THROTTLED_IMAGES=${THROTTLED_IMAGES:-test/debian:latest}
THROTTLED_CONTENDERS=${THROTTLED_CONTENDERS:-gateway peer}
LAYERS_LIMITS=${LAYERS_LIMITS-default 6}
LAYERS_COUNT=${LAYERS_COUNT:-30}
LAYER_KB=${LAYER_KB:-1024}
LAYERS_MBPS=${LAYERS_MBPS:-$THROTTLE_MBPS}
[[ $LAYERS_MBPS == 0 ]] && LAYERS_MBPS=25
export POLL_MS=${POLL_MS:-25}
GATEWAY_FROM=${GATEWAY_FROM:-source}
GATEWAY_TOOL=${GATEWAY_TOOL:-}
DEFAULT_CONCURRENT_DOWNLOADS=3
# shellcheck source=/dev/null  # written by scripts/test-harness.sh start
if [[ -z ${SHIFTER_TEST_REGISTRY:-} && -f $ROOT/.state/harness.env ]]; then source "$ROOT/.state/harness.env"; fi
: "${SHIFTER_TEST_REGISTRY:?start the harness (scripts/test-harness.sh start) or set SHIFTER_TEST_REGISTRY}"
MUNGE_SOCKET=${SHIFTER_TEST_MUNGE_SOCKET:-/run/munge/munge.socket.2}
images=("$@")
if ((${#images[@]} == 0)); then read -r -a images <<<"${IMAGES:-test/big:latest test/debian:latest}"; fi
for tool in skopeo umoci mksquashfs tar2sqfs /usr/bin/time gcc curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 69; }
done
mkdir -p "$SCRATCH" "$ROOT/bench/out"
# Our library side runs as one bundled ES module (bench/lib/bundle.sh), as a production build would.
BUNDLE=$ROOT/bench/out/pull-once.mjs
if [[ " $CONTENDERS $THROTTLED_CONTENDERS " =~ \ (tar2sqfs|mksquashfs)\  ]]; then
  bash "$ROOT/bench/lib/bundle.sh" "$ROOT/bench/pull-convert/pull-once.ts" "$BUNDLE"
fi
# The gateway's polls need one munge credential each, made ahead of the run through libmunge.
GEN_CREDENTIALS=$ROOT/bench/out/gen-credentials
gcc -O2 -o "$GEN_CREDENTIALS" "$ROOT/bench/gateway/gen-credentials.c" -lmunge
GATEWAY_ROOT=${GATEWAY_ROOT:-$ROOT}
GATEWAY_CMD=(node "$GATEWAY_ROOT/packages/gateway/bin/shifter-gateway.js" serve)
GATEWAY_ENV=SHIFTER_GATEWAY_FROM_SOURCE=1
[[ $GATEWAY_FROM == dist ]] && GATEWAY_ENV=SHIFTER_GATEWAY_FROM_SOURCE=0

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
now() { echo "$EPOCHREALTIME"; }
CHECKS=$SCRATCH/checks
: >"$CHECKS"
check() { # pass|fail description
  echo "$1 $2" >>"$CHECKS"
  if [[ $1 == pass ]]; then echo "target met: $2"; else echo "target NOT met: $2"; fi
}

cold() {
  rm -rf "$SCRATCH/cache" "$SCRATCH/out" "$SCRATCH/expand" "$SCRATCH/oci" "$SCRATCH/bundle" "$SCRATCH/peer.squashfs"
  mkdir -p "$SCRATCH/out" "$SCRATCH/expand"
  sync
  if [[ $DROP_CACHES == 1 ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

# The throttling proxy (parts 2 and 3): started once, its rate set per part, its records reset per run.
PROXY=
start_proxy() {
  [[ -n $PROXY ]] && return
  node "$ROOT/bench/lib/throttle-proxy.mjs" --upstream "http://$SHIFTER_TEST_REGISTRY" --port 0 --mbps "$1" >"$SCRATCH/proxy.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    PROXY=$(sed -n 's/^LISTENING //p' "$SCRATCH/proxy.log")
    [[ -n $PROXY ]] && return
    sleep 0.1
  done
  echo "throttle proxy did not start:" >&2; cat "$SCRATCH/proxy.log" >&2; exit 1
}
proxy_rate() { curl -sf -X POST "$PROXY/__throttle/rate?mbps=$1" >/dev/null; }
proxy_reset() { curl -sf -X POST "$PROXY/__throttle/reset" >/dev/null; }
# After a run through the proxy: "<last byte s after START> <END − last byte s> <peak concurrent blob GETs> <blob GETs>"
proxy_summary() { # start end
  curl -sf "$PROXY/__throttle/stats" | python3 -c '
import json, sys
d = json.load(sys.stdin)
start, end, last = float(sys.argv[1]) * 1000, float(sys.argv[2]) * 1000, d["lastByteAt"]
print("%.2f %.2f %d %d" % ((last - start) / 1000, (end - last) / 1000, d["maxConcurrentBlobGets"], len(d["blobGets"])))' "$1" "$2"
}

# --- contenders; each appends one row to $results: "<name> <wall s> <field>…" -----------------------------------------
run_ours() { # tool registry
  cold
  local json fields wall rss start end
  start=$(now)
  # Wall time is the whole process (node start-up included), like the peer's tools.
  json=$(/usr/bin/time -f '%e %M' -o "$SCRATCH/t0" node "$BUNDLE" "$2/$image" "$SCRATCH/out" "$SCRATCH/cache" "$SCRATCH/expand" "$1")
  end=$(now)
  read -r wall rss <"$SCRATCH/t0"
  echo "$json" >>"$SCRATCH/ours.jsonl"
  if [[ $mode == loopback ]]; then
    fields=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["nodeMaxRssMB"], d["childPeakRssMB"], d["squashfsBytes"])' "$json")
    echo "ours-$1 $wall $fields" >>"$results"
  else
    echo "ours-$1 $wall $(proxy_summary "$start" "$end")" >>"$results"
  fi
}
run_peer() { # registry
  cold
  local start end
  start=$(now)
  /usr/bin/time -f '%e %M' -o "$SCRATCH/t1" skopeo copy --quiet --src-tls-verify=false "docker://$1/$image" "oci:$SCRATCH/oci:bench" >/dev/null
  /usr/bin/time -f '%e %M' -o "$SCRATCH/t2" umoci unpack --image "$SCRATCH/oci:bench" "$SCRATCH/bundle" >/dev/null
  /usr/bin/time -f '%e %M' -o "$SCRATCH/t3" mksquashfs "$SCRATCH/bundle/rootfs" "$SCRATCH/peer.squashfs" -noappend -all-root -no-xattrs \
    -comp zstd -Xcompression-level 3 -quiet -no-progress
  end=$(now)
  read -r w1 r1 <"$SCRATCH/t1"; read -r w2 r2 <"$SCRATCH/t2"; read -r w3 r3 <"$SCRATCH/t3"
  local rss=$r1; ((r2 > rss)) && rss=$r2; ((r3 > rss)) && rss=$r3
  local wall
  wall=$(python3 -c "print(round($w1 + $w2 + $w3, 2))")
  if [[ $mode == loopback ]]; then
    echo "peer $wall - $((rss / 1024)) $(stat -c %s "$SCRATCH/peer.squashfs") $w1 $w2 $w3" >>"$results"
  else
    echo "peer $wall $(proxy_summary "$start" "$end") $w1 $w2 $w3" >>"$results"
  fi
}

GATEWAY_PID='' GATEWAY_URL='' GATEWAY_REFUSED=0
start_gateway() { # registry-host [concurrentDownloads]; sets GATEWAY_URL, or GATEWAY_REFUSED=1 if the config is refused
  local dir=$SCRATCH/gateway port limits='' conversion=''
  port=$(free_port)
  rm -rf "$dir"; mkdir -p "$dir/images"
  [[ -n ${2:-} ]] && limits=", \"limits\": {\"concurrentDownloads\": $2}"
  [[ -n $GATEWAY_TOOL ]] && conversion=", \"conversion\": {\"tool\": \"$GATEWAY_TOOL\"}"
  cat >"$dir/config.json" <<JSON
{ "gateway": {"host": "127.0.0.1", "port": $port},
  "storage": {"cacheDir": "$dir/cache", "expandDir": "$dir/expand"},
  "systems": {"bench": {"transfer": {"kind": "local", "imageDir": "$dir/images"}, "mungeSocketPath": "$MUNGE_SOCKET"}},
  "allowedRegistries": ["$1"], "metadata": {"kind": "sqlite", "path": "$dir/gateway.db"}, "queue": {"kind": "in-process"},
  "logLevel": "warn"$limits$conversion }
JSON
  env "$GATEWAY_ENV" "${GATEWAY_CMD[@]}" --config "$dir/config.json" >"$dir/serve.log" 2>&1 &
  GATEWAY_PID=$!
  PIDS+=("$GATEWAY_PID")
  GATEWAY_URL='' GATEWAY_REFUSED=0
  for _ in $(seq 600); do
    if curl -sf -o /dev/null "http://127.0.0.1:$port/api/status"; then GATEWAY_URL=http://127.0.0.1:$port; return; fi
    if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
      wait "$GATEWAY_PID" || true
      if grep -q concurrentDownloads "$dir/serve.log"; then GATEWAY_REFUSED=1; return; fi
      echo "gateway did not start:" >&2; cat "$dir/serve.log" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "gateway did not answer within 60 s:" >&2; cat "$dir/serve.log" >&2; exit 1
}
stop_gateway() {
  kill "$GATEWAY_PID" 2>/dev/null || true
  wait "$GATEWAY_PID" 2>/dev/null || true
}
# Peak RSS (VmHWM) of the node process serving the gateway (with GATEWAY_FROM=source it is the launcher's child).
gateway_rss_mb() {
  local pid=$GATEWAY_PID child
  child=$(pgrep -P "$pid" -x node | head -1 || true)
  [[ -n $child ]] && pid=$child
  awk '/^VmHWM/ { printf "%d\n", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo -
}
# One cold pull through a fresh gateway; the driver's JSON line (plus RSS and squashfs size) goes to $SCRATCH/pull.json.
# Sets GATEWAY_REFUSED=1 (and pulls nothing) if the gateway refused the config.
gateway_pull() { # registry-host ref [concurrentDownloads] [proxy]
  start_gateway "$1" "${3:-}"
  ((GATEWAY_REFUSED == 0)) || return 0
  "$GEN_CREDENTIALS" 4000 "$MUNGE_SOCKET" >"$SCRATCH/gateway/credentials"
  cold
  local json rss sqfs
  json=$(node "$ROOT/bench/pull-convert/gateway-pull.mjs" "$GATEWAY_URL" bench "$2" "$SCRATCH/gateway/credentials" ${4:+"$4"})
  rss=$(gateway_rss_mb)
  stop_gateway
  if ! python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1])["status"] != "READY")' "$json"; then
    echo "gateway pull of $2 did not end READY: $json" >&2
    sed -n '1,40p' "$SCRATCH/gateway/serve.log" >&2
    echo "fail gateway pull of $2 ends READY" >>"$CHECKS"
  fi
  sqfs=$(find "$SCRATCH/gateway/images" -name '*.squashfs' -printf '%s\n' | head -1)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["gatewayRssMB"]=int(sys.argv[2]) if sys.argv[2].isdigit() else None; d["squashfsBytes"]=int(sys.argv[3] or 0); print(json.dumps(d))' \
    "$json" "$rss" "${sqfs:-0}" >"$SCRATCH/pull.json"
}
run_gateway() { # registry
  gateway_pull "$1" "$1/$image" "" "${PROXY_FOR_RUN:-}"
  cat "$SCRATCH/pull.json" >>"$SCRATCH/gateway.jsonl"
  if [[ $mode == loopback ]]; then
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("gateway", d["pullToReadyMs"] / 1000, d["gatewayRssMB"] or "-", "-", d["squashfsBytes"])' <"$SCRATCH/pull.json" >>"$results"
  else
    python3 -c 'import json,sys; d=json.load(sys.stdin); print("gateway", d["pullToReadyMs"] / 1000, d["lastByteMs"] / 1000, d["readyMinusLastByteMs"] / 1000, d["maxConcurrentBlobGets"], d["blobGets"])' <"$SCRATCH/pull.json" >>"$results"
  fi
}

run_rounds() { # registry contenders…
  local registry=$1
  shift
  results=$(mktemp)
  : >"$SCRATCH/ours.jsonl"
  : >"$SCRATCH/gateway.jsonl"
  for ((r = 1; r <= ROUNDS; r++)); do
    for contender in "$@"; do
      [[ $mode == throttled ]] && proxy_reset
      case $contender in
        peer) run_peer "$registry" ;;
        mksquashfs | tar2sqfs) run_ours "$contender" "$registry" ;;
        gateway) run_gateway "$registry" ;;
        *) echo "unknown contender $contender" >&2; exit 64 ;;
      esac
    done
  done
}

# --- 1. loopback --------------------------------------------------------------------------------------------------
mode=loopback
read -r -a contenders <<<"$CONTENDERS"
for image in "${images[@]}"; do
  ((${#contenders[@]} > 0)) || break
  PROXY_FOR_RUN='' run_rounds "$SHIFTER_TEST_REGISTRY" "${contenders[@]}"
  echo "== $image on $SHIFTER_TEST_REGISTRY  ($ROUNDS rounds, cold cache, page cache dropped=$DROP_CACHES, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
  python3 - "$results" "$image" "$CHECKS" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    rows[parts[0]].append(parts[1:])
base = statistics.median(float(r[0]) for r in rows['peer']) if rows['peer'] else None
num = lambda v: -1 if v == '-' else int(v)
print(f"{'contender':26} {'wall s (median)':>15} {'ratio':>6} {'node RSS MB':>12} {'child RSS MB':>13} {'squashfs bytes':>15}  all walls")
for name, label in [('gateway', 'gateway (pull → READY)'), ('ours-mksquashfs', 'ours (mksquashfs)'), ('ours-tar2sqfs', 'ours (tar2sqfs)'), ('peer', 'skopeo+umoci+mksquashfs')]:
    r = rows[name]
    if not r: continue
    wall = statistics.median(float(x[0]) for x in r)
    node = max((x[1] for x in r), key=num)
    child = max((x[2] for x in r), key=num)
    ratio = f"{wall / base:6.2f}" if base else '     -'
    extra = ''
    if name == 'peer':
        extra = '  (skopeo {:.2f} + umoci {:.2f} + mksquashfs {:.2f})'.format(*(statistics.median(float(x[i]) for x in r) for i in (4, 5, 6)))
    print(f"{label:26} {wall:15.2f} {ratio} {node:>12} {child:>13} {int(r[0][3]):15d}  {' '.join(x[0] for x in r)}{extra}")
if base and rows['gateway']:
    ratio = statistics.median(float(x[0]) for x in rows['gateway']) / base
    ok = ratio <= 0.25
    print(f"target {'met' if ok else 'NOT met'}: gateway pull → READY ≤ 0.25× the peer on loopback ({sys.argv[2]}: {ratio:.2f}×)")
    with open(sys.argv[3], 'a') as checks:
        print('pass' if ok else 'fail', f"loopback {sys.argv[2]}: gateway {ratio:.2f}x the peer (<= 0.25)", file=checks)
PY
  if [[ -s $SCRATCH/ours.jsonl ]]; then echo "ours, per run: $(tr '\n' ' ' <"$SCRATCH/ours.jsonl")"; fi
  if [[ -s $SCRATCH/gateway.jsonl ]]; then echo "gateway, per run: $(tr '\n' ' ' <"$SCRATCH/gateway.jsonl")"; fi
  rm -f "$results"
done

# --- 2. throttled -------------------------------------------------------------------------------------------------
mode=throttled
read -r -a contenders <<<"$THROTTLED_CONTENDERS"
if [[ $THROTTLE_MBPS != 0 ]] && ((${#contenders[@]} > 0)); then
  start_proxy "$THROTTLE_MBPS"
  proxy_rate "$THROTTLE_MBPS"
  proxy_host=${PROXY#http://}
  for image in $THROTTLED_IMAGES; do
    PROXY_FOR_RUN=$PROXY run_rounds "$proxy_host" "${contenders[@]}"
    echo "== $image through the throttle proxy at $THROTTLE_MBPS MB/s total ($proxy_host → $SHIFTER_TEST_REGISTRY; $ROUNDS rounds, cold, load $(cut -d' ' -f1-3 /proc/loadavg))"
    python3 - "$results" "$image" "$CHECKS" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    rows[parts[0]].append(parts[1:])
med = lambda r, i: statistics.median(float(x[i]) for x in r)
base = med(rows['peer'], 0) if rows['peer'] else None
print(f"{'contender':26} {'wall s (median)':>15} {'ratio':>6} {'last byte s':>12} {'end − last byte s':>18} {'max conc. GETs':>15}  all walls / all (end − last byte)")
for name, label in [('gateway', 'gateway (pull → READY)'), ('ours-mksquashfs', 'ours (mksquashfs)'), ('ours-tar2sqfs', 'ours (tar2sqfs)'), ('peer', 'skopeo+umoci+mksquashfs')]:
    r = rows[name]
    if not r: continue
    ratio = f"{med(r, 0) / base:6.2f}" if base else '     -'
    extra = ''
    if name == 'peer':
        extra = '  (skopeo {:.2f} + umoci {:.2f} + mksquashfs {:.2f})'.format(*(med(r, i) for i in (5, 6, 7)))
    print(f"{label:26} {med(r, 0):15.2f} {ratio} {med(r, 1):12.2f} {med(r, 2):18.2f} {max(int(x[3]) for x in r):15d}  "
          f"{' '.join(x[0] for x in r)} / {' '.join(x[2] for x in r)}{extra}")
if rows['gateway']:
    gap = med(rows['gateway'], 2)
    ok = gap <= 1.5
    print(f"target {'met' if ok else 'NOT met'}: gateway READY ≤ 1.5 s after the last byte ({sys.argv[2]}: {gap:.2f} s, median)")
    with open(sys.argv[3], 'a') as checks:
        print('pass' if ok else 'fail', f"throttled {sys.argv[2]}: READY {gap:.2f} s after the last byte (<= 1.5)", file=checks)
PY
    if [[ -s $SCRATCH/gateway.jsonl ]]; then echo "gateway, per run: $(tr '\n' ' ' <"$SCRATCH/gateway.jsonl")"; fi
    rm -f "$results"
  done
fi

# --- 3. many small layers -------------------------------------------------------------------------------------------
LAYERS_REF=test/layers$LAYERS_COUNT:${LAYER_KB}k
ensure_layers_image() {
  local repo=${LAYERS_REF%:*} tag=${LAYERS_REF##*:}
  if curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$SHIFTER_TEST_REGISTRY/v2/$repo/manifests/$tag"; then return; fi
  echo "building $LAYERS_REF ($LAYERS_COUNT layers of $LAYER_KB KiB) and pushing it to $SHIFTER_TEST_REGISTRY"
  local build=$SCRATCH/layers-build i
  rm -rf "$build"
  umoci init --layout "$build/oci"
  umoci new --image "$build/oci:$tag"
  umoci unpack --image "$build/oci:$tag" "$build/bundle" >/dev/null
  mkdir -p "$build/bundle/rootfs/data"
  for ((i = 1; i <= LAYERS_COUNT; i++)); do
    head -c $((LAYER_KB * 1024)) /dev/urandom >"$build/bundle/rootfs/data/layer-$i.bin"
    umoci repack --refresh-bundle --image "$build/oci:$tag" "$build/bundle" >/dev/null
  done
  skopeo copy --quiet --dest-tls-verify=false "oci:$build/oci:$tag" "docker://$SHIFTER_TEST_REGISTRY/$LAYERS_REF"
  rm -rf "$build"
}
if [[ -n ${LAYERS_LIMITS// /} ]]; then
  ensure_layers_image
  start_proxy "$LAYERS_MBPS"
  proxy_rate "$LAYERS_MBPS"
  proxy_host=${PROXY#http://}
  echo "== $LAYERS_REF ($LAYERS_COUNT layers of $LAYER_KB KiB) through the gateway behind the throttle proxy at $LAYERS_MBPS MB/s (cold, load $(cut -d' ' -f1-3 /proc/loadavg))"
  printf '%-32s %8s %15s %12s %18s %10s  %s\n' "limits.concurrentDownloads" expected "pull → READY s" "last byte s" "READY − last byte s" "blob GETs" "max concurrent blob GETs"
  for limit in $LAYERS_LIMITS; do
    setting='' expected=$limit label=$limit
    if [[ $limit == default ]]; then expected=$DEFAULT_CONCURRENT_DOWNLOADS label="(unset; default $DEFAULT_CONCURRENT_DOWNLOADS)"; else setting=$limit; fi
    gateway_pull "$proxy_host" "$proxy_host/$LAYERS_REF" "$setting" "$PROXY"
    if ((GATEWAY_REFUSED == 1)); then
      echo "limits.concurrentDownloads = $limit: this gateway's config schema does not know the key (it refused to start); skipped"
      echo "fail layers: limits.concurrentDownloads=$limit not supported by this gateway" >>"$CHECKS"
      continue
    fi
    cat "$SCRATCH/pull.json" >>"$SCRATCH/layers.jsonl"
    read -r ready last gap gets peak < <(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pullToReadyMs"]/1000, d["lastByteMs"]/1000, d["readyMinusLastByteMs"]/1000, d["blobGets"], d["maxConcurrentBlobGets"])' <"$SCRATCH/pull.json")
    printf '%-32s %8s %15s %12s %18s %10s  %s\n' "$label" "$expected" "$ready" "$last" "$gap" "$gets" "$peak"
    if [[ $peak == "$expected" ]]; then
      check pass "layers: at most $expected blob GETs at once with limits.concurrentDownloads $label (peak $peak)"
    else
      check fail "layers: at most $expected blob GETs at once with limits.concurrentDownloads $label (peak $peak)"
    fi
  done
  if [[ -s $SCRATCH/layers.jsonl ]]; then echo "layers, per run: $(tr '\n' ' ' <"$SCRATCH/layers.jsonl")"; fi
fi

passed=$(grep -c '^pass' "$CHECKS" || true)
failed=$(grep -c '^fail' "$CHECKS" || true)
rm -rf "$SCRATCH"
echo "$passed passed, $failed failed"
