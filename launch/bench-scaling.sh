#!/usr/bin/env bash
# Data-parallel scaling on this machine: the real trainer (`dsan train`) with 1 rank × 1 thread,
# 2 ranks × 1 thread, and two independent 1-rank runs at the same time (one per core, no
# communication: the ceiling the hardware allows when both cores work), in alternating rounds.
#
#   launch/bench-scaling.sh [--size DxHxW] [--width W] [--batch B] [--steps S] [--rounds N] [--out DIR]
#
# Every run trains S steps of global batch B on the same synthetic cohort and the same seed;
# step times come from rank 0's RUN/steps.jsonl ("seconds"), the first two steps (warm-up) are
# dropped, and each configuration's figure is the median over all its steps in all rounds.
# Prints cases per second and the speed-ups over 1 × 1. Needs the machine otherwise idle.
# Keeps each run's steps.jsonl and log in DIR (default /tmp/dsan-scaling), not its checkpoints.
# DSAN_BIN overrides the binary (default .build/release/dsan).
set -euo pipefail
cd "$(dirname "$0")/.."
DSAN_SCRIPT=launch/bench-scaling.sh
source launch/args.sh

size=64x128x128 width=64 batch=4 steps=6 rounds=3 out=/tmp/dsan-scaling
while [ $# -gt 0 ]; do
    case "$1" in
        --size) dsan_value "$1" $#; size="$2"; shift 2 ;;
        --width) dsan_value "$1" $#; width="$2"; shift 2 ;;
        --batch) dsan_value "$1" $#; batch="$2"; shift 2 ;;
        --steps) dsan_value "$1" $#; steps="$2"; shift 2 ;;
        --rounds) dsan_value "$1" $#; rounds="$2"; shift 2 ;;
        --out) dsan_value "$1" $#; out="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) dsan_usage_error "unknown option '$1' (see --help)" ;;
    esac
done
dsan_volume --size "$size"
for option in width batch steps rounds; do dsan_positive "--$option" "${!option}"; done
[ "$steps" -ge 3 ] || dsan_usage_error "--steps must be at least 3 (two are warm-up)"
dsan="${DSAN_BIN:-.build/release/dsan}"
[ -x "$dsan" ] || { echo "launch/bench-scaling.sh: $dsan not found; build with 'swift build -c release' or set DSAN_BIN" >&2; exit 1; }
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)

rm -rf "$out"
mkdir -p "$out"
"$dsan" synth --out "$out/data" --cases $(( batch * steps + batch )) --size "$size" --seed 3 >/dev/null
train=(train --data "$out/data" --width "$width" --batch "$batch" --steps "$steps" --shuffle off --seed 1)

# Step seconds after the warm-up steps, one per line.
step_times() { awk -F'"seconds":' 'NR > 2 { split($2, a, /[,}]/); print a[1] }' "$1/steps.jsonl"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }

echo "scaling: $size, width $width, global batch $batch, $steps steps × $rounds rounds; load $(cut -d' ' -f1 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
    OPENBLAS_NUM_THREADS=1 mpirun "${root[@]}" -np 1 --bind-to core -x OPENBLAS_NUM_THREADS \
        "$dsan" "${train[@]}" --out "$out/r$r-1x1" >"$out/r$r-1x1.log" 2>&1
    OPENBLAS_NUM_THREADS=1 mpirun "${root[@]}" -np 2 --bind-to core -x OPENBLAS_NUM_THREADS \
        "$dsan" "${train[@]}" --out "$out/r$r-2x1" >"$out/r$r-2x1.log" 2>&1
    # Two independent one-rank jobs, one per core, started together.
    for c in 0 1; do
        OPENBLAS_NUM_THREADS=1 taskset -c "$c" "$dsan" "${train[@]}" --out "$out/r$r-pair$c" >"$out/r$r-pair$c.log" 2>&1 &
    done
    wait
    # Only the step records are needed: drop the checkpoints (about 1 GB each at width 64).
    rm -f "$out/r$r-"*/*.h5
    echo "  round $r done (load $(cut -d' ' -f1 /proc/loadavg))"
done

t1=$(for r in $(seq 1 "$rounds"); do step_times "$out/r$r-1x1"; done | median)
t2=$(for r in $(seq 1 "$rounds"); do step_times "$out/r$r-2x1"; done | median)
tp=$(for r in $(seq 1 "$rounds"); do step_times "$out/r$r-pair0"; step_times "$out/r$r-pair1"; done | median)
awk -v b="$batch" -v t1="$t1" -v t2="$t2" -v tp="$tp" 'BEGIN {
    printf "%-44s %10s %10s %9s\n", "configuration", "step (s)", "cases/s", "speed-up"
    printf "%-44s %10.3f %10.2f %9s\n", "1 rank x 1 thread", t1, b / t1, "1"
    printf "%-44s %10.3f %10.2f %8.2fx\n", "2 ranks x 1 thread (data-parallel)", t2, b / t2, t1 / t2
    printf "%-44s %10.3f %10.2f %8.2fx\n", "2 independent 1-rank runs, one per core", tp, 2 * b / tp, 2 * t1 / tp
}'
echo "(median step time after 2 warm-up steps; independent runs: cases/s of both together)"
