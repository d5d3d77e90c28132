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
here=$(cd "$(dirname "$0")/.." && pwd)
DSAN_SCRIPT=launch/bench-vs-pytorch.sh
source "$here/launch/args.sh"
if [[ ${1:-} == -h || ${1:-} == --help ]]; then sed -n '5,7p' "$0" | sed 's/^# *//'; exit 0; fi
(( $# <= 4 )) || dsan_usage_error "at most 4 arguments (size, threads, rounds, --inference), got $#"
size=${1:-64x128x128}; threads=${2:-2}; rounds=${3:-3}; extra=${4:-}
dsan_volume size "$size"; dsan_positive threads "$threads"; dsan_positive rounds "$rounds"
[[ -z $extra || $extra == --inference ]] || dsan_usage_error "the fourth argument can only be --inference, got '$extra'"
(( threads <= $(nproc) )) || dsan_usage_error "$threads threads but this process may use $(nproc) cores (both tools are pinned to cores 0..threads-1)"
dsan=${DSAN:-$here/.build/release/dsan}
[[ -x $dsan ]] || dsan_usage_error "no dsan binary at $dsan: build it with 'swift build -c release' (or set DSAN=path)"
python3 -c 'import torch' 2>/dev/null || dsan_usage_error "PyTorch is not installed for python3: pip install torch==2.13.0 (the CPU wheel; only to measure, never a dependency)"
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
