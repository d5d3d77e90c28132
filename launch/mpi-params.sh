#!/usr/bin/env bash
# OpenMPI (4.1) settings that make a job spread over several hosts end, instead of hanging, when a
# host or its link goes away. Sourced by launch/train.sh and launch/hosts.sh; Docs/launch.md,
# "Several hosts", explains them.
#
# mpirun and each host's daemon (orted) talk over one TCP connection each (the "oob"). When a host
# vanishes, nothing closes that connection: OpenMPI learns of the loss only when the kernel gives
# up on it, and only then ends the job (an MPI_Abort in progress waits for it too). Two kernel
# clocks decide when that happens:
#  - an idle connection: TCP keepalive, which OpenMPI sets per socket. Its defaults (300 s idle,
#    then 9 probes 20 s apart) mean 8 minutes; these make it 10 + 3 × 5 = 25 s.
#  - a connection with data in flight (the abort's kill order to the lost host): the kernel's
#    retransmission limit net.ipv4.tcp_retries2, a sysctl of the host (default 15, about
#    15 minutes), not settable from mpirun. launch/hosts.sh sets 5 (about 13 s) in its namespaces;
#    on a cluster it is the administrators' setting.
DSAN_MPI_FAULT_PARAMS=(
    --mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 5 --mca oob_tcp_keepalive_probes 3
)
