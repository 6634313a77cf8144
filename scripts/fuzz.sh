#!/usr/bin/env bash
# Runs the guest fuzzer (guest/fuzz, built into build/fuzz.bin) under the hypervisor and judges
# the run. Exits 0 only if the fuzzer finished its random phase and every post-check
# (`FUZZ: done seed=<s> ok`), and the hypervisor printed no panic and no error line; a guest
# fault the hypervisor reports at warning level (UNDEF injected, unassigned IPA, ISV=0, bad
# virtio request, an HRT's unsupported SMCCC call or bad console text...) is fine, any other
# warning is a failure too. On failure it prints the seed, the command that reproduces the run,
# and how to debug it.
#
# MODE=hrt runs the same fuzzer as the HRT image of a hybrid VM (build/fuzz-hrt.elf, a
# guest-loader module with bootargs "hrt seed=.. iter=.."), with Linux as the ROS (build/guest/
# Image and initramfs from `make guest`): the HRT cores fuzz (random 0xf00d sub-operations and
# pointers, other SMCCC ids, system registers, loads and stores, their GIC frames) while Linux
# boots, print their verdict through the HRT console as "(HRT) FUZZ: ..." lines and idle (the
# HRT never powers off). Once the fuzzer is done and the ROS shell is up, this script types
# checks at the ROS (hvmctl state, null, loop-null, the kernel log) and powers it off. Passes
# only if, besides the above, the ROS answered every check, neither partition rebooted and Linux
# logged no oops, BUG, warning or stall.
#
# Knobs (environment; defaults in brackets):
#   SEED [1]  ITER [20000]  SMP [1; 2 with MODE=hrt] (pCPUs)  VCPUS [SMP]  CPU [cortex-a57]
#   RAM [2G]  MODE [linux] (linux: build/fuzz.bin is the guest; hrt: see above)
#   HYP_ARGS [""] (hypervisor options; vcpus= is added from VCPUS unless given here; MODE=hrt
#     adds hvm=on ros_vcpus=ROS_VCPUS hrt_vcpus=HRT_VCPUS instead)
#   ROS_VCPUS [1]  HRT_VCPUS [1] (MODE=hrt: Linux's vCPUs and the fuzzer's)
#   KERNEL [build/guest/Image]  INITRD [build/guest/initramfs.cpio.gz] (MODE=hrt: the ROS)
#   FUZZ_ARGS [""] (extra fuzzer options: trace=<op>, classes=<a,b>, progress=<n>)
#   TIMEOUT [300] (seconds for the whole QEMU run)   DISK [a scratch copy of the template]
#   LOG [build/fuzz-logs/seed-<SEED>.log; hrt-seed-<SEED>.log with MODE=hrt]
#   NO_BUILD [""] (1: skip building the fuzzer)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

MODE=${MODE:-linux}
case $MODE in
    linux | hrt) ;;
    *) printf '[fuzz] MODE must be linux or hrt, got %s\n' "$MODE" >&2; exit 2 ;;
esac
SEED=${SEED:-1}
ITER=${ITER:-20000}
if [ "$MODE" = hrt ]; then SMP=${SMP:-2}; else SMP=${SMP:-1}; fi
VCPUS=${VCPUS:-$SMP}
ROS_VCPUS=${ROS_VCPUS:-1}
HRT_VCPUS=${HRT_VCPUS:-1}
CPU=${CPU:-cortex-a57}
RAM=${RAM:-2G}
HYP_ARGS=${HYP_ARGS:-}
FUZZ_ARGS=${FUZZ_ARGS:-}
TIMEOUT=${TIMEOUT:-300}
if [ "$MODE" = hrt ]; then LOG=${LOG:-$root/build/fuzz-logs/hrt-seed-$SEED.log}; fi
LOG=${LOG:-$root/build/fuzz-logs/seed-$SEED.log}

say() { printf '[fuzz] %s\n' "$*"; }

if [ "$MODE" = hrt ]; then
    HYP_ARGS="hvm=on ros_vcpus=$ROS_VCPUS hrt_vcpus=$HRT_VCPUS${HYP_ARGS:+ $HYP_ARGS}"
else
    case " $HYP_ARGS " in
        *" vcpus="*) ;;
        *) HYP_ARGS="vcpus=$VCPUS${HYP_ARGS:+ $HYP_ARGS}" ;;
    esac
fi

