#!/usr/bin/env bash
# make soak: the hybrid-VM soak of issue 13 (guest/initramfs/tests/soak.sh): SOAK_SECONDS
# (default 600) of hackbench, cross-CPU pipes, disk I/O and the EL0 fuzzer (random doorbell
# calls and /dev/mem reads) on 3 ROS + 1 HRT vCPUs time-sliced on 2 pCPUs, on a copy of
# build/disk.img. Passes (exit 0) when the guest finished, every file's checksum held, the
# kernel log is clean and the hypervisor printed no error or panic. Not part of make test.
#   SOAK_SECONDS [600]   SOAK_SEED [12345]   CPU [cortex-a57]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_SEED=${SOAK_SEED:-12345}
say() { printf '[soak] %s\n' "$*"; }

disk=$root/build/soak-disk.img
cp "$root/build/disk.img" "$disk"
log=$root/build/soak.log
say "soaking for ${SOAK_SECONDS}s (seed $SOAK_SEED); console in $log"
SMP=2 HYP_ARGS="hvm=on ros_vcpus=3 hrt_vcpus=1" HRT="$root/build/hrt.elf" DISK="$disk" \
    GUEST_ARGS="console=ttyAMA0 hvloglevel=1 hvtest=soak soak_seconds=$SOAK_SECONDS soak_seed=$SOAK_SEED" \
    TIMEOUT=$((SOAK_SECONDS * 3 + 600)) "$root/scripts/qemu.sh" </dev/null >"$log" 2>&1 || true
grep -E "HVTEST: soak|HVTEST: dmesg|\(HYP\) (ERROR|PANIC)" "$log" || true
fail=0
grep -q "HVTEST: done soak status=0" "$log" || { say "the guest did not finish the soak"; fail=1; }
grep -q "HVTEST: soak disk ok" "$log" || { say "disk checksums failed or missing"; fail=1; }
grep -q "HVTEST: dmesg-bad-count 0" "$log" || { say "the kernel log shows stalls, lockups or oopses"; fail=1; }
if grep -qE "\(HYP\) (ERROR|PANIC)" "$log"; then say "the hypervisor reported an error"; fail=1; fi
if [ "$fail" -eq 0 ]; then say "PASS"; else say "FAIL (full log: $log)"; fi
exit "$fail"
