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

# Release mode: the numerical tests and the multi-rank training runs are an order of magnitude
# faster than in debug, and they test the code users run. -enable-testing keeps @testable.
swift build -c release -Xswiftc -enable-testing --build-tests
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
