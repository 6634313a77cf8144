#!/usr/bin/env bash
# Boot time of Debian's kernel to /init, as guest uptime (the "HVTEST: init started uptime="
# line), on plain QEMU and under the hypervisor, in one run. Prints each run, the medians and
# their ratio. A measurement, not a test: figures depend on the machine and its load.
#   RUNS [5]  SMP [1]  CPU [cortex-a57]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
SMP=${SMP:-1}
CPU=${CPU:-cortex-a57}
IMAGE=$root/build/guest/Image
INITRD=$root/build/guest/initramfs.cpio.gz
ARGS="console=ttyAMA0 hvtest=boot"

uptime_of() { sed -n 's/.*HVTEST: init started uptime=\([0-9.]*\).*/\1/p' | head -1; }

native() {
    timeout 300 qemu-system-aarch64 -M virt,gic-version=3 -cpu "$CPU" -smp "$SMP" -m 1G \
        -nographic -nic none -kernel "$IMAGE" -initrd "$INITRD" -append "$ARGS" </dev/null | uptime_of
}

hypervised() {
    SMP=$SMP CPU=$CPU RAM=2G HYP_ARGS="vcpus=$SMP mem=1G" GUEST_ARGS="$ARGS" TIMEOUT=300 \
        "$root/scripts/qemu.sh" </dev/null | uptime_of
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -a plain hyp
for i in $(seq 1 "$RUNS"); do
    p=$(native); h=$(hypervised)
    [ -n "$p" ] && [ -n "$h" ] || { echo "boot-time: run $i did not reach /init (plain='$p' hypervisor='$h')" >&2; exit 1; }
    plain+=("$p"); hyp+=("$h")
    printf 'run %d: plain QEMU %6.2f s   under hypervisor %6.2f s\n' "$i" "$p" "$h"
done
mp=$(printf '%s\n' "${plain[@]}" | median)
mh=$(printf '%s\n' "${hyp[@]}" | median)
ratio=$(awk -v a="$mh" -v b="$mp" 'BEGIN { print a / b }')
printf 'boot to /init (guest uptime, median of %d, %s, %d vCPU): plain QEMU %.2f s, hypervisor %.2f s, ratio %.2f\n' \
    "$RUNS" "$CPU" "$SMP" "$mp" "$mh" "$ratio"
# For scripts/bench-plot.py: metric,unit,plain,hypervisor,runs
mkdir -p "$root/build/bench"
echo "boot to /init,s,$mp,$mh,$RUNS" >"$root/build/bench/boot-time.csv"
