#!/usr/bin/env bash
# Runs an MPI job across N "hosts" on this machine: N network namespaces joined by veth pairs and
# a bridge, each with its own address, mpirun over TCP between them (root only).
#
#   launch/hosts.sh [--hosts N] [--ranks-per-host R] [--rate RATE] [--subnet A.B.C] [--name NAME]
#                   [--tcp-retries K] [--alive S] [--grace G] [--mpirun-arg ARG]… -- COMMAND…
#
# Host i (1…N) is namespace NAME-hi with address A.B.C.i/24 on interface eth0 (loopback up too);
# its link is the veth pair NAMEvi (root side, a port of bridge NAMEbr) ↔ eth0. mpirun runs on
# host 1; the other hosts' daemons (orted) are started by launch/netns-agent.sh with `ip netns
# exec` instead of ssh. Cut a host's link with `ip link set NAMEvi down`. --rate limits every
# link in both directions with a token bucket (`tc … tbf`, e.g. 1gbit or 10gbit, stand-ins for
# Ethernet). Each namespace's net.ipv4.tcp_retries2 is K (default 5: a lost peer is given up after
# ~13 s, not ~15 min; see launch/mpi-params.sh); the agent checks every S seconds (default 3) that
# its host answers and names it when it stops. COMMAND starting with `dsan` runs DSAN_BIN
# (default .build/release/dsan, built when missing). Defaults: 2 hosts, 1 rank per host, subnet
# 10.213.0, NAME dsan<pid> (at most 11 characters). Everything created here (namespaces, bridge,
# veths, temporary files, processes) is removed on exit, also on failure or a signal; processes
# still alive in a namespace G s (default 60) after mpirun returned are named on stderr, then
# killed.
# Exit status: mpirun's.
set -euo pipefail
# A program that starts this script from a thread with signals blocked (Foundation's Process does,
# from a Dispatch thread) passes the mask on: SIGTERM would stay pending, and neither the cleanup
# below nor mpirun would ever see it. Start again with every signal unblocked and at its default.
if [ -z "${DSAN_HOSTS_SIGNALS_RESET:-}" ] && ! grep -q '^SigBlk:[[:space:]]*0*$' /proc/$$/status; then
    export DSAN_HOSTS_SIGNALS_RESET=1
    exec perl -MPOSIX -e '$SIG{$_} = "DEFAULT" for qw(TERM INT HUP PIPE);
        sigprocmask(SIG_SETMASK, POSIX::SigSet->new) or die "sigprocmask: $!\n";
        exec @ARGV or die "launch/hosts.sh: cannot run $ARGV[0]: $!\n"' -- "$0" "$@"
fi
cd "$(dirname "$0")/.."
source launch/deps.sh

hosts=2 per_host=1 alive=3 grace=60 tcp_retries=5 rate="" subnet=10.213.0 name="dsan$$" extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) hosts="$2"; shift 2 ;;
        --ranks-per-host) per_host="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --alive) alive="$2"; shift 2 ;;
        --grace) grace="$2"; shift 2 ;;
        --tcp-retries) tcp_retries="$2"; shift 2 ;;
        --subnet) subnet="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        --mpirun-arg) extra+=("$2"); shift 2 ;;
        --) shift; break ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "launch/hosts.sh: unknown option '$1' (the command goes after --)" >&2; exit 2 ;;
    esac