[ -n "${NO_BUILD:-}" ] || "$root/scripts/build-fuzz.sh" >/dev/null
[ -f "$root/build/hypervisor.bin" ] || { say "build/hypervisor.bin not found: run 'make build'"; exit 2; }
if [ "$MODE" = hrt ]; then
    KERNEL=${KERNEL:-$root/build/guest/Image}
    INITRD=${INITRD:-$root/build/guest/initramfs.cpio.gz}
    for file in "$KERNEL" "$INITRD"; do
        [ -f "$file" ] || { say "$file not found: run 'make guest'"; exit 2; }
    done
fi

# The fuzzer writes random data to the disk: give it a scratch copy of a small image, never
# build/disk.img itself (MODE=hrt: the ROS's disk, whose registers the HRT only reads).
mkdir -p "$(dirname "$LOG")"
if [ -z "${DISK:-}" ]; then
    DISK=$root/build/fuzz-logs/disk-$SEED-$$.img
    truncate -s 8M "$DISK"
    printf 'fuzz scratch disk seed %s\n' "$SEED" | dd of="$DISK" conv=notrunc status=none
    cleanup_disk=$DISK
fi
cleanup() { [ -z "${cleanup_disk:-}" ] || rm -f "$cleanup_disk"; }
trap cleanup EXIT

guest_args="seed=$SEED iter=$ITER${FUZZ_ARGS:+ $FUZZ_ARGS}"
# The command line goes into a -device guest-loader option, where a comma (classes=a,b) must be
# written twice.
qemu_guest_args=${guest_args//,/,,}
if [ "$MODE" = hrt ]; then
    reproduce="MODE=hrt SEED=$SEED ITER=$ITER SMP=$SMP ROS_VCPUS=$ROS_VCPUS HRT_VCPUS=$HRT_VCPUS CPU=$CPU${FUZZ_ARGS:+ FUZZ_ARGS=\"$FUZZ_ARGS\"} scripts/fuzz.sh"
else
    reproduce="SEED=$SEED ITER=$ITER SMP=$SMP VCPUS=$VCPUS CPU=$CPU HYP_ARGS=\"$HYP_ARGS\"${FUZZ_ARGS:+ FUZZ_ARGS=\"$FUZZ_ARGS\"} scripts/fuzz.sh"
fi

# MODE=hrt: what is typed at the ROS shell (as tests/tests/fuzz_hrt.rs does). As soon as it is
# up, a background loop of null calls through the doorbell (ROS calls racing the HRT's); once
# the fuzzer is done, the loop stops and the checks run. The markers are printed through shell
# arithmetic ($((40+2))), so the echo of the typed line never matches them; the brackets keep
# the echo of the kernel-log pattern from looking like Linux's failure lines.
ros_load='(n=0; while [ ! -e /tmp/fuzz-done ]; do hvmctl null >/dev/null || { echo "ROS-LOOP-$((40+2)) failed after $n calls"; break; }; n=$((n+1)); done; echo "ROS-LOOP-$((40+2)) done calls=$n") &'
ros_checks='touch /tmp/fuzz-done; wait; hvmctl state; hvmctl null; hvmctl loop-null 1000; echo "ROS-CHECKS-$((40+2)) dmesg-bad=$(dmesg | grep -cE "B[U]G:|W[A]RNING:|O[o]ps|Unable to h[a]ndle|rcu.*st[a]ll|soft l[o]ckup|hung_t[a]sk")"'
# Linux's own failure lines (as tests/src/lib.rs's FAILURE_PATTERNS).
linux_failures='Kernel panic|Internal error: Oops|Unable to handle kernel|BUG: |WARNING: CPU:|rcu: INFO: rcu_|detected stall|soft lockup|hung_task|blocked for more than'

# Waits until the log holds a line matching the extended regex $1, at most $2 seconds, and
# only while QEMU ($qemu_pid) runs.
wait_for() {
    local deadline=$((SECONDS + $2))
    until tr -d '\r' <"$LOG" 2>/dev/null | grep -qE -- "$1"; do
        [ "$SECONDS" -lt "$deadline" ] && kill -0 "$qemu_pid" 2>/dev/null || return 1
        sleep 0.5
    done
}

# MODE=hrt: the ROS's keyboard. Starts the load once the shell is there and types the checks
# once the fuzzer's verdict is, then powers the ROS off (QEMU exits); gives up (and lets TIMEOUT
# end QEMU) if either never comes, or as soon as QEMU has exited.
feed_ros() {
    wait_for 'HVTEST: shell ready' "$TIMEOUT" || return 0
    printf '%s\r' "$ros_load"
    wait_for '\(HRT\) FUZZ: done seed=' "$TIMEOUT" || return 0
    printf '%s\r' "$ros_checks"
    wait_for 'ROS-CHECKS-42 dmesg-bad=' 120 || true
    printf 'poweroff -f\r'
    # Keep QEMU's stdin open until it exits.
    wait_for 'guest powered off' 60 || true
}

say "mode=$MODE seed=$SEED iter=$ITER smp=$SMP cpu=$CPU hyp_args=\"$HYP_ARGS\" log=$LOG"
start=$(date +%s%N)
set +e
if [ "$MODE" = hrt ]; then
    # QEMU reads the ROS's console input from a FIFO that feed_ros writes (fd 3). The log is
    # emptied first: feed_ros must not find the last run's lines.
    : >"$LOG"
    fifo=$(mktemp -u "${TMPDIR:-/tmp}/fuzz-ros-input.XXXXXX")
    mkfifo "$fifo"
    KERNEL=$KERNEL INITRD=$INITRD HRT=$root/build/fuzz-hrt.elf HRT_ARGS="$qemu_guest_args" \
        GUEST_ARGS="console=ttyAMA0 hvloglevel=1" SMP=$SMP CPU=$CPU RAM=$RAM HYP_ARGS="$HYP_ARGS" \
        DISK="$DISK" TIMEOUT=$TIMEOUT "$root/scripts/qemu.sh" <"$fifo" >"$LOG" 2>&1 &
    qemu_pid=$!
    exec 3>"$fifo"
    rm -f "$fifo"
    feed_ros >&3
    exec 3>&-
    wait "$qemu_pid"
    status=$?
else
    KERNEL=$root/build/fuzz.bin INITRD=none HRT=none GUEST_ARGS="$qemu_guest_args" SMP=$SMP CPU=$CPU RAM=$RAM \
        HYP_ARGS="$HYP_ARGS" DISK="$DISK" TIMEOUT=$TIMEOUT \
        "$root/scripts/qemu.sh" </dev/null >"$LOG" 2>&1
    status=$?
fi
set -e
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))

