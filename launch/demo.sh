#!/usr/bin/env bash
# The end-to-end demo: installs what is missing, builds dsan in release mode, synthesises a
# cohort and a separate test set, runs a 2-fold cross-validation of the uniform (US) and
# size-balanced (SS) models with their dual-sampling ensemble (DS) under `mpirun -np 2`,
# evaluates every fold's models on the test set, writes the HTML report, and prints the
# headline metrics. About 10 minutes on an idle 2-core machine from a fresh clone (see README).
#
#   launch/demo.sh [OUT]        (default OUT: demo)
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/deps.sh
out="${1:-demo}"
dsan_install_deps
echo "== building dsan (release)"
swift build -c release --product dsan 2>&1 | grep -E "error|warning: unre|Compiling dsan|Build complete" || true
dsan=.build/release/dsan
[ -x "$dsan" ] || { echo "demo: the build failed" >&2; exit 1; }

ranks=2
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
# Two ranks on two cores, one thread each; --oversubscribe only when this machine has fewer.
over=()
[ "$(nproc)" -lt "$ranks" ] && over=(--oversubscribe)

echo "== synthesising the cohort and a separate test set in $out/data"
rm -rf "$out"
cases=600 test_cases=200
"$dsan" synth --out "$out/data/all" --cases $cases --size 32x64x64 --seed 11 --shard-size 50
"$dsan" synth --out "$out/data/test" --cases $test_cases --size 32x64x64 --seed 12 --prefix test --shard-size 50
"$dsan" inspect "$out/data/all" --no-histogram | tail -n 1

echo "== 2-fold cross-validation: US, SS and their ensemble, on $ranks MPI ranks"
mpirun "${root[@]}" "${over[@]}" -np "$ranks" --bind-to core "$dsan" cv \
    --data "$out/data/all" --test "$out/data/test" --out "$out/cv" --config configs/demo.yaml

echo "== report"
report="$out/cv/report.html"
"$dsan" report "$out/cv" --out "$report"

echo "== headline: test set ($test_cases cases), mean ± sd of the 2 fold models"
grep -E "^\| (AUC|Accuracy|Sensitivity|Specificity|F1-score) \| Attention RN34 \+ DS" "$out/cv/tables/table2.md" \
    | awk -F'|' '{gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $5); printf "  ensemble %-12s %s\n", $2, $5}'
echo "tables:  $out/cv/tables/table2.md, table3.md"
echo "report:  $report"
echo "demo took $((SECONDS / 60)) min $((SECONDS % 60)) s"