done
fail() { echo "launch/hosts.sh: $*" >&2; exit 2; }
[ $# -gt 0 ] || fail "no command given; usage: launch/hosts.sh --hosts 2 --ranks-per-host 2 -- dsan train …"
[ "$(id -u)" -eq 0 ] || fail "needs root to create network namespaces (run as root, or use launch/train.sh on one host)"
[[ "$hosts" =~ ^[0-9]+$ ]] && [ "$hosts" -ge 1 ] && [ "$hosts" -le 99 ] || fail "--hosts $hosts: give 1 to 99"
[[ "$per_host" =~ ^[0-9]+$ ]] && [ "$per_host" -ge 1 ] || fail "--ranks-per-host $per_host: give a positive integer"
[[ "$alive" =~ ^[0-9]+$ ]] && [ "$alive" -ge 1 ] || fail "--alive $alive: give whole seconds, at least 1"
[[ "$grace" =~ ^[0-9]+$ ]] || fail "--grace $grace: give whole seconds"
[[ "$tcp_retries" =~ ^[0-9]+$ ]] && [ "$tcp_retries" -ge 1 ] || fail "--tcp-retries $tcp_retries: give a positive integer (the kernel default is 15)"
[[ "$subnet" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "--subnet $subnet: give the first three octets, e.g. 10.213.0"
[ ${#name} -le 11 ] && [[ "$name" =~ ^[A-Za-z0-9]+$ ]] || fail "--name $name: give at most 11 letters or digits (interface names are limited to 15)"
for tool in ip mpirun; do command -v "$tool" >/dev/null || fail "'$tool' not found on PATH"; done
[ -z "$rate" ] || command -v tc >/dev/null || fail "--rate needs 'tc' (iproute2)"
if ip -4 route show | grep -q "^$subnet\."; then
    fail "subnet $subnet.0/24 is already routed on this machine; choose another with --subnet"
fi
if [ "$1" = dsan ]; then
    dsan="${DSAN_BIN:-$PWD/.build/release/dsan}"
    if [ ! -x "$dsan" ] && [ -z "${DSAN_BIN:-}" ]; then
        dsan_install_deps
        swift build -c release --product dsan
    fi
    [ -x "$dsan" ] || fail "$dsan not found: build it with 'swift build -c release --product dsan' or set DSAN_BIN"
    shift; set -- "$dsan" "$@"
fi

bridge="${name}br"
if ip link show "$bridge" >/dev/null 2>&1 || ip netns list | grep -q "^$name-h"; then
    fail "namespaces or links named $name… exist already (another launch/hosts.sh --name $name running?); choose another --name"
fi
tmp=$(mktemp -d "/tmp/dsan-hosts-$name.XXXXXX")
mpirun_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    if [ -n "$mpirun_pid" ] && kill -0 "$mpirun_pid" 2>/dev/null; then
        kill -TERM "$mpirun_pid" 2>/dev/null || true
        sleep 2; kill -KILL "$mpirun_pid" 2>/dev/null || true
    fi
    for i in $(seq 1 "$hosts"); do
        local ns="$name-h$i" pids
        ip netns list 2>/dev/null | grep -q "^$ns\b" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    for i in $(seq 1 "$hosts"); do ip link del "${name}v$i" 2>/dev/null || true; done
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# The bridge carries no address: nothing on this machine routes into the subnet, and several runs
# with the same subnet on different bridges do not see each other.
ip link add "$bridge" type bridge
ip link set "$bridge" up
for i in $(seq 1 "$hosts"); do
    ns="$name-h$i" veth="${name}v$i"
    ip netns add "$ns"
    ip link add "$veth" type veth peer name "${name}p$i"
    ip link set "${name}p$i" netns "$ns"
    ip -n "$ns" link set "${name}p$i" name eth0
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_retries2="$tcp_retries"
    ip -n "$ns" addr add "$subnet.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip link set "$veth" master "$bridge"
    ip link set "$veth" up
    if [ -n "$rate" ]; then
        # Both directions: leaving the host (eth0) and arriving at it (the bridge port).
        ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst 1mb latency 50ms
        tc qdisc add dev "$veth" root tbf rate "$rate" burst 1mb latency 50ms
    fi
    echo "$subnet.$i slots=$per_host" >> "$tmp/hostfile"
    echo "launch/hosts.sh: host $i = namespace $ns, address $subnet.$i, link $veth" >&2
done


# The agent that starts each host's daemon with `ip netns exec` (launch/netns-agent.sh).
export DSAN_HOSTS_SUBNET="$subnet" DSAN_HOSTS_NAME="$name" DSAN_HOSTS_ALIVE="$alive"
source launch/mpi-params.sh
ranks=$(( hosts * per_host ))
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
echo "launch/hosts.sh: $ranks ranks on $hosts hosts${rate:+, links limited to $rate}: $*" >&2
ip netns exec "$name-h1" mpirun --allow-run-as-root --oversubscribe --bind-to none \
    -np "$ranks" --hostfile "$tmp/hostfile" \
    --mca plm_rsh_agent "$PWD/launch/netns-agent.sh" \
    --mca btl self,tcp --mca btl_tcp_if_include "$subnet.0/24" --mca oob_tcp_if_include "$subnet.0/24" \
    "${DSAN_MPI_FAULT_PARAMS[@]}" \
    -x OPENBLAS_NUM_THREADS "${extra[@]}" "$@" < /dev/null &
mpirun_pid=$!
status=0
wait "$mpirun_pid" || status=$?
mpirun_pid=""

# A host's daemon can outlive mpirun by a few seconds: after a lost link it learns only from its
# own TCP timeouts (launch/mpi-params.sh) that mpirun is gone, then ends its ranks and itself.
# Whatever still runs on a host $grace s after mpirun returned would hold its node on a cluster:
# it is named (tests look for this line), then the cleanup kills it.
echo "launch/hosts.sh: mpirun exited with status $status" >&2
running() { [ -n "$(for i in $(seq 1 "$hosts"); do ip netns pids "$name-h$i" 2>/dev/null; done)" ]; }
for ((k = 0; k < 2 * grace; k++)); do running || break; sleep 0.5; done
for i in $(seq 1 "$hosts"); do
    left=""
    for pid in $(ip netns pids "$name-h$i" 2>/dev/null); do
        left+=" $(cat "/proc/$pid/comm" 2>/dev/null || echo '?')($pid)"
    done
    [ -z "$left" ] || echo "launch/hosts.sh: left running on host $i $grace s after mpirun returned:$left" >&2
done
exit "$status"
