#!/usr/bin/env bash
# Launches `dsan train` under mpirun with the flags that matter on a cluster node or this machine.
#
#   launch/train.sh [-np RANKS] [--threads-per-rank T] [--oversubscribe] -- TRAIN ARGS…
#
# Each rank is bound to T cores (default: cores / ranks, at least 1) and runs T threads in its
# own loops and in OpenBLAS; dsan reads its CPU affinity, so binding is what sets the threads.
# As root it passes --allow-run-as-root (without it OpenMPI exits 0 having run nothing).
# --oversubscribe allows more ranks than cores (tests, debugging); never for real runs.
# DSAN_BIN overrides the binary (default .build/release/dsan, built when missing). Extra mpirun
# flags (a --hostfile for several hosts) go in MPIRUN_ARGS; the keepalive settings of
# launch/mpi-params.sh are always passed, so a lost host ends the job (Docs/launch.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/deps.sh
source launch/mpi-params.sh
DSAN_SCRIPT=launch/train.sh
source launch/args.sh

ranks=1 threads="" oversubscribe=()
while [ $# -gt 0 ]; do
    case "$1" in
        -np|--ranks) dsan_value "$1" $#; ranks="$2"; shift 2 ;;
        --threads-per-rank) dsan_value "$1" $#; threads="$2"; shift 2 ;;
        --oversubscribe) oversubscribe=(--oversubscribe); shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) dsan_usage_error "unknown option '$1' (train arguments go after --)" ;;
    esac
done
dsan_positive --ranks "$ranks"
[ -z "$threads" ] || dsan_positive --threads-per-rank "$threads"
cores=$(nproc)
if [ -z "$threads" ]; then threads=$(( cores / ranks )); [ "$threads" -ge 1 ] || threads=1; fi

dsan="${DSAN_BIN:-.build/release/dsan}"
if [ ! -x "$dsan" ]; then
    dsan_install_deps
    swift build -c release --product dsan
fi

root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
if [ "$ranks" -eq 1 ] && [ ${#oversubscribe[@]} -eq 0 ]; then
    binding=(--bind-to none)   # one rank: let it use every core
else
    binding=(--map-by "slot:PE=$threads" --bind-to core)
fi
[ ${#oversubscribe[@]} -gt 0 ] && binding=(--bind-to none)
export OPENBLAS_NUM_THREADS="$threads"
exec mpirun "${root[@]}" "${oversubscribe[@]}" -np "$ranks" "${binding[@]}" \
    "${DSAN_MPI_FAULT_PARAMS[@]}" ${MPIRUN_ARGS:-} -x OPENBLAS_NUM_THREADS "$dsan" train "$@"
