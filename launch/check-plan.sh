#!/usr/bin/env bash
# Checks `dsan plan` against measured step times (Docs/scaling.md, "Check against measurements").
#
#   launch/check-plan.sh [--part node|hosts|all] [--size DxHxW] [--width W] [--steps S] [--rounds N]
#                        [--rate 1gbit] [--out DIR]
#
# node:  the 16-core Xeon node of ../shared/measurements/xeon-16-core-node.md, section 2 (Prescott
#        kernels, 64x128x128, width 64, 2 cases per 2-thread rank, 1 per 1-thread rank). Nothing is
#        run: the profiles written here hold that file's calibration figures (the 1-rank steps,
#        the 8 independent jobs' 1.47×), `dsan plan --two-rank-step` fits the drift on the 2-rank
#        row, and the plan predicts R = 4, 8 and 16 from them.
# hosts: a 2-host × 1-rank training on this machine over TCP with every link limited to --rate
#        (launch/hosts.sh; 1gbit, the `--network 1gbe` preset), each rank pinned to a core of its
#        own, against a 1-rank run of the same global batch (its step calibrates the training
#        rate), in alternating rounds; `dsan plan --save-profile` measures this machine's
#        contention and drift (2 copies of its probe, 1 thread each) first, and `dsan bench
#        allreduce --save-network` the links after. Step = median of rank 0's steps.jsonl
#        "seconds" after 2 warm-up steps over all rounds. Needs root.
# Prints predicted against measured, with the error (predicted / measured − 1). DSAN_BIN overrides
# the binary (default .build/release/dsan). Keeps steps.jsonl and logs in DIR (default
# /tmp/dsan-check-plan), not checkpoints; the namespaces are removed by launch/hosts.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

part=all size=32x64x64 width=64 steps=6 rounds=2 rate=1gbit out=/tmp/dsan-check-plan
while [ $# -gt 0 ]; do
    case "$1" in
        --part) part="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --width) width="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "launch/check-plan.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