# The judgement, one reason per line (tr: QEMU's console uses CR LF).
problems=()
log_text=$(tr -d '\r' <"$LOG")
case $status in
    0) ;;
    124) problems+=("QEMU killed after ${TIMEOUT}s (timeout: a hang)") ;;
    134) problems+=("QEMU itself aborted (status 134): $(grep -m1 '^qemu-system' <<<"$log_text" || echo 'no message')") ;;
    *) problems+=("QEMU exited with status $status") ;;
esac
grep -q '(HYP) PANIC' <<<"$log_text" && problems+=("hypervisor panic: $(grep -m1 -A2 '(HYP) PANIC' <<<"$log_text" | tr '\n' ' ')")
errors=$(grep -c '(HYP) ERROR' <<<"$log_text" || true)
[ "$errors" -eq 0 ] || problems+=("$errors hypervisor error line(s), first: $(grep -m1 '(HYP) ERROR' <<<"$log_text")")
# Warnings that report a guest's own fault, and nothing else, are expected.
guest_faults='UNDEF injected|at unassigned IPA|without a syndrome \(ISV=0\)|instruction fetch from IPA|disk: guest request refused|HRT SMCCC call 0x[0-9a-f]+ not supported|HRT console text at IPA'
other_warnings=$(grep '(HYP) WARN' <<<"$log_text" | grep -Ev "$guest_faults" || true)
[ -z "$other_warnings" ] || problems+=("hypervisor warning(s) that are not guest faults, first: $(head -n1 <<<"$other_warnings")")
failed_checks=$(grep -o 'FUZZ: check [a-z_]* fail.*' <<<"$log_text" || true)
[ -z "$failed_checks" ] || problems+=("failed check(s): $(tr '\n' ';' <<<"$failed_checks")")
fuzz_errors=$(grep -o 'FUZZ: error.*' <<<"$log_text" || true)
[ -z "$fuzz_errors" ] || problems+=("fuzzer error: $(head -n1 <<<"$fuzz_errors")")
grep -q "FUZZ: done seed=$SEED ok" <<<"$log_text" || problems+=("no 'FUZZ: done seed=$SEED ok' line")
if [ "$MODE" = hrt ]; then
    # The ROS is healthy: its calls during the fuzz all answered, it answered the checks, and
    # neither partition rebooted.
    loop=$(grep -m1 -oE 'ROS-LOOP-42 (done calls=|failed after )[0-9]*' <<<"$log_text" || true)
    [[ $loop == "ROS-LOOP-42 done calls="* ]] || problems+=("the ROS's null calls during the fuzz: ${loop:-no ROS-LOOP-42 line}")
    grep -q '^state: ' <<<"$log_text" || problems+=("the ROS printed no 'hvmctl state' answer")
    grep -q '^null: ok' <<<"$log_text" || problems+=("the ROS's null call did not answer ok")
    grep -q '^loop-null: 1000 calls' <<<"$log_text" || problems+=("the ROS's 1000 null calls did not finish")
    grep -q 'ROS-CHECKS-42 dmesg-bad=0$' <<<"$log_text" \
        || problems+=("the ROS's kernel log is not clean: $(grep -m1 'ROS-CHECKS-42' <<<"$log_text" || echo 'no ROS-CHECKS-42 line')")
    linux_bad=$(grep -m1 -E "$linux_failures" <<<"$log_text" || true)
    [ -z "$linux_bad" ] || problems+=("Linux failed: $linux_bad")
    # The hypervisor redraws a guest line an HRT line interrupted (its start, then the whole
    # line): count each boot's uptime stamp once, and a stamp another one continues not at all.
    inits=$({ grep -o 'HVTEST: init started uptime=[0-9.]*' <<<"$log_text" || true; } | sort -u \
        | awk '{ stamps[NR] = $0 } END { n = 0; for (i in stamps) { prefix = 0; for (j in stamps) if (i != j && index(stamps[j], stamps[i]) == 1) prefix = 1; n += !prefix }; print n }')
    [ "$inits" -eq 1 ] || problems+=("the ROS booted $inits times (expected once)")
    starts=$(grep -c '(HRT) FUZZ: start ' <<<"$log_text" || true)
    [ "$starts" -eq 1 ] || problems+=("the HRT fuzzer started $starts times (expected once: an HRT reset?)")
