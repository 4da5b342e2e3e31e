#!/usr/bin/env bash
# Gateway benchmark: authenticated lookups per second and p99 from a second process (wrk, one thread, pinned to core
# 1; the gateway on BENCH_SERVER_CPUS), every request with its own fresh munge credential generated ahead of the run; on the
# embedded store and (when the harness provides them) FerretDB + Redis; the same with upstream's way of checking
# credentials (one `unmunge` process per request) as the peer; and the wall time of 50 concurrent pulls of one tag
# (counting registry blob downloads and jobs). Needs root (munged) and `scripts/test-harness.sh start` for the pulls
# and the distributed backend. Results: bench/out/gateway.json and a summary on stdout; last line "N passed, N failed".
# Knobs: BENCH_LOOKUPS, BENCH_UNMUNGE_LOOKUPS, BENCH_CONNECTIONS, BENCH_BACKENDS ("embedded distributed"),
# BENCH_PULLS (1), BENCH_SERVER_CPUS (taskset list for the gateway, default 0; the load generator always gets core 1),
# BENCH_MUNGED_CPUS (taskset list munged's threads are moved to for the run and restored from afterwards; default:
# munged is left where it runs), BENCH_LOAD ("wrk", the default, with load-wrk.lua giving every request its own
# credential; "node" for load.mjs, a raw-socket HTTP/1.1 client with exact percentiles; "autocannon" for
# load-autocannon.mjs, the same measurement with about twice the client CPU per request).
# BENCH_DISTRIBUTED_STORE ("postgresql", the default: FerretDB on PostgreSQL, SHIFTER_TEST_MONGO_PG_URL; "sqlite":
# FerretDB on SQLite, SHIFTER_TEST_MONGO_URL), BENCH_INSTANCES (serve instances of the distributed backend, default 2:
# `shifter-gateway serve --processes N` on BENCH_SERVER_CPUS; the unmunge peer run uses one).
# BENCH_SEED_EXPIRATION_DAYS (seed.ts: 1 by default, so every image's first lookup also writes its expiration),
# BENCH_RATE (0: off; R: also measure each backend open-loop at R lookups/s with bench/gateway/load.mjs for
# BENCH_RATE_SECONDS (10) over BENCH_RATE_CONNECTIONS (64) connections, latency counted from when each request was
# due, after BENCH_WARMUP_S (2) seconds at that rate on fresh connections that are not counted; BENCH_SLOW_MS lists
# slower requests on stderr), BENCH_METRICS ("true", the default: lookups are recorded for /api/metrics; "false": the product default).
# The layout actually used is printed before the results.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/bench/out/gateway
mkdir -p "$OUT"
# shellcheck source=/dev/null  # written by scripts/test-harness.sh start
[[ -f $ROOT/.state/harness.env ]] && source "$ROOT/.state/harness.env"
LOOKUPS=${BENCH_LOOKUPS:-96000}
UNMUNGE_LOOKUPS=${BENCH_UNMUNGE_LOOKUPS:-2000}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
SOCKET=${SHIFTER_TEST_MUNGE_SOCKET:-/run/munge/munge.socket.2}
TSX=(node --conditions=@shifter/source --import tsx)
LOAD=wrk
INSTANCES=${BENCH_INSTANCES:-2}
RATE=${BENCH_RATE:-0} RATE_SECONDS=${BENCH_RATE_SECONDS:-10} RATE_CONNECTIONS=${BENCH_RATE_CONNECTIONS:-64}
RATE_WARMUP=${BENCH_WARMUP_S:-2}
case ${BENCH_DISTRIBUTED_STORE:-postgresql} in
  postgresql) MONGO_URL=${SHIFTER_TEST_MONGO_PG_URL:-} ;;
  sqlite) MONGO_URL=${SHIFTER_TEST_MONGO_URL:-} ;;
  *) echo "BENCH_DISTRIBUTED_STORE must be postgresql or sqlite" >&2; exit 64 ;;
esac
case ${BENCH_LOAD:-wrk} in
  wrk) command -v wrk >/dev/null || { echo "missing wrk (apt-get install wrk)" >&2; exit 69; } ;;
  node) LOAD=$ROOT/bench/gateway/load.mjs ;;
  autocannon) LOAD=$ROOT/bench/gateway/load-autocannon.mjs ;;
  *) echo "BENCH_LOAD must be wrk, node or autocannon" >&2; exit 64 ;;
