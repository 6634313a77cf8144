#!/usr/bin/env bash
# The guest benchmark suite: the same guest work (guest/initramfs/tests/bench.sh running
# guest/bench/hvbench.c, plus the disk) on plain QEMU (Debian's kernel booted directly) and
# under the hypervisor, alternating plain and hypervisor boots RUNS times per configuration.
# Prints one line per boot, then per metric and configuration the plain median, hypervisor
# median, ratio hypervisor/plain and runs (scripts/bench-table.py), also written as CSV to
# build/bench/guest-bench.csv (header metric,config,unit,plain,hypervisor,runs; drawn by
# scripts/bench-plot.py). Each boot's serial log is kept in build/bench/guest-bench/ (emptied
# at the start). The guest programs and the initramfs are rebuilt first if their sources
# changed. A measurement, not a test: figures depend on the machine and on its load (the
# cross-CPU figures above all: with 4 vCPUs on a 2-core host, a busy host multiplies them).
#
# Configurations (labels):
#   1vcpu  plain -smp 1   hypervisor SMP=1 vcpus=1
#   4on4   plain -smp 4   hypervisor SMP=4 vcpus=4
#   2on2   plain -smp 2   hypervisor SMP=2 vcpus=2
#   4on2   plain -smp 4   hypervisor SMP=2 vcpus=4 (time-sliced); its hackbench is also
#                         compared with 2on2's hypervisor figure when both are run
# Both sides boot the same way: command line "nokaslr mitigations=off" (QEMU's own DTB would
# give a directly booted kernel a KASLR seed, and KASLR turns on KPTI, which makes every
# system call several times slower under TCG), 1 GiB of guest RAM, the same CPU model and a
# fresh copy of build/disk.img per boot. Plain QEMU is -M virt,gic-version=3 without EL2, as in
# scripts/boot-time.sh: the kernel runs at EL1 with nothing beneath it.
#
# Knobs: CONFIGS ["1vcpu 4on4 2on2 4on2"]  RUNS [3]  CPU [cortex-a57]
#        TIMEOUT [600] (seconds per boot)    BENCHSET [full] (quick: seconds-long smoke run)
# Exit status 1 if any boot failed or missed a metric (the table is printed all the same).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

CONFIGS=${CONFIGS:-1vcpu 4on4 2on2 4on2}
RUNS=${RUNS:-3}
CPU=${CPU:-cortex-a57}
TIMEOUT=${TIMEOUT:-600}
BENCHSET=${BENCHSET:-full}
GUEST_MEM=1G   # the guest's RAM on both sides
HYP_RAM=2G     # the machine's RAM under the hypervisor: guest RAM plus room for the hypervisor
# hvloglevel=1 keeps kernel messages off the console while the suite runs.
ARGS="console=ttyAMA0 nokaslr mitigations=off hvloglevel=1 hvtest=bench benchset=$BENCHSET"

image=$root/build/guest/Image
initrd=$root/build/guest/initramfs.cpio.gz
disk_src=$root/build/disk.img
out=$root/build/bench
logs=$out/guest-bench
csv=$out/guest-bench.csv

say() { printf '[guest-bench] %s\n' "$*"; }
die() { printf '[guest-bench] error: %s\n' "$*" >&2; exit 2; }

# shape LABEL: sets plain_smp, hyp_smp and hyp_vcpus for a configuration.
shape() {
    case $1 in
        1vcpu) plain_smp=1 hyp_smp=1 hyp_vcpus=1 ;;
        4on4) plain_smp=4 hyp_smp=4 hyp_vcpus=4 ;;
        2on2) plain_smp=2 hyp_smp=2 hyp_vcpus=2 ;;
        4on2) plain_smp=4 hyp_smp=2 hyp_vcpus=4 ;;
        *) return 1 ;;
    esac
}

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[ -n "${CONFIGS// /}" ] || die "CONFIGS is empty"
for c in $CONFIGS; do shape "$c" || die "unknown configuration '$c' (1vcpu 4on4 2on2 4on2)"; done
for f in "$image" "$disk_src" "$root/build/hypervisor.bin"; do
    [ -f "$f" ] || die "${f#"$root"/} missing: run 'make build guest'"
