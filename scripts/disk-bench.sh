#!/usr/bin/env bash
# Sequential write and read throughput of the guest's virtio-blk disk (O_DIRECT), on
# plain QEMU (the guest drives QEMU's virtio-blk itself) and under the hypervisor (emulated
# virtio-blk over QEMU's), in one run. Prints each run, medians and ratios. A measurement,
# not a test.   RUNS [3]  SMP [1]  MB [256] (MiB written, then read; at most 480)
# PIN_CPU [""]: run the guest's dd on that CPU only (blkbench_cpu=), e.g. 0, where the disk's
# interrupt goes, to see what crossing between vCPUs costs.
# JOBS [1]: that many dd processes at once, each on its own 1/JOBS of the MB (requests in flight
# together, as a parallel workload has them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
SMP=${SMP:-1}
MB=${MB:-256}
PIN_CPU=${PIN_CPU:-}
JOBS=${JOBS:-1}
[[ $MB =~ ^[1-9][0-9]*$ ]] && [ "$MB" -le 480 ] || { echo "disk-bench: MB must be 1..480, got '$MB'" >&2; exit 2; }
[[ -z $PIN_CPU || $PIN_CPU =~ ^[0-9]+$ ]] || { echo "disk-bench: PIN_CPU must be a CPU number, got '$PIN_CPU'" >&2; exit 2; }
[[ $JOBS =~ ^[1-9][0-9]*$ ]] && [ "$JOBS" -le "$MB" ] || { echo "disk-bench: JOBS must be 1..MB, got '$JOBS'" >&2; exit 2; }
ARGS="console=ttyAMA0 hvtest=blkbench blkbench_mb=$MB blkbench_jobs=$JOBS${PIN_CPU:+ blkbench_cpu=$PIN_CPU}"
disk=$root/build/test-files/bench-disk.img
mkdir -p "$(dirname "$disk")"
truncate -s 512M "$disk"

field() { sed -n "s/.*HVTEST: blkbench $1 \([0-9.]*\).*/\1/p" | head -1; }

native() {
    timeout 300 qemu-system-aarch64 -M virt,gic-version=3 -cpu cortex-a57 -smp "$SMP" -m 1G -nographic -nic none \
        -kernel "$root/build/guest/Image" -initrd "$root/build/guest/initramfs.cpio.gz" -append "$ARGS" \
        -drive "if=none,file=$disk,format=raw,id=hd0" -device virtio-blk-device,drive=hd0 </dev/null
}

hypervised() {
    SMP=$SMP HYP_ARGS="vcpus=$SMP" GUEST_ARGS="$ARGS" DISK=$disk TIMEOUT=300 "$root/scripts/qemu.sh" </dev/null
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

pw=(); pr=(); hw=(); hr=()
for i in $(seq 1 "$RUNS"); do
    n=$(native); h=$(hypervised)
    a=$(field write <<<"$n"); b=$(field read <<<"$n"); c=$(field write <<<"$h"); d=$(field read <<<"$h")
    [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ] && [ -n "$d" ] || { echo "disk-bench: run $i failed" >&2; exit 1; }
    pw+=("$a"); pr+=("$b"); hw+=("$c"); hr+=("$d")
    printf 'run %d: plain QEMU write %7.1f read %7.1f MB/s   hypervisor write %7.1f read %7.1f MB/s\n' "$i" "$a" "$b" "$c" "$d"
done
m() { printf '%s\n' "$@" | median; }
mpw=$(m "${pw[@]}"); mpr=$(m "${pr[@]}"); mhw=$(m "${hw[@]}"); mhr=$(m "${hr[@]}")
kind=sequential
[ "$JOBS" = 1 ] || kind="$JOBS-stream"
printf '%s write (median of %d): plain QEMU %.1f MB/s, hypervisor %.1f MB/s, ratio %.2f\n' "$kind" "$RUNS" "$mpw" "$mhw" "$(awk -v a="$mhw" -v b="$mpw" 'BEGIN { print a / b }')"
printf '%s read  (median of %d): plain QEMU %.1f MB/s, hypervisor %.1f MB/s, ratio %.2f\n' "$kind" "$RUNS" "$mpr" "$mhr" "$(awk -v a="$mhr" -v b="$mpr" 'BEGIN { print a / b }')"
# For scripts/bench-plot.py: metric,unit,plain,hypervisor,runs
mkdir -p "$root/build/bench"
{
    echo "disk $kind write,MB/s,$mpw,$mhw,$RUNS"
    echo "disk $kind read,MB/s,$mpr,$mhr,$RUNS"
} >"$root/build/bench/disk.csv"
