#!/usr/bin/env bash
# Pull → squashfs benchmark, cold: empty blob cache and dropped page cache before every run.
#   ours-tar2sqfs     @shifter/core pullImage with the default builder (registry → blob cache → layers merged in
#                     memory → one tar streamed into tar2sqfs), zstd level 3
#   ours-mksquashfs   the same with conversion.tool = mksquashfs (layers unpacked into a tree → mksquashfs)
#   skopeo+umoci+mksquashfs   `skopeo copy docker://… oci:DIR` + `umoci unpack` + `mksquashfs -comp zstd
#                     -Xcompression-level 3` (upstream Shifter's external pipeline, and Sarus')
# All contenders run in the same invocation, ROUNDS rounds interleaved; medians and ratios against the peer
# pipeline are printed. Node's peak RSS is the pullImage process's own (getrusage); child processes are reported
# separately (peak of the summed RSS of its descendants, polled every 50 ms).
#
#   bench/pull-convert/run.sh [REPO:TAG ...]    default: test/big:latest test/debian:latest on $SHIFTER_TEST_REGISTRY
#   ROUNDS=3 (default) SCRATCH=/var/tmp/shifter-bench-pull (default) DROP_CACHES=1 (default; needs root)
#   CONTENDERS="tar2sqfs peer mksquashfs" (default; drop mksquashfs for a quicker run)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
SCRATCH=${SCRATCH:-/var/tmp/shifter-bench-pull}
DROP_CACHES=${DROP_CACHES:-1}
CONTENDERS=${CONTENDERS:-tar2sqfs peer mksquashfs}
# shellcheck source=/dev/null  # written by scripts/test-harness.sh start
if [[ -z ${SHIFTER_TEST_REGISTRY:-} && -f $ROOT/.state/harness.env ]]; then source "$ROOT/.state/harness.env"; fi
: "${SHIFTER_TEST_REGISTRY:?start the harness (scripts/test-harness.sh start) or set SHIFTER_TEST_REGISTRY}"
images=("$@")
((${#images[@]} > 0)) || images=(test/big:latest test/debian:latest)
for tool in skopeo umoci mksquashfs tar2sqfs /usr/bin/time; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 69; }; done
mkdir -p "$SCRATCH" "$ROOT/bench/out"
# Our side runs as one bundled ES module (bench/lib/bundle.sh), as a production build would.
BUNDLE=$ROOT/bench/out/pull-once.mjs
bash "$ROOT/bench/lib/bundle.sh" "$ROOT/bench/pull-convert/pull-once.ts" "$BUNDLE"

cold() {
  rm -rf "$SCRATCH/cache" "$SCRATCH/out" "$SCRATCH/expand" "$SCRATCH/oci" "$SCRATCH/bundle" "$SCRATCH/peer.squashfs"
  mkdir -p "$SCRATCH/out" "$SCRATCH/expand"
  sync
  if [[ $DROP_CACHES == 1 ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

run_ours() { # tool
  cold
  local json fields wall rss
  # Wall time is the whole process (node start-up included), like the peer's tools.
  json=$(/usr/bin/time -f '%e %M' -o "$SCRATCH/t0" node "$BUNDLE" "$SHIFTER_TEST_REGISTRY/$image" "$SCRATCH/out" "$SCRATCH/cache" "$SCRATCH/expand" "$1")
  read -r wall rss <"$SCRATCH/t0"
  fields=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["nodeMaxRssMB"], d["childPeakRssMB"], d["squashfsBytes"])' "$json")
  echo "ours-$1 $wall $fields" >>"$results"
  echo "$json" >>"$SCRATCH/ours.jsonl"
}
run_peer() {
  cold
  /usr/bin/time -f '%e %M' -o "$SCRATCH/t1" skopeo copy --quiet --src-tls-verify=false "docker://$SHIFTER_TEST_REGISTRY/$image" "oci:$SCRATCH/oci:bench" >/dev/null
  /usr/bin/time -f '%e %M' -o "$SCRATCH/t2" umoci unpack --image "$SCRATCH/oci:bench" "$SCRATCH/bundle" >/dev/null
  /usr/bin/time -f '%e %M' -o "$SCRATCH/t3" mksquashfs "$SCRATCH/bundle/rootfs" "$SCRATCH/peer.squashfs" -noappend -all-root -no-xattrs \
    -comp zstd -Xcompression-level 3 -quiet -no-progress
  read -r w1 r1 <"$SCRATCH/t1"; read -r w2 r2 <"$SCRATCH/t2"; read -r w3 r3 <"$SCRATCH/t3"
  local rss=$r1; ((r2 > rss)) && rss=$r2; ((r3 > rss)) && rss=$r3
  echo "peer $(python3 -c "print(round($w1 + $w2 + $w3, 2))") - $((rss / 1024)) $(stat -c %s "$SCRATCH/peer.squashfs") $w1 $w2 $w3" >>"$results"
}

for image in "${images[@]}"; do
  results=$(mktemp)
  : >"$SCRATCH/ours.jsonl"
  for ((r = 1; r <= ROUNDS; r++)); do
    for contender in $CONTENDERS; do
      case $contender in
        peer) run_peer ;;
        mksquashfs | tar2sqfs) run_ours "$contender" ;;
        *) echo "unknown contender $contender" >&2; exit 64 ;;
      esac
    done
  done
  echo "== $image on $SHIFTER_TEST_REGISTRY  ($ROUNDS rounds, cold cache, page cache dropped=$DROP_CACHES, $(nproc) cores)"
  python3 - "$results" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    rows[parts[0]].append(parts[1:])
base = statistics.median(float(r[0]) for r in rows['peer'])
print(f"{'contender':26} {'wall s (median)':>15} {'ratio':>6} {'node RSS MB':>12} {'child RSS MB':>13} {'squashfs bytes':>15}  all walls")
for name, label in [('ours-mksquashfs', 'ours (mksquashfs)'), ('ours-tar2sqfs', 'ours (tar2sqfs)'), ('peer', 'skopeo+umoci+mksquashfs')]:
    r = rows[name]
    if not r: continue
    wall = statistics.median(float(x[0]) for x in r)
    node = max((x[1] for x in r), key=lambda v: -1 if v == '-' else int(v))
    child = max(int(x[2]) for x in r)
    extra = ''
    if name == 'peer':
        extra = '  (skopeo {:.2f} + umoci {:.2f} + mksquashfs {:.2f})'.format(*(statistics.median(float(x[i]) for x in r) for i in (4, 5, 6)))
    print(f"{label:26} {wall:15.2f} {wall / base:6.2f} {node:>12} {child:13d} {int(r[0][3]):15d}  {' '.join(x[0] for x in r)}{extra}")
PY
  echo "ours, per run: $(tr '\n' ' ' <"$SCRATCH/ours.jsonl")"
  rm -f "$results"
done
rm -rf "$SCRATCH"
