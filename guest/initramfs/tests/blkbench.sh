#!/bin/sh
# Sequential throughput of the raw disk /dev/vda (its first 64 MiB are overwritten):
#   HVTEST: blkbench write <MB/s>
#   HVTEST: blkbench read <MB/s>
# Timed with /proc/uptime around dd, with O_DIRECT so the page cache does not hide the disk.
# blkbench_cpu=N (kernel parameter) runs dd on CPU N only, e.g. the CPU the disk's interrupt
# goes to (CPU 0 unless the guest moved it), so completions need no cross-CPU wake-up.
# blkbench_jobs=N splits the work between N dd processes at once, each on its own 1/N of the
# area: requests in flight together (the rates count all of them).
size_mb=${blkbench_mb:-64}
jobs=${blkbench_jobs:-1}
case $jobs in '' | *[!0-9]* | 0) echo "HVTEST: blkbench bad-jobs"; exit 1 ;; esac
per=$((size_mb / jobs))
[ "$per" -gt 0 ] || { echo "HVTEST: blkbench bad-jobs"; exit 1; }
size_mb=$((per * jobs))
on_cpu() { if [ -n "${blkbench_cpu:-}" ]; then taskset -c "$blkbench_cpu" "$@"; else "$@"; fi; }
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/vda ] || { echo "HVTEST: blkbench no-vda"; exit 1; }
uptime_ms() { read -r t _ </proc/uptime; echo "${t%.*}${t#*.}0"; }
rate() { echo "$1 $2" | awk '{ printf "%.1f", $1 / ($2 / 1000) }'; }
# dd_all write|read: the jobs' dd processes, all at once; fails if one does.
dd_all() {
    k=0
    pids=
    while [ "$k" -lt "$jobs" ]; do
        if [ "$1" = write ]; then
            on_cpu dd if=/dev/zero of=/dev/vda bs=1M count="$per" seek=$((k * per)) oflag=direct 2>/dev/null &
        else
            on_cpu dd if=/dev/vda of=/dev/null bs=1M count="$per" skip=$((k * per)) iflag=direct 2>/dev/null &
        fi
        pids="$pids $!"
        k=$((k + 1))
    done
    status=0
    for pid in $pids; do wait "$pid" || status=1; done
    return "$status"
}
t0=$(uptime_ms)
dd_all write || exit 1
t1=$(uptime_ms)
dd_all read || exit 1
t2=$(uptime_ms)
echo "HVTEST: blkbench write $(rate "$size_mb" $((t1 - t0)))"
echo "HVTEST: blkbench read $(rate "$size_mb" $((t2 - t1)))"
