#!/usr/bin/env bash
# The hybrid VM's own costs (part of `make bench`), each next to the Linux operation it stands
# in for, measured in the same boot of a hybrid VM (3 ROS + 1 HRT vCPUs on 4 pCPUs):
#   - HRT boot (hypervisor starts the boot -> every HRT core reported ready) next to a Linux
#     process start in the ROS (fork + exec + exit of a static program: hvbench spawn);
#   - the null hypercall from a ROS process (EL0, doorbell: hvmctl loop-null) and from the HRT
#     kernel (EL1, hvc: the HRT's `bench` option) next to getppid in the ROS (hvbench getppid).
# RUNS boots (default 3); prints each run and the medians; writes build/bench/hvm-bench.txt.
#   RUNS [3]   TIMEOUT [300] (seconds per boot)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-300}
out=$root/build/bench
mkdir -p "$out"

say() { printf '[hvm-bench] %s\n' "$*"; }
die() { printf '[hvm-bench] error: %s\n' "$*" >&2; exit 1; }

[ -f "$root/build/hrt.elf" ] || die "build/hrt.elf not found: run 'make build'"
# The same guest work as scripts/guest-bench.sh (nokaslr: no KPTI; see docs/design-notes.md).
CMD='hvbench getppid 20000 && hvbench spawn 200 && hvmctl loop-null 20000'
results=()
for run in $(seq 1 "$RUNS"); do
    say "run $run of $RUNS: booting the hybrid VM"
    log=$(CMD="$CMD" HRT="$root/build/hrt.elf" HRT_ARGS=bench HYP_ARGS="hvm=on" SMP=4 \
          GUEST_ARGS="console=ttyAMA0 hvloglevel=1 nokaslr mitigations=off" TIMEOUT="$TIMEOUT" \
          "$root/scripts/run.sh" 2>&1) || { printf '%s\n' "$log" | tail -20; die "run $run failed"; }
    hrt_boot=$(sed -n 's/.*(HRT) ready: .* booted in \([0-9.]*\) ms.*/\1/p' <<<"$log")
    el1_null=$(sed -n 's/.*(HRT) bench: null hypercall from EL1: \([0-9.]*\) ns\/call.*/\1/p' <<<"$log")
    el0_null=$(sed -n 's/.*loop-null: .* \([0-9]*\) ns\/call.*/\1/p' <<<"$log")
    getppid=$(sed -n 's/.*HVBENCH: getppid \([0-9.]*\) ns.*/\1/p' <<<"$log")
    spawn=$(sed -n 's/.*HVBENCH: process_start \([0-9.]*\) us.*/\1/p' <<<"$log")
    for value in "$hrt_boot" "$el1_null" "$el0_null" "$getppid" "$spawn"; do
        [ -n "$value" ] || { printf '%s\n' "$log" | tail -20; die "run $run: a result line is missing"; }
    done
    say "run $run: HRT boot $hrt_boot ms, process start $spawn us, null EL0 $el0_null ns, null EL1 $el1_null ns, getppid $getppid ns"
    results+=("$hrt_boot $spawn $el0_null $el1_null $getppid")
done

printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, line.split())) for line in sys.stdin if line.strip()]
med = [statistics.median(column) for column in zip(*rows)]
hrt_boot_ms, spawn_us, el0_ns, el1_ns, getppid_ns = med
print(f"Hybrid VM costs, median of {len(rows)} boot(s) (3 ROS + 1 HRT vCPUs on 4 pCPUs, QEMU TCG)")
print()
print("| operation | median | compared with | median | ratio |")
print("|---|---|---|---|---|")
print(f"| HRT boot (start to every core ready) | {hrt_boot_ms * 1000:.0f} us | Linux process start (fork+exec+exit) | {spawn_us:.0f} us | x{hrt_boot_ms * 1000 / spawn_us:.2f} |")
print(f"| null hypercall, ROS process (EL0, doorbell) | {el0_ns:.0f} ns | getppid system call | {getppid_ns:.0f} ns | x{el0_ns / getppid_ns:.2f} |")
print(f"| null hypercall, HRT kernel (EL1, hvc) | {el1_ns:.0f} ns | getppid system call | {getppid_ns:.0f} ns | x{el1_ns / getppid_ns:.2f} |")
' | tee "$out/hvm-bench.txt"
say "wrote build/bench/hvm-bench.txt"
