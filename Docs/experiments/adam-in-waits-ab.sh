#!/bin/bash
# Alternates `dsan bench step --size 64x128x128` without and with DSAN_PROTO_ADAM (the throwaway
# prototype of adam-in-waits.patch: apply it, build, run this), pinned to cores 0..threads-1:
#   Docs/experiments/adam-in-waits-ab.sh THREADS PAIRS      (DSAN=path to pick another binary)
# Each line: pair, base|proto, step, forward, loss + backward, Adam seconds (medians of 3 steps).
# Docs/performance.md, "The ceiling the memory sets", has the results.
th=$1; n=$2; cpus=0-$((th-1)); bin=${DSAN:-.build/release/dsan}
for i in $(seq $n); do
  for m in base proto; do
    if [ $m = proto ]; then export DSAN_PROTO_ADAM=1; else unset DSAN_PROTO_ADAM; fi
    s=$(taskset -c $cpus $bin bench step --size 64x128x128 --threads $th --repetitions 3 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["stepSeconds"],4), round(d["forwardSeconds"],4), round(d["backwardSeconds"],4), round(d["optimizerSeconds"],4))')
    echo "$i $m $s"
  done
done
