#!/bin/sh
# Merged address spaces on a hybrid VM: a ROS process's own functions run in the HRT
# (hvm-test-rs merged: forwarded system calls and page faults, TLB coherence, TLS, exceptions),
# Palacios' test program in its four modes with real merges and unmerges, hvmctl's merge and
# unmerge, 1000 signals from the HRT (hvm-signal-test), and HRT images installed from the ROS
# (hvm-test-rs install: an alternative image
# booted, bad images refused, the default image back).
#   HVTEST: step <name> rc=<rc>        after each step (its output before)
# The steps' own lines come from hvm-test-rs ("check <name>: ok|FAILED ..."), hvm-test and
# hvmctl.
. /tests/lib/steps.sh
HRT_READY_SECONDS=60

step ready-at-boot wait_ready
step merged hvm-test-rs merged
step simple-async hvm-test simple async
step simple-sync hvm-test simple sync
step time-async hvm-test time async 10 100
step time-sync hvm-test time sync 10 10000
step hvmctl-merge hvmctl merge
step hvmctl-unmerge hvmctl unmerge
step install hvm-test-rs install
step after-install hvmctl invoke add 40 2
step signals hvm-signal-test 1000
