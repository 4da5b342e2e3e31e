#!/usr/bin/env bash
# Conversion benchmark: OCI layout image → squashfs (zstd level 3) with
#   ours-mksquashfs   @shifter/core convertImage, tool mksquashfs (the default)
#   ours-tar2sqfs     @shifter/core convertImage, tool tar2sqfs (flattened tree streamed as one merged tar)
#   umoci+mksquashfs  `umoci unpack` + `mksquashfs` (the unpack+build half of upstream's external pipeline)
# measured in the same run, ROUNDS rounds interleaved, medians printed with ratios against umoci+mksquashfs.
# Blobs are read once before each run so every contender starts with a warm page cache.
#
#   bench/convert/run.sh [LAYOUT:TAG ...]     default: $SHIFTER_TEST_FIXTURES/{big,debian}:latest
#   ROUNDS=3 (default) SCRATCH=/var/tmp/shifter-bench (default) CONTENDERS="ours-mksquashfs umoci ours-tar2sqfs"
# "peak RSS" is the largest process of a contender (GNU time); "node RSS" is the Node process's own peak.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
SCRATCH=${SCRATCH:-/var/tmp/shifter-bench}
images=("$@")
if ((${#images[@]} == 0)); then
  : "${SHIFTER_TEST_FIXTURES:?set SHIFTER_TEST_FIXTURES or pass LAYOUT:TAG arguments}"
  images=("$SHIFTER_TEST_FIXTURES/big:latest" "$SHIFTER_TEST_FIXTURES/debian:latest")
fi
for tool in umoci mksquashfs tar2sqfs /usr/bin/time; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 69; }; done
mkdir -p "$SCRATCH"
# Bundle the driver (and @shifter/core from source) once, so the measured Node process is the product's code on
# plain node, without the tsx loader's own memory.
mkdir -p "$ROOT/bench/out"
# (--splitting: the library imports one module lazily; without it esbuild's lazy wrappers break the bundle.)
rm -rf "$ROOT/bench/out/convert"
"$ROOT/node_modules/.bin/esbuild" "$ROOT/bench/convert/convert-once.ts" --bundle --splitting --platform=node --format=esm \
  --target=node20 --conditions=@shifter/source --log-level=error --outdir="$ROOT/bench/out/convert" \
  --external:better-sqlite3 --external:mongodb --external:ioredis --external:bullmq --external:undici \
  --external:zod --external:tar-stream
DRIVER=(node "$ROOT/bench/out/convert/convert-once.js")

# run NAME CMD... → appends "NAME wall_s peak_rss_MB [node_rss_MB]" to $results
run_ours() { # tool
  local out=$SCRATCH/out-$1 exp=$SCRATCH/expand-$1 json
  rm -rf "$out" "$exp"; mkdir -p "$out" "$exp"
  json=$(/usr/bin/time -f '%e %M' -o "$SCRATCH/time" "${DRIVER[@]}" "$layout" "$tag" "$out" "$exp" "$1")
  read -r wall rss <"$SCRATCH/time"
  node_rss=$(sed -E 's/.*"maxRssMB":([0-9]+).*/\1/' <<<"$json")
  bytes=$(sed -E 's/.*"squashfsBytes":([0-9]+).*/\1/' <<<"$json")
  echo "ours-$1 $wall $((rss / 1024)) $node_rss $bytes" >>"$results"
  rm -rf "$out" "$exp"
}
run_umoci() {
  local bundle=$SCRATCH/bundle out=$SCRATCH/umoci.squashfs
  rm -rf "$bundle" "$out"
  /usr/bin/time -f '%e %M' -o "$SCRATCH/time1" umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
  /usr/bin/time -f '%e %M' -o "$SCRATCH/time2" mksquashfs "$bundle/rootfs" "$out" -noappend -all-root -no-xattrs \
    -comp zstd -Xcompression-level 3 -quiet -no-progress -mem 512M
  read -r w1 r1 <"$SCRATCH/time1"; read -r w2 r2 <"$SCRATCH/time2"
  local rss=$((r1 > r2 ? r1 : r2))
  echo "umoci+mksquashfs $(echo "$w1 + $w2" | bc) $((rss / 1024)) - $(stat -c %s "$out")" >>"$results"
  rm -rf "$bundle" "$out"
}

for image in "${images[@]}"; do
  layout=${image%:*} tag=${image##*:}
  [[ -d $layout ]] || { echo "no layout $layout" >&2; exit 66; }
  results=$(mktemp)
  for ((r = 1; r <= ROUNDS; r++)); do
    for contender in ${CONTENDERS:-ours-mksquashfs umoci ours-tar2sqfs}; do
      cat "$layout"/blobs/sha256/* >/dev/null
      case $contender in
        ours-mksquashfs) run_ours mksquashfs ;;
        ours-tar2sqfs) run_ours tar2sqfs ;;
        umoci) run_umoci ;;
      esac
    done
  done
  echo "== $(basename "$layout"):$tag  ($(du -sb "$layout/blobs" | cut -f1) bytes of blobs, $ROUNDS rounds, load $(cut -d' ' -f1-3 /proc/loadavg))"
  python3 - "$results" <<'PY'
import statistics, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, wall, rss, node, size = line.split()
    rows[name].append((float(wall), int(rss), node, int(size)))
base = statistics.median(w for w, *_ in rows['umoci+mksquashfs'])
print(f"{'contender':18} {'wall s (median)':>16} {'ratio':>6} {'peak RSS MB':>12} {'node RSS MB':>12} {'squashfs bytes':>15}  all walls")
for name in ['ours-mksquashfs', 'ours-tar2sqfs', 'umoci+mksquashfs']:
    r = rows.get(name)
    if not r: continue
    wall = statistics.median(w for w, *_ in r)
    print(f"{name:18} {wall:16.2f} {wall / base:6.2f} {max(x[1] for x in r):12d} {max((x[2] for x in r), key=lambda v: -1 if v == '-' else int(v)):>12} {r[0][3]:15d}  {' '.join(f'{w:.2f}' for w, *_ in r)}")
PY
  rm -f "$results"
done
