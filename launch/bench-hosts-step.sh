#!/usr/bin/env bash
# Two dsan binaries' 2-host × 1-rank training steps over rate-limited links, alternating (as root):
# the before/after figures of a change to the communication (Docs/performance.md, "The ring's send
# window").
#
#   launch/bench-hosts-step.sh OLD_DSAN NEW_DSAN [--rounds 2] [--rate 1gbit] [--size 32x64x64]
#                              [--width 64] [--steps 6] [--out DIR]
#
# Each round trains each binary through launch/hosts.sh (2 network namespaces, one rank each,
# each rank pinned to its own core) on the same synthetic cohort, global batch 2, --shuffle off,
# and prints per binary the medians over the steps after two warm-up steps of steps.jsonl's step
# seconds, rank 0's batch-norm waits, the exposed all-reduce, and the losses (which must agree).
set -euo pipefail
cd "$(dirname "$0")/.."
DSAN_SCRIPT=launch/bench-hosts-step.sh
source launch/args.sh
fail() { dsan_usage_error "$@"; }
[ $# -ge 2 ] || fail "give two dsan binaries (see the header of this script)"
old=$1 new=$2; shift 2
rounds=2 rate=1gbit size=32x64x64 width=64 steps=6 out=/tmp/dsan-hosts-step
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) dsan_value "$1" $#; rounds="$2"; shift 2 ;;
        --rate) dsan_value "$1" $#; rate="$2"; shift 2 ;;
        --size) dsan_value "$1" $#; size="$2"; shift 2 ;;
        --width) dsan_value "$1" $#; width="$2"; shift 2 ;;
        --steps) dsan_value "$1" $#; steps="$2"; shift 2 ;;
        --out) dsan_value "$1" $#; out="$2"; shift 2 ;;
        *) fail "unknown option '$1'" ;;
    esac
done
for b in "$old" "$new"; do [ -x "$b" ] || fail "$b is not an executable"; done
[ "$(id -u)" -eq 0 ] || fail "needs root (launch/hosts.sh makes network namespaces)"
dsan_volume --size "$size"; dsan_positive --rounds "$rounds"; dsan_positive --width "$width"; dsan_positive --steps "$steps"
[ "$steps" -ge 3 ] || fail "--steps must be at least 3 (two are warm-up)"
mkdir -p "$out"
rm -rf "$out/data"
"$new" synth --out "$out/data" --cases $(( 2 * steps + 2 )) --size "$size" --seed 3 >/dev/null
for round in $(seq 1 "$rounds"); do
    for tag in old new; do
        b=$old; [ $tag = new ] && b=$new
        run="$out/$tag-$round"
        rm -rf "$run"
        launch/hosts.sh --name "hs$$$tag" --subnet 10.215.0 --hosts 2 --ranks-per-host 1 --rate "$rate" -- \
            bash -c 'exec taskset -c "$OMPI_COMM_WORLD_RANK" "$0" "$@"' "$b" train --data "$out/data" --width "$width" \
            --batch 2 --steps "$steps" --shuffle off --seed 1 --timeout 300 --out "$run" >"$run.log" 2>&1 \
            || { tail -5 "$run.log" >&2; fail "the $tag run of round $round failed (log: $run.log)"; }
        rm -f "$run"/*.h5
        python3 - "$run/steps.jsonl" "$tag" "$round" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, statistics as st, sys
rows = [json.loads(line) for line in open(sys.argv[1])][2:]
med = lambda k: st.median(r[k] for r in rows)
print("%s round %s (load %s): step %.3f s, rank 0 batch-norm waits %.3f s, exposed all-reduce %.3f s, losses %s"
      % (sys.argv[2], sys.argv[3], sys.argv[4], med("seconds"), med("batchNormSyncSeconds"),
         med("exposedAllreduceSeconds"), [round(r["loss"], 6) for r in rows]))
PY
    done
done