done
# The guest programs and the initramfs follow their sources (both only check when up to date),
# so an edited bench.sh or hvbench.c is what runs.
"$root/scripts/build-guest-progs.sh"
"$root/scripts/mkinitramfs.sh"

rm -rf "$logs"
mkdir -p "$logs"
disk=$logs/disk.img
trap 'rm -f "$disk"' EXIT

# boot SIDE CONFIG RUN: one boot, its serial log in $logs/CONFIG.SIDE.RUN.log.
failed=0
boot() {
    local side=$1 config=$2 run=$3 log what start rc secs
    log=$logs/$config.$side.$run.log
    shape "$config"
    cp --sparse=always "$disk_src" "$disk"
    if [ "$side" = plain ]; then
        what="plain QEMU -smp $plain_smp"
    else
        what="hypervisor SMP=$hyp_smp vcpus=$hyp_vcpus"
    fi
    printf '[guest-bench] %-5s run %d/%d %-34s ' "$config" "$run" "$RUNS" "$what:"
    start=$(date +%s.%N)
    set +e
    if [ "$side" = plain ]; then
        timeout --foreground -k 5 "$TIMEOUT" qemu-system-aarch64 -M virt,gic-version=3 \
            -cpu "$CPU" -smp "$plain_smp" -m "$GUEST_MEM" -nographic -nic none \
            -kernel "$image" -initrd "$initrd" -append "$ARGS" \
            -drive "if=none,file=$disk,format=raw,id=hd0" -device virtio-blk-device,drive=hd0 \
            </dev/null >"$log" 2>&1
    else
        SMP=$hyp_smp CPU=$CPU RAM=$HYP_RAM HYP_ARGS="mem=$GUEST_MEM vcpus=$hyp_vcpus" \
            GUEST_ARGS="$ARGS" KERNEL=$image INITRD=$initrd DISK=$disk TIMEOUT=$TIMEOUT \
            "$root/scripts/qemu.sh" </dev/null >"$log" 2>&1
    fi
    rc=$?
    set -e
    echo "GUEST-BENCH: qemu status=$rc" >>"$log"
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
    printf '%4s s  ' "$secs"
    if ! python3 "$root/scripts/bench-table.py" summary "$log"; then
        say "FAILED: $config $what run $run (log: ${log#"$root"/})"
        failed=$((failed + 1))
    fi
}

say "configurations: $CONFIGS; $RUNS run(s) each, plain and hypervisor alternating;" \
    "CPU $CPU, guest RAM $GUEST_MEM, timeout ${TIMEOUT}s per boot, benchset=$BENCHSET"
for config in $CONFIGS; do
    for run in $(seq 1 "$RUNS"); do
        boot plain "$config" "$run"
        boot hyp "$config" "$run"
    done
done

# 4on2 (4 vCPUs time-sliced on 2 pCPUs) against 2on2 (2 vCPUs on 2 pCPUs), both hypervised.
versus=()
if [[ " $CONFIGS " == *" 4on2 "* && " $CONFIGS " == *" 2on2 "* ]]; then
    versus=(--versus 4on2:2on2:hackbench)
fi
echo
say "medians of $RUNS run(s); ratio = hypervisor / plain (a 4on2-vs-2on2hyp row: 4on2's" \
    "hypervisor median / 2on2's)"
status=0
python3 "$root/scripts/bench-table.py" table --csv "$csv" --configs "$CONFIGS" "${versus[@]}" "$logs" \
    || status=1
if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then
    say "FAILED: $failed boot(s) failed; see the PROBLEM lines and the logs in ${logs#"$root"/}/"
    exit 1
fi
