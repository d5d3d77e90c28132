#!/usr/bin/env bash
# Installs the Debian packages dsan needs when any is missing. Sourced by launch/test.sh and the
# other launch scripts; safe to run again (it does nothing when everything is present).
set -euo pipefail

DSAN_DEBIAN_PACKAGES=(libopenmpi-dev openmpi-bin libhdf5-dev libopenblas-dev pkg-config zlib1g-dev libpng-dev)

dsan_install_deps() {
    local missing=()
    for p in "${DSAN_DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "dsan: installing missing Debian packages: ${missing[*]}" >&2
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
            echo "dsan: not root and no sudo; install these packages and run again: ${missing[*]}" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# OpenMPI refuses to start as root unless told; without this mpirun prints a notice and exits 0
# having run nothing.
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

if [ "${BASH_SOURCE[0]}" = "$0" ]; then dsan_install_deps; fi