esac
PIDS=()
MUNGED_AFFINITY=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for entry in "${MUNGED_AFFINITY[@]}"; do taskset -p "${entry#*=}" "${entry%%=*}" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
if [[ -n ${BENCH_MUNGED_CPUS:-} ]]; then
  for pid in $(pgrep -x munged); do
    for task in /proc/"$pid"/task/*; do
      tid=${task##*/}
      MUNGED_AFFINITY+=("$tid=$(taskset -p "$tid" | awk '{print $NF}')")
      taskset -p -c "$BENCH_MUNGED_CPUS" "$tid" >/dev/null
    done
  done
fi
echo "layout: gateway on cpus ${BENCH_SERVER_CPUS:-0}, load generator ($(basename "$LOAD"), $CONNECTIONS connections) on cpu 1, munged on cpus ${BENCH_MUNGED_CPUS:-"$(taskset -c -p "$(pgrep -x munged | head -1)" 2>/dev/null | awk '{print $NF}') (not moved)"}, UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE:-4 (default)}, $CONNECTIONS connections"

gcc -O2 -o "$OUT/gen-credentials" "$ROOT/bench/gateway/gen-credentials.c" -lmunge

port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

write_config() { # name kind
  local kind=$2 dir=$OUT/$1 p
  p=$(port)
  rm -rf "$dir"; mkdir -p "$dir/images"
  local metadata="{\"kind\":\"sqlite\",\"path\":\"$dir/gateway.db\"}" queue='{"kind":"in-process"}'
  if [[ $kind == distributed ]]; then
    metadata="{\"kind\":\"mongo\",\"url\":\"$MONGO_URL\",\"database\":\"bench$$\"}"
    queue="{\"kind\":\"redis\",\"url\":\"$SHIFTER_TEST_REDIS_URL\",\"prefix\":\"bench$$\"}"
  fi
  cat >"$dir/config.json" <<JSON
{ "gateway": {"host":"127.0.0.1","port":$p}, "storage": {"cacheDir":"$dir/cache","expandDir":"$dir/expand"},
  "systems": {"bench": {"transfer": {"kind":"local","imageDir":"$dir/images"}, "mungeSocketPath":"$SOCKET", "admins":["root"]}},
  "registries": {}, "allowedRegistries": "any", "metadata": $metadata, "queue": $queue, "metrics": ${BENCH_METRICS:-true}, "logLevel": "warn",
  "conversion": {"compression":"lz4"} }
JSON
  echo "$p"
}

start_gateway() { # dir verifier
  local log=$1/serve-$2.log
  taskset -c "${BENCH_SERVER_CPUS:-0}" "${TSX[@]}" "$ROOT/bench/gateway/serve-bench.ts" "$1/config.json" "$2" >"$log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 300); do grep -q '^READY' "$log" && return; sleep 0.1; done
  echo "gateway did not start:"; cat "$log"; exit 1
}
# The product's own multi-process serve (distributed backend): `shifter-gateway serve --processes N`.
start_cli_gateway() { # dir instances port
  local log=$1/serve-cli.log
  taskset -c "${BENCH_SERVER_CPUS:-0}" "${TSX[@]}" "$ROOT/packages/gateway/src/cli.ts" serve --config "$1/config.json" \
    --processes "$2" >"$log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$3/api/status" >/dev/null && return; sleep 0.1; done
  echo "gateway did not start:"; cat "$log"; exit 1
}
stop_gateway() { local pid=${PIDS[-1]}; kill "$pid"; wait "$pid" 2>/dev/null || true; unset 'PIDS[-1]'; }

load() { # url paths credentials seconds
  if [[ $LOAD == wrk ]]; then
    # wrk's own summary goes to stderr; the script's done() prints the JSON line on stdout.
    BENCH_PATHS=$2 BENCH_CREDENTIALS=$3 taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$4"s --timeout 10s -s "$ROOT/bench/gateway/load-wrk.lua" "$1" \
      | grep '^{' 
  else
    taskset -c 1 node "$LOAD" "$1" "$2" "$3" "$4" "$CONNECTIONS"
  fi
}

lookup_run() { # name verifier count
  local dir=$OUT/$1 url=http://127.0.0.1:$2
  "$OUT/gen-credentials" 500 "$SOCKET" >"$dir/warm.creds"
  load "$url" "$dir/paths" "$dir/warm.creds" 1 >/dev/null
  local t0=$SECONDS
  "$OUT/gen-credentials" "$4" "$SOCKET" >"$dir/$3.creds"
  echo "generated $4 credentials in $((SECONDS - t0)) s" >&2
  # wrk runs for a fixed time: long enough to be stable, short enough for the credentials to last at ~12k/s.
  local seconds=60
  [[ $LOAD == wrk ]] && seconds=$(( $4 / 12000 > 2 ? $4 / 12000 : 2 ))
  load "$url" "$dir/paths" "$dir/$3.creds" "$seconds"
}

