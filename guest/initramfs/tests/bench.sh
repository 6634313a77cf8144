#!/bin/sh
# The guest side of scripts/guest-bench.sh (hvtest=bench): runs /bin/hvbench's measurements
# with fixed sizes, then the disk's if there is one. Every result is a line
#   HVBENCH: <metric> <value> <unit>
# (see guest/bench/hvbench.c for what each metric measures) and each step is framed by
#   HVTEST: bench step <name> ... / HVTEST: bench step <name> took <s> s
# The disk step overwrites the start of /dev/vda (the host attaches a throw-away copy):
#   disk_write  MB/s   64 MiB of zeros written sequentially, then fsync (dd conv=fsync)
#   disk_read   MB/s   the same 64 MiB read back with O_DIRECT (no page cache)
# Sizes come from benchset= (kernel parameter, default full): full is tuned so that a boot and
# the whole suite take about 30 s of wall time on plain QEMU TCG with 4 CPUs on an idle 2-core
# host (under the hypervisor with 4 vCPUs: 40-80 s); quick is a seconds-long check that
# everything runs. Exits non-zero if any step failed.
set -u
bench=/bin/hvbench
[ -x "$bench" ] || { echo "HVTEST: bench $bench missing"; exit 1; }

case "${benchset:-full}" in
full)
    # Sizes for ~1-4 s of plain QEMU time each (TCG, 4 CPUs).
    getppid_n=3000000   # ~1.5 us per call
    clock_n=15000000    # ~0.1 us per call
    pipe_same_n=30000   # ~0.12 ms per round trip
    pipe_cross_n=15000  # ~0.2 ms per round trip; up to 10x more when the host is busy
    # 400 processes, 12 MB. Each receiver's pipe gets 20 x 30 x 100 B in all, less than the
    # 64 KiB a pipe holds: with more, senders block on full pipes and the time grows much
    # faster than the bytes (40 messages take 3-4 times as long as 20).
    hack_groups=10 hack_per_side=20 hack_messages=30  # ~1-2 s
    sleep_n=4000        # 1 ms sleeps plus ~0.2 ms overshoot: ~5 s
    touch_mib=384       # 98304 pages, ~20 us each on first touch
    cpu_n=1500000000    # ~2 ns per xorshift round
    disk_mb=64
    ;;
quick)
    getppid_n=10000 clock_n=10000 pipe_same_n=1000 pipe_cross_n=1000
    hack_groups=2 hack_per_side=4 hack_messages=10
    sleep_n=100 touch_mib=16 cpu_n=1000000 disk_mb=8
    ;;
*)
    echo "HVTEST: bench unknown benchset=${benchset} (full or quick)"
    exit 1
    ;;
esac

echo "HVTEST: bench set=${benchset:-full} cpus=$(grep -c processor /proc/cpuinfo)"
failed=0
# Monotonic nanoseconds: the "now at <ns> nsecs" line, the third of /proc/timer_list (busybox
# has no date +%N, and /proc/uptime's 10 ms steps are too coarse for a 64 MiB read).
now_ns() { { read -r _; read -r _; read -r _ _ ns _; } </proc/timer_list; echo "$ns"; }
secs() { echo "$1" | awk '{ printf "%.2f", $1 / 1e9 }'; }

# step NAME COMMAND...: runs one measurement, times it, counts failures.
step() {
    name=$1
    shift
    echo "HVTEST: bench step $name ..."
    t0=$(now_ns)
    if ! "$@"; then
        echo "HVTEST: bench step $name failed"
        failed=$((failed + 1))
    fi
    echo "HVTEST: bench step $name took $(secs $(($(now_ns) - t0))) s"
}

step getppid "$bench" getppid "$getppid_n"
step clock "$bench" clock "$clock_n"
step pipe-same "$bench" pipe-same "$pipe_same_n"
step pipe-cross "$bench" pipe-cross "$pipe_cross_n"
step hackbench "$bench" hackbench "$hack_groups" "$hack_per_side" "$hack_messages"
step sleep "$bench" sleep "$sleep_n"
step touch "$bench" touch "$touch_mib"
step cpu "$bench" cpu "$cpu_n"

# Disk: the approach of blkbench.sh (busybox dd, timed around it), MB = 2^20 bytes.
rate() { echo "$1 $2" | awk '{ printf "%.1f", $1 / ($2 / 1e9) }'; }
disk() {
    d0=$(now_ns)
    dd if=/dev/zero of=/dev/vda bs=1M count="$disk_mb" conv=fsync 2>/dev/null || return 1
    d1=$(now_ns)
    dd if=/dev/vda of=/dev/null bs=1M count="$disk_mb" iflag=direct 2>/dev/null || return 1
    d2=$(now_ns)
    echo "HVBENCH: disk_write $(rate "$disk_mb" $((d1 - d0))) MB/s"
    echo "HVBENCH: disk_read $(rate "$disk_mb" $((d2 - d1))) MB/s"
}
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 20 ]; do sleep 0.1; i=$((i + 1)); done  # up to 2 s
if [ ! -b /dev/vda ]; then
    echo "HVTEST: bench no /dev/vda: disk metrics skipped"
elif ! command -v dd >/dev/null; then
    echo "HVTEST: bench no dd: disk metrics skipped"
else
    step disk disk
fi

echo "HVTEST: bench failed steps=$failed"
[ "$failed" -eq 0 ]
