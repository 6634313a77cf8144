#!/bin/sh
# Invocations on a hybrid VM whose HRT delays its ready report (HRT_ARGS ready_delay_ms=): calls
# while the HRT is not ready, the built-in functions, Palacios' test program (C) and its Rust
# twin, the sync channel and back to async, and processes killed in the middle of a call.
#   HVTEST: step <name> rc=<rc>        after each step (its output before)
# The steps' own lines come from hvmctl, hvm-test and hvm-test-rs.
. /tests/lib/steps.sh

step ready-at-boot wait_ready
step builtins hvm-test-rs builtins
step simple-async hvm-test simple async
step simple-sync hvm-test simple sync
step time-async hvm-test time async 2 50
step time-sync hvm-test time sync 1 100000
step async-after-sync hvmctl invoke add 40 2
step rust-example hvm-test-rs time sync 1 1000

step reset-hrt hvmctl reset-hrt
step not-ready-after-reset hvmctl invoke add 1 2
step ready-after-reset wait_ready
step async-after-reset hvmctl invoke add 2 3

# A process killed while its call runs: the HRT finishes, the state goes back to idle.
hvmctl invoke spin 900000 &
sleep 0.3
kill -9 $! 2>/dev/null
wait 2>/dev/null
i=0
until hvmctl invoke add 3 4 >/tmp/after-kill 2>&1 || [ $i -ge 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
cat /tmp/after-kill
step after-killed-async hvmctl invoke add 3 4

# A process killed in sync mode: the channel stays set up; an HRT reset recovers.
hvm-test time sync 1 1000000000 >/dev/null 2>&1 &
sleep 3
kill -9 $! 2>/dev/null
wait 2>/dev/null
step state-after-killed-sync hvmctl state
step refused-while-stuck hvmctl invoke add 1 1
step recover-reset hvmctl reset-hrt
step recover-ready wait_ready
step after-killed-sync hvmctl invoke add 5 6
