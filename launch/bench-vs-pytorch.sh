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
size=${1:-64x128x128}; threads=${2:-2}; rounds=${3:-3}; extra=${4:-}
here=$(cd "$(dirname "$0")/.." && pwd)
dsan=${DSAN:-$here/.build/release/dsan}
cores=0-$((threads - 1))
reps=2; [[ $size == 138x256x256 ]] && reps=1
for round in $(seq 1 "$rounds"); do
    out=$(/usr/bin/time -v taskset -c "$cores" "$dsan" bench step --size "$size" --threads "$threads" \
        --repetitions "$reps" --json $extra 2>/tmp/bench-vs-pytorch.time)
    rss=$(awk '/Maximum resident/ {print $6 / 1048576}' /tmp/bench-vs-pytorch.time)
    echo "{\"round\": $round, \"tool\": \"dsan\", \"timeMaxRSSGiB\": $rss, \"bench\": $out}"
    if [[ -z $extra && $size != 138x256x256 ]]; then
        out=$(DSAN_SIMD=baseline taskset -c "$cores" "$dsan" bench step --size "$size" --threads "$threads" \
            --repetitions "$reps" --json)
        echo "{\"round\": $round, \"tool\": \"dsan DSAN_SIMD=baseline\", \"bench\": $out}"
    fi
    out=$(/usr/bin/time -v taskset -c "$cores" python3 "$here/launch/bench-pytorch.py" --size "$size" \
        --threads "$threads" --repetitions "$reps" $extra 2>/tmp/bench-vs-pytorch.time)
    rss=$(awk '/Maximum resident/ {print $6 / 1048576}' /tmp/bench-vs-pytorch.time)
    echo "{\"round\": $round, \"tool\": \"pytorch\", \"timeMaxRSSGiB\": $rss, \"bench\": $out}"
done