fail() { echo "launch/check-plan.sh: $*" >&2; exit 2; }
case "$part" in node|hosts|all) ;; *) fail "--part $part: give node, hosts or all" ;; esac
[ "$rate" = 1gbit ] || fail "--rate $rate: the planner's preset for the check is 1gbe; give 1gbit"
[[ "$steps" =~ ^[0-9]+$ ]] && [ "$steps" -ge 3 ] || fail "--steps must be at least 3 (two are warm-up)"
[[ "$rounds" =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] || fail "--rounds must be a positive integer"
command -v python3 >/dev/null || fail "python3 not found (it reads the plan's JSON)"
dsan="${DSAN_BIN:-$PWD/.build/release/dsan}"
[ -x "$dsan" ] || fail "$dsan not found; build with 'swift build -c release' or set DSAN_BIN"
mkdir -p "$out"

# The overlapped step of a `dsan plan --json`, and its drift.
field() { python3 -c "import json, sys; r = json.load(sys.stdin); print($1)"; }
row() { awk -v l="$1" -v p="$2" -v m="$3" -v note="$4" 'BEGIN {
    if (m == "") printf "| %-34s | %9.2f | %9s | %7s | %s\n", l, p, "", "", note
    else printf "| %-34s | %9.2f | %9.2f | %+6.1f%% | %s\n", l, p, m, 100 * (p / m - 1), note }'; }
header() { printf "| %-34s | %9s | %9s | %7s | %s\n" "configuration" "predicted" "measured" "error" "role"; }

if [ "$part" != hosts ]; then
    # ../shared/measurements/xeon-16-core-node.md: sgemm 34.5 GFLOP/s on 1 thread (Prescott;
    # 2 threads scaled linearly: --one-rank-step replaces the rate anyway), Adam 0.10 s at 1
    # thread and 0.06 s at 2 for 63.47 M parameters, 8 independent 2-thread jobs 5.77 s against
    # 3.93 s alone (1.468×). Shared-memory ring: bus bandwidth 1.7–2.9 GB/s (section 3): β 2 GB/s.
    cat > "$out/node-2t.json" <<'END'
{"machine": "16-core Intel Xeon node, OpenBLAS Prescott kernels", "date": "2026-11-30T00:00:00Z", "threads": 2,
 "sgemmGFLOPS": 69.0, "efficiency": 1, "adamSecondsPerMillionParameters": 0.000945,
 "contention": {"copies": 8, "threadsPerCopy": 2, "slowdown": 1.468}}
END
    cat > "$out/node-1t.json" <<'END'
{"machine": "16-core Intel Xeon node, OpenBLAS Prescott kernels", "date": "2026-11-30T00:00:00Z", "threads": 1,
 "sgemmGFLOPS": 34.5, "efficiency": 1, "adamSecondsPerMillionParameters": 0.001576,
 "contention": {"copies": 8, "threadsPerCopy": 2, "slowdown": 1.468}}
END
    common=(--size 64x128x128 --width 64 --ranks-per-node 16 --latency-us 1 --bandwidth-gbps 2 --json)
    plan2() { "$dsan" plan --threads-per-rank 2 --profile "$out/node-2t.json" --one-rank-step 3.93@2 "${common[@]}" "$@"; }
    cv=$(plan2 --ranks 2 --batch 4 --two-rank-step 4.88@4 | field 'r["driftCV"]')
    step() { field 'r["estimate"]["stepOverlapped"]'; }
    echo "16-core Xeon node (measurements file, section 2), 64x128x128, width 64; drift fitted on R = 2: cv $cv"
    header
    row "1 × 2 threads, batch 2"   "$(plan2 --ranks 1 --batch 2 | step)" 3.93 "calibration (--one-rank-step)"
    row "2 × 2 threads, batch 4"   "$(plan2 --ranks 2 --batch 4 --drift-cv "$cv" | step)" 4.88 "calibration (--two-rank-step)"
    row "4 × 2 threads, batch 8"   "$(plan2 --ranks 4 --batch 8 --drift-cv "$cv" | step)" 7.01 "prediction"
    row "8 × 2 threads, batch 16"  "$(plan2 --ranks 8 --batch 16 --drift-cv "$cv" | step)" 7.24 "prediction"
    row "1 × 1 thread, batch 1" \
        "$("$dsan" plan --threads-per-rank 1 --profile "$out/node-1t.json" --one-rank-step 4.75@1 --ranks 1 --batch 1 "${common[@]}" | step)" \
        4.75 "calibration (--one-rank-step)"
    row "16 × 1 thread, batch 16" \
        "$("$dsan" plan --threads-per-rank 1 --profile "$out/node-1t.json" --one-rank-step 4.75@1 --ranks 16 --batch 16 --drift-cv "$cv" "${common[@]}" | step)" \
        10.19 "prediction"
fi

if [ "$part" != node ]; then
    [ "$(id -u)" -eq 0 ] || fail "the hosts part needs root (launch/hosts.sh makes network namespaces); run --part node alone otherwise"
    command -v taskset >/dev/null || fail "taskset (util-linux) not found"
    [ "$(nproc)" -ge 2 ] || fail "the hosts part pins the two ranks to cores 0 and 1: this machine has $(nproc)"
    batch=2
    echo "2 hosts × 1 rank over TCP, links at $rate, against 1 rank; $size, width $width, global batch $batch, $steps steps × $rounds rounds; load $(cut -d' ' -f1 /proc/loadavg)"
    rm -rf "$out/data" "$out"/r*-1x1 "$out"/r*-2h
    "$dsan" synth --out "$out/data" --cases $(( batch * steps + batch )) --size "$size" --seed 3 >/dev/null
    train=(train --data "$out/data" --width "$width" --batch "$batch" --steps "$steps" --shuffle off --seed 1 --timeout 300)
    # This machine's contention and drift: 2 one-thread copies of the probe, each on its own core.
    "$dsan" plan --save-profile "$out/here.json" --threads-per-rank 1 --width "$width" --probe-size "$size" 2>"$out/probe.log" \
        || { cat "$out/probe.log" >&2; fail "dsan plan --save-profile failed"; }
    grep "probe step" "$out/probe.log" >&2 || true
    step_times() { awk -F'"seconds":' 'NR > 2 { split($2, a, /[,}]/); print a[1] }' "$1/steps.jsonl"; }
    median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }
    for r in $(seq 1 "$rounds"); do
        OPENBLAS_NUM_THREADS=1 taskset -c 0 "$dsan" "${train[@]}" --out "$out/r$r-1x1" >"$out/r$r-1x1.log" 2>&1 \
            || { tail -5 "$out/r$r-1x1.log" >&2; fail "the 1-rank run failed (log: $out/r$r-1x1.log)"; }
        # Each host's rank on a core of its own (the namespaces share this machine's cores).
        launch/hosts.sh --name "chk$$" --subnet 10.214.0 --hosts 2 --ranks-per-host 1 --rate "$rate" -- \
            bash -c 'exec taskset -c "$OMPI_COMM_WORLD_RANK" "$0" "$@"' "$dsan" "${train[@]}" --out "$out/r$r-2h" \
            >"$out/r$r-2h.log" 2>&1 || { tail -5 "$out/r$r-2h.log" >&2; fail "the 2-host run failed (log: $out/r$r-2h.log)"; }
        rm -f "$out/r$r-"*/*.h5
        echo "  round $r done (load $(cut -d' ' -f1 /proc/loadavg))"
    done
    t1=$(for r in $(seq 1 "$rounds"); do step_times "$out/r$r-1x1"; done | median)
    t2=$(for r in $(seq 1 "$rounds"); do step_times "$out/r$r-2h"; done | median)
    exposed=$(for r in $(seq 1 "$rounds"); do
        awk -F'"exposedAllreduceSeconds":' 'NR > 2 { split($2, a, /[,}]/); print a[1] }' "$out/r$r-2h/steps.jsonl"; done | median)
    bnwait=$(for r in $(seq 1 "$rounds"); do
        awk -F'"batchNormSyncSeconds":' 'NR > 2 { split($2, a, /[,}]/); print a[1] }' "$out/r$r-2h/steps.jsonl"; done | median)
    # The links as the model sees them, measured apart from training over the same limited links:
    # the ring's times at four sizes around a bucket's, a batch-norm-sized all-reduce idle and
    # while a bucket's ring runs (dsan bench allreduce --save-network).
    launch/hosts.sh --name "bw$$" --subnet 10.214.0 --hosts 2 --ranks-per-host 1 --rate "$rate" -- \
        bash -c 'exec taskset -c "$OMPI_COMM_WORLD_RANK" "$0" "$@"' "$dsan" bench allreduce --sizes 8,16,32,64 --repetitions 5 \
        --save-network "$out/network.json" >"$out/allreduce.log" 2>&1 \
        || { tail -5 "$out/allreduce.log" >&2; fail "dsan bench allreduce over the hosts failed (log: $out/allreduce.log)"; }
    grep -E '^(links|fitted|  its)' "$out/allreduce.log" >&2 || true
    # Both "hosts" share this machine's memory: 2 ranks per node for the contention term.
    plan=("$dsan" plan --ranks 2 --ranks-per-node 2 --threads-per-rank 1 --profile "$out/here.json" --size "$size"
          --width "$width" --batch "$batch" --one-rank-step "$t1@$batch" --json)
    json=$("${plan[@]}" --network 1gbe)
    jsonm=$("${plan[@]}" --network-profile "$out/network.json")
    echo "$json" > "$out/plan-2h-preset.json"
    echo "$jsonm" > "$out/plan-2h-measured.json"
    p2=$(echo "$json" | field 'r["estimate"]["stepOverlapped"]')
    pm=$(echo "$jsonm" | field 'r["estimate"]["stepOverlapped"]')
    # What the model says backward's batch-norm rounds wait (queueing behind buckets, the slowest
    # rank, the messages) and what the trainer recorded (rank 0's batchNormSyncSeconds).
    pbn=$(echo "$jsonm" | field 'r["estimate"]["step"]["queueWait"] + r["estimate"]["step"]["syncWait"] + r["estimate"]["step"]["syncCollectives"]')
    pe=$(echo "$jsonm" | field 'r["estimate"]["step"]["exposedOverlapped"]')
    echo "this machine ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores): $(echo "$json" | field 'r["profile"]["machine"]'); drift $(echo "$json" | field '"%.3f" % r["driftCV"]'), contention $(echo "$json" | field '"%.2f" % r["slowdown"]')×"
    header
    row "1 rank × 1 thread, batch $batch" "$t1" "$t1" "calibration (--one-rank-step)"
    row "2 hosts × 1 rank, $rate, batch $batch" "$p2" "$t2" "prediction, --network 1gbe (nominal)"
    row "2 hosts × 1 rank, measured links" "$pm" "$t2" "prediction, --network-profile"
    row "  of which batch-norm waits" "$pbn" "$bnwait" "prediction, --network-profile"
    row "  of which exposed all-reduce" "$pe" "$exposed" "prediction, --network-profile"
fi
