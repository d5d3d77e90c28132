#!/usr/bin/env bash
# mpirun's remote-launch agent for launch/hosts.sh, in the place of ssh: mpirun calls it as
# `netns-agent.sh [options] HOST COMMAND…` and it runs COMMAND with sh in the namespace of HOST
# (address SUBNET.i → namespace NAME-hi; SUBNET, NAME and the check interval come from
# DSAN_HOSTS_SUBNET, DSAN_HOSTS_NAME and DSAN_HOSTS_ALIVE, exported by launch/hosts.sh).
#
# It stays the parent of that host's daemon (orted), as ssh does, and like ssh with
# `-o ServerAliveInterval=S -o ServerAliveCountMax=3` it checks every S seconds that HOST still
# answers over the network (a TCP connection attempt to a closed port, which a live host refuses at
# once). After 3 unanswered checks in a row it names the host on stderr, once: OpenMPI's own
# messages during an abort do not say which host went away. Ending the job is left to OpenMPI
# (TCP keepalive and retransmission limits, see launch/mpi-params.sh), so a slow answer on a
# loaded machine costs nothing but a line.
set -uo pipefail
while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done
host="${1:?netns-agent.sh: no host given}"; shift
subnet="${DSAN_HOSTS_SUBNET:?netns-agent.sh: DSAN_HOSTS_SUBNET is not set (run through launch/hosts.sh)}"
name="${DSAN_HOSTS_NAME:?netns-agent.sh: DSAN_HOSTS_NAME is not set (run through launch/hosts.sh)}"
alive="${DSAN_HOSTS_ALIVE:-3}"
case "$host" in
    "$subnet".*) i="${host##*.}" ;;
    *) echo "netns-agent.sh: unknown host '$host' (expected $subnet.N)" >&2; exit 255 ;;
esac
ns="$name-h$i"

ip netns exec "$ns" /bin/sh -c "$*" &
child=$!

answers() {
    local e
    e=$(timeout "$alive" bash -c "exec 3<>/dev/tcp/$host/1" 2>&1) && return 0
    case "$e" in *refused*) return 0 ;; *) return 1 ;; esac
}

misses=0 reported=""
while kill -0 "$child" 2>/dev/null; do
    for ((k = 0; k < 2 * alive; k++)); do kill -0 "$child" 2>/dev/null || break 2; sleep 0.5; done
    if answers; then misses=0; else misses=$((misses + 1)); fi
    if [ "$misses" -ge 3 ] && [ -z "$reported" ]; then
        echo "launch/hosts.sh: host $i ($host) has not answered for $((3 * alive)) s: its link is down or the host is gone" >&2
        reported=1
    fi
done
wait "$child"
