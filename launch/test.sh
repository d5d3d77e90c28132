#!/usr/bin/env bash
# Runs every dsan test: installs missing Debian packages, builds in release mode with testing
# enabled, and runs `swift test` — which includes the multi-rank tests that launch mpirun with
# 1, 2 and 3 ranks and check that every rank reported. Usage: launch/test.sh [swift test args…]
set -euo pipefail
cd "$(dirname "$0")/.."
source launch/deps.sh
dsan_install_deps

for tool in swift mpirun pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || { echo "dsan: '$tool' not found on PATH" >&2; exit 1; }
done

# h5py checks the shard format against the real outside tool (DESIGN.md §7); the tests that need
# it are reported as skipped when it cannot be installed.
if command -v python3 >/dev/null 2>&1 && ! python3 -c "import h5py, numpy" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore h5py numpy \
        || echo "dsan: could not install h5py; the h5py interoperability tests will be skipped" >&2
fi

# Release mode: the numerical tests and the multi-rank training runs are an order of magnitude
# faster than in debug, and they test the code users run. -enable-testing keeps @testable.
swift build -c release -Xswiftc -enable-testing --build-tests
# Gradients marked zero without being written (Tensor.zeroLazily) hold NaN in the tests, so a
# kernel that adds into one without taking the mark poisons its result and a test fails.
export DSAN_POISON_LAZY_ZEROS=1
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