fi

summary=$(grep -o 'FUZZ: summary.*' <<<"$log_text" | tail -n1 || true)
warnings=$(grep -c '(HYP) WARN' <<<"$log_text" || true)
[ -z "$summary" ] || say "${summary#FUZZ: }"
say "hypervisor warnings (guest faults): $warnings; time: $((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))s"
if [ ${#problems[@]} -eq 0 ]; then
    say "PASS seed=$SEED"
    exit 0
fi
for problem in "${problems[@]}"; do
    say "FAIL: $problem"
done
# Keep the disk as the run left it, for the debug session below.
debug_disk=$DISK
cleanup_disk=
last_progress=$(grep -o 'FUZZ: progress cpu=[0-9]* op=[0-9]*' <<<"$log_text" | tail -n1 || true)
say "last progress: ${last_progress:-none}; last lines of $LOG:"
tail -n 15 "$LOG" | sed 's/^/    /'
if [ "$MODE" = hrt ]; then
    cat <<EOF
[fuzz] reproduce: $reproduce
[fuzz] trace the operations (each printed before it runs) from op N on: add FUZZ_ARGS="trace=N"
[fuzz]   (N = the last progress op above, per HRT vCPU), or narrow the classes:
[fuzz]   FUZZ_ARGS="classes=hvm,console" (hvm, call, console, mem, fetch, sysreg-read, sysreg-write,
[fuzz]   sys, gic, wait, sgi)
[fuzz] debug: make debug NO_BUILD=1 SMP=$SMP CPU=$CPU RAM=$RAM HYP_ARGS="$HYP_ARGS" \\
[fuzz]          HRT=build/fuzz-hrt.elf HRT_ARGS="$qemu_guest_args" GUEST_ARGS="console=ttyAMA0 hvloglevel=1" DISK=$debug_disk
[fuzz]        then 'make gdb' in another terminal (the HRT's symbols: add-symbol-file build/fuzz-hrt.elf)
EOF
    exit 1
fi
cat <<EOF
[fuzz] reproduce: $reproduce
[fuzz] trace the operations (each printed before it runs) from op N on: add FUZZ_ARGS="trace=N"
[fuzz]   (N = the last progress op above), or narrow the classes: FUZZ_ARGS="classes=mem,virtio"
[fuzz] debug: make debug NO_BUILD=1 KERNEL=build/fuzz.bin INITRD=none SMP=$SMP CPU=$CPU RAM=$RAM \\
[fuzz]          HYP_ARGS="$HYP_ARGS" GUEST_ARGS="$qemu_guest_args" DISK=$debug_disk
[fuzz]        then 'make gdb' in another terminal (symbols of the guest: add-symbol-file build/fuzz.elf)
EOF
exit 1
