#!/usr/bin/env bash
# Memory and time of a conversion against the number of names in the image: single-layer images of N small files
# (100 per directory), converted with the default builder (layers merged in memory, tar2sqfs) and, past
# conversion.maxInMemoryNames, unpacked on disk. Prints one line per run: names, path taken, wall s, Node peak RSS.
#   bench/pull-convert/many-names.sh [N ...]     default: 10000 100000 150000
#   MAX_NAMES="120000" (the default cap; several values compare caps)  SCRATCH=/var/tmp/shifter-bench-names
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCRATCH=${SCRATCH:-/var/tmp/shifter-bench-names}
MAX_NAMES=${MAX_NAMES:-120000}
sizes=("$@")
((${#sizes[@]} > 0)) || sizes=(10000 100000 150000)
mkdir -p "$SCRATCH" "$ROOT/bench/out"
BUNDLE=$ROOT/bench/out/convert-names.mjs
bash "$ROOT/bench/lib/bundle.sh" "$ROOT/bench/pull-convert/convert-names.ts" "$BUNDLE"
printf '%-10s %-8s %-9s %8s %14s\n' names cap method 'wall s' 'node RSS MB'
for n in "${sizes[@]}"; do
  layer=$SCRATCH/names-$n.tar.gz
  [[ -f $layer ]] || python3 - "$n" "$layer" <<'PY'
import gzip, io, sys, tarfile
n, path = int(sys.argv[1]), sys.argv[2]
with gzip.open(path, 'wb', compresslevel=1) as gz, tarfile.open(fileobj=gz, mode='w|', format=tarfile.PAX_FORMAT) as tar:
    for d in range(n // 100):
        info = tarfile.TarInfo(f'usr/share/doc/package-{d}'); info.type = tarfile.DIRTYPE; info.mode = 0o755; tar.addfile(info)
        for f in range(99):
            data = f'{d}-{f}\n'.encode()
            info = tarfile.TarInfo(f'usr/share/doc/package-{d}/file-{f}.txt'); info.size = len(data); info.mode = 0o644; info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
PY
  for cap in $MAX_NAMES; do
    rm -rf "$SCRATCH/out" "$SCRATCH/expand"; mkdir -p "$SCRATCH/out"
    json=$(node "$BUNDLE" "$layer" "$SCRATCH/out" "$SCRATCH/expand" "$cap")
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("%-10s %-8s %-9s %8.2f %14s" % (d["entries"], sys.argv[2], d["method"], d["wallMs"] / 1000, d["nodeMaxRssMB"]))' "$json" "$cap"
  done
done