RESULTS=()
passed=0 failed=0
for backend in ${BENCH_BACKENDS:-embedded distributed}; do
  if [[ $backend == distributed && ( -z $MONGO_URL || -z ${SHIFTER_TEST_REDIS_URL:-} ) ]]; then
    echo "distributed backend skipped: harness not running"; continue
  fi
  p=$(write_config "$backend" "$backend")
  seed=1000; [[ $backend == distributed ]] && seed=100   # FerretDB inserts are slow; lookups spread over 100 tags
  "${TSX[@]}" "$ROOT/bench/gateway/seed.ts" "$OUT/$backend/config.json" "$seed" "$OUT/$backend/paths"
  if [[ $backend == distributed ]]; then
    echo "distributed: FerretDB (${BENCH_DISTRIBUTED_STORE:-postgresql} backend) + Redis, $INSTANCES serve instances"
    start_cli_gateway "$OUT/$backend" "$INSTANCES" "$p"
  else
    start_gateway "$OUT/$backend" libmunge
  fi
  lib=$(lookup_run "$backend" "$p" libmunge "$LOOKUPS")
  rated=null
  if (( RATE > 0 )); then
    # Open loop at a fixed rate (load.mjs, BENCH_RATE): does the deployment sustain RATE/s, and with what p99?
    "$OUT/gen-credentials" $(( RATE * (RATE_SECONDS + RATE_WARMUP) + RATE )) "$SOCKET" >"$OUT/$backend/rate.creds"
    rated=$(BENCH_RATE=$RATE BENCH_WARMUP_S=$RATE_WARMUP taskset -c 1 node "$ROOT/bench/gateway/load.mjs" "http://127.0.0.1:$p" "$OUT/$backend/paths" \
      "$OUT/$backend/rate.creds" "$RATE_SECONDS" "$RATE_CONNECTIONS")
  fi
  stop_gateway
  start_gateway "$OUT/$backend" unmunge
  unm=$(lookup_run "$backend" "$p" unmunge "$UNMUNGE_LOOKUPS")
  stop_gateway
  echo "$backend libmunge: $lib"
  [[ $rated != null ]] && echo "$backend libmunge, open loop at $RATE/s: $rated"
  echo "$backend unmunge:  $unm"
  layout="{}"
  [[ $backend == distributed ]] && layout="{\"store\":\"ferretdb-${BENCH_DISTRIBUTED_STORE:-postgresql}\",\"instances\":$INSTANCES}"
  RESULTS+=("{\"backend\":\"$backend\",\"layout\":$layout,\"libmunge\":$lib,\"openLoop\":$rated,\"unmunge\":$unm}")
  if node -e "const r=$lib; process.exit(r.non2xx===0 && r.errors===0 ? 0 : 1)"; then passed=$((passed+1)); else failed=$((failed+1)); fi
done

if [[ -n ${SHIFTER_TEST_REGISTRY:-} && ${BENCH_PULLS:-1} == 1 ]]; then
  p=$(write_config pulls embedded)
  start_gateway "$OUT/pulls" libmunge
  log=$ROOT/.state/logs/registry-plain.log
  repo=test/big
  curl -s "http://$SHIFTER_TEST_REGISTRY/v2/_catalog" | grep -q '"test/big"' || repo=test/weird
  echo "pulling $repo"
  before=$(grep -c "GET /v2/$repo/blobs/" "$log" || true)
  pulls=$("${TSX[@]}" "$ROOT/bench/gateway/pulls.ts" "http://127.0.0.1:$p" bench "$SHIFTER_TEST_REGISTRY/$repo:latest" 50)
  after=$(grep -c "GET /v2/$repo/blobs/" "$log" || true)
  stop_gateway
  layers=$(find "$SHIFTER_TEST_FIXTURES/${repo#test/}/blobs/sha256" -mindepth 1 -maxdepth 1 | wc -l)
  jobs=$(node -e "const D=require('$ROOT/node_modules/better-sqlite3');const d=new D('$OUT/pulls/gateway.db',{readonly:true});console.log(d.prepare(\"select count(*) c from jobs where kind='pull'\").get().c)")
  echo "50 concurrent pulls: $pulls; registry blob GETs: $((after - before)) (blobs in the fixture layout: $layers); pull jobs: $jobs"
  RESULTS+=("{\"pulls\":$pulls,\"blobGets\":$((after - before)),\"pullJobs\":$jobs}")
  if [[ $jobs == 1 ]] && node -e "process.exit(($pulls).status==='READY'?0:1)"; then passed=$((passed+1)); else failed=$((failed+1)); fi
fi
printf '[%s]\n' "$(IFS=,; echo "${RESULTS[*]}")" >"$OUT/gateway.json"
echo "$passed passed, $failed failed"
