#!/usr/bin/env bash
# dsan against the PyTorch reference step (launch/bench-pytorch.py), alternating, same cores, same
# threads, in one run: the ratios in Docs/performance.md come from here.
#
#   launch/bench-vs-pytorch.sh [size] [threads] [rounds] [--inference]
#   launch/bench-vs-pytorch.sh 64x128x128 1 3
#   launch/bench-vs-pytorch.sh 138x256x256 2 1 --inference
#
# Both are pinned with taskset to cores 0..threads-1. OPENBLAS_CORETYPE is passed through as set
# (set it to SkylakeX on a CPU that Debian's OpenBLAS 0.3.21 does not know). Each round runs dsan,
# dsan with DSAN_SIMD=baseline (its elementwise kernels at SSE2 width; training below full size),
# then PyTorch. Each line is
# one JSON record; peak RSS of each process comes from /usr/bin/time -v.
set -euo pipefail
usage() { sed -n '5,7p' "$0" | sed 's/^# *//' >&2; exit 2; }
[[ ${1:-} == -h || ${1:-} == --help ]] && usage
(( $# <= 4 )) || { echo "bench-vs-pytorch.sh: at most 4 arguments, got $#" >&2; usage; }
size=${1:-64x128x128}; threads=${2:-2}; rounds=${3:-3}; extra=${4:-}
[[ $size =~ ^[1-9][0-9]*x[1-9][0-9]*x[1-9][0-9]*$ ]] || { echo "bench-vs-pytorch.sh: size must be DxHxW (e.g. 64x128x128), got '$size'" >&2; usage; }
[[ $threads =~ ^[1-9][0-9]*$ ]] || { echo "bench-vs-pytorch.sh: threads must be a positive integer, got '$threads'" >&2; usage; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench-vs-pytorch.sh: rounds must be a positive integer, got '$rounds'" >&2; usage; }
[[ -z $extra || $extra == --inference ]] || { echo "bench-vs-pytorch.sh: the fourth argument can only be --inference, got '$extra'" >&2; usage; }
cores_here=$(nproc)
(( threads <= cores_here )) || { echo "bench-vs-pytorch.sh: $threads threads but this process may use $cores_here cores (both tools are pinned to cores 0..threads-1)" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
dsan=${DSAN:-$here/.build/release/dsan}
[[ -x $dsan ]] || { echo "bench-vs-pytorch.sh: no dsan binary at $dsan: build it with 'swift build -c release' (or set DSAN=path)" >&2; exit 2; }
python3 -c 'import torch' 2>/dev/null || { echo "bench-vs-pytorch.sh: PyTorch is not installed for python3: pip install torch==2.13.0 (the CPU wheel; only to measure, never a dependency)" >&2; exit 2; }
timing=$(mktemp); trap 'rm -f "$timing"' EXIT
cores=0-$((threads - 1))
reps=2; [[ $size == 138x256x256 ]] && reps=1
for round in $(seq 1 "$rounds"); do
    out=$(/usr/bin/time -v taskset -c "$cores" "$dsan" bench step --size "$size" --threads "$threads" \
        --repetitions "$reps" --json $extra 2>"$timing")
    rss=$(awk '/Maximum resident/ {print $6 / 1048576}' "$timing")
    echo "{\"round\": $round, \"tool\": \"dsan\", \"timeMaxRSSGiB\": $rss, \"bench\": $out}"
    if [[ -z $extra && $size != 138x256x256 ]]; then
        out=$(DSAN_SIMD=baseline taskset -c "$cores" "$dsan" bench step --size "$size" --threads "$threads" \
            --repetitions "$reps" --json)
        echo "{\"round\": $round, \"tool\": \"dsan DSAN_SIMD=baseline\", \"bench\": $out}"
    fi
    out=$(/usr/bin/time -v taskset -c "$cores" python3 "$here/launch/bench-pytorch.py" --size "$size" \
        --threads "$threads" --repetitions "$reps" $extra 2>"$timing")
    rss=$(awk '/Maximum resident/ {print $6 / 1048576}' "$timing")
    echo "{\"round\": $round, \"tool\": \"pytorch\", \"timeMaxRSSGiB\": $rss, \"bench\": $out}"
done
