#!/usr/bin/env bash
# Validation time per epoch with the forward passes shared by all ranks (`validation: shared`,
# the default) against rank 0 alone (`validation: rank0`), same job, alternating rounds.
#
#   launch/bench-validation.sh [--ranks R] [--size DxHxW] [--width W] [--val-cases N] [--rounds K] [--out DIR]
#
# Trains one short epoch (8 cases, batch 4) and validates on N cases with each mode under
# `mpirun -np R` (one core per rank); prints each run's validationSeconds from RUN/metrics.jsonl,
# the medians and their ratio (shared / rank0; 1/R is the ideal). DSAN_BIN overrides the binary
# (default .build/release/dsan). Keeps the logs in DIR (default /tmp/dsan-validation).
set -euo pipefail
cd "$(dirname "$0")/.."
DSAN_SCRIPT=launch/bench-validation.sh
source launch/args.sh

ranks=2 size=32x64x64 width=64 val=24 rounds=3 out=/tmp/dsan-validation
while [ $# -gt 0 ]; do
    case "$1" in
        --ranks) dsan_value "$1" $#; ranks="$2"; shift 2 ;;
        --size) dsan_value "$1" $#; size="$2"; shift 2 ;;
        --width) dsan_value "$1" $#; width="$2"; shift 2 ;;
        --val-cases) dsan_value "$1" $#; val="$2"; shift 2 ;;
        --rounds) dsan_value "$1" $#; rounds="$2"; shift 2 ;;
        --out) dsan_value "$1" $#; out="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) dsan_usage_error "unknown option '$1' (see --help)" ;;
    esac
done
dsan_volume --size "$size"
dsan_positive --ranks "$ranks"; dsan_positive --width "$width"; dsan_positive --val-cases "$val"; dsan_positive --rounds "$rounds"
dsan="${DSAN_BIN:-.build/release/dsan}"
[ -x "$dsan" ] || { echo "launch/bench-validation.sh: $dsan not found; build with 'swift build -c release' or set DSAN_BIN" >&2; exit 1; }
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
oversubscribe=()
[ "$ranks" -gt "$(nproc)" ] && oversubscribe=(--oversubscribe)

rm -rf "$out"
mkdir -p "$out"
"$dsan" synth --out "$out/train" --cases 8 --size "$size" --seed 3 >/dev/null
"$dsan" synth --out "$out/val" --cases "$val" --size "$size" --seed 4 >/dev/null
echo "validation: rank0" > "$out/rank0.yaml"
echo "validation: shared" > "$out/shared.yaml"

declare -A times
for round in $(seq 1 "$rounds"); do
    for mode in rank0 shared; do
        run="$out/$mode-$round"
        mpirun "${root[@]}" "${oversubscribe[@]}" -np "$ranks" "$dsan" train --data "$out/train" --val "$out/val" \
            --config "$out/$mode.yaml" --width "$width" --batch 4 --epochs 1 --seed 1 --out "$run" > "$run.log" 2>&1 \
            || { echo "launch/bench-validation.sh: the $mode run failed; see $run.log" >&2; exit 1; }
        t=$(python3 -c "import json; print(json.loads(open('$run/metrics.jsonl').readline())['validationSeconds'])")
        times[$mode]+="$t "
        echo "round $round  $mode  validation ${t} s"
    done
done
python3 - "${times[rank0]}" "${times[shared]}" "$ranks" <<'PY'
import statistics, sys
r0 = statistics.median(map(float, sys.argv[1].split()))
sh = statistics.median(map(float, sys.argv[2].split()))
print(f"median validation: rank0 {r0:.2f} s, shared {sh:.2f} s on {sys.argv[3]} ranks: shared / rank0 = {sh / r0:.2f}")
PY
