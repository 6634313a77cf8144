#!/usr/bin/env bash
# The hybrid VM's own costs (part of `make bench`), each next to the Linux operation it stands
# in for, measured in the same boot of a hybrid VM (3 ROS + 1 HRT vCPUs on 4 pCPUs):
#   - HRT boot (hypervisor starts the boot -> every HRT core reported ready) next to a Linux
#     process start in the ROS (fork + exec + exit of a static program: hvbench spawn);
#   - the null hypercall from a ROS process (EL0, doorbell: hvmctl loop-null) and from the HRT
#     kernel (EL1, hvc: the HRT's `bench` option) next to getppid in the ROS (hvbench getppid);
#   - an async invocation round trip (hvmctl bench-invoke) next to a pipe ping-pong between two
#     ROS CPUs (hvbench pipe-cross), a sync invocation round trip next to a shared-memory
#     ping-pong between two ROS threads on different CPUs (hvbench shm-cross), and a parallel
#     invocation on every HRT core;
#   - merged (hvm-merge-bench): a merge round trip, a page fault of ROS code in the HRT
#     forwarded to its process next to a native first touch, a system call forwarded next to
#     the native one.
# RUNS boots (default 3); prints each run and the medians; writes build/bench/hvm-bench.txt
# (the table) and build/bench/hvm-bench.csv, in the suite format scripts/bench-plot.py draws
# (header metric,config,unit,plain,hypervisor,runs; here "plain" is the Linux operation the
# HVM one is compared with, so the chart shows HVM/Linux ratios).
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
CMD='hvbench getppid 20000 && hvbench spawn 200 && hvmctl loop-null 20000 && hvbench pipe-cross 500 && hvbench shm-cross 20000 && hvmctl bench-invoke 300 && hvm-merge-bench 20'
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
    pipe=$(sed -n 's/.*HVBENCH: pipe_cross \([0-9.]*\) us.*/\1/p' <<<"$log")
    shm=$(sed -n 's/.*HVBENCH: shm_cross \([0-9.]*\) ns.*/\1/p' <<<"$log")
    inv_async=$(sed -n 's/.*HVBENCH: invoke_async \([0-9.]*\) us.*/\1/p' <<<"$log")
    inv_par=$(sed -n 's/.*HVBENCH: invoke_parallel \([0-9.]*\) us.*/\1/p' <<<"$log")
    inv_sync=$(sed -n 's/.*HVBENCH: invoke_sync \([0-9.]*\) ns.*/\1/p' <<<"$log")
    merge_rt=$(sed -n 's/.*HVBENCH: merge_rt \([0-9.]*\) us.*/\1/p' <<<"$log")
    fault_fwd=$(sed -n 's/.*HVBENCH: fault_forward \([0-9.]*\) us.*/\1/p' <<<"$log")
    first_touch=$(sed -n 's/.*HVBENCH: first_touch \([0-9.]*\) us.*/\1/p' <<<"$log")
    sys_fwd=$(sed -n 's/.*HVBENCH: syscall_forward \([0-9.]*\) us.*/\1/p' <<<"$log")
    sys_native=$(sed -n 's/.*HVBENCH: syscall \([0-9.]*\) us.*/\1/p' <<<"$log")
    for value in "$hrt_boot" "$el1_null" "$el0_null" "$getppid" "$spawn" "$pipe" "$shm" "$inv_async" "$inv_par" "$inv_sync" \
                 "$merge_rt" "$fault_fwd" "$first_touch" "$sys_fwd" "$sys_native"; do
        [ -n "$value" ] || { printf '%s\n' "$log" | tail -20; die "run $run: a result line is missing"; }
    done
    say "run $run: HRT boot $hrt_boot ms, process start $spawn us, null EL0 $el0_null ns, null EL1 $el1_null ns, getppid $getppid ns"
    say "run $run: invoke async $inv_async us (pipe cross $pipe us), sync $inv_sync ns (shm cross $shm ns), parallel $inv_par us"
    say "run $run: merge $merge_rt us, fault forwarded $fault_fwd us (first touch $first_touch us), syscall forwarded $sys_fwd us (native $sys_native us)"
    results+=("$hrt_boot $spawn $el0_null $el1_null $getppid $pipe $shm $inv_async $inv_par $inv_sync $merge_rt $fault_fwd $first_touch $sys_fwd $sys_native")
done

printf '%s\n' "${results[@]}" | CSV="$out/hvm-bench.csv" python3 -c '
import csv, os, statistics, sys
rows = [list(map(float, line.split())) for line in sys.stdin if line.strip()]
med = [statistics.median(column) for column in zip(*rows)]
(hrt_boot_ms, spawn_us, el0_ns, el1_ns, getppid_ns, pipe_us, shm_ns, async_us, par_us, sync_ns,
 merge_us, fault_us, touch_us, sysfwd_us, sys_us) = med
print(f"Hybrid VM costs, median of {len(rows)} boot(s) (3 ROS + 1 HRT vCPUs on 4 pCPUs, QEMU TCG)")
print()
print("| operation | median | compared with | median | ratio |")
print("|---|---|---|---|---|")
print(f"| HRT boot (start to every core ready) | {hrt_boot_ms * 1000:.0f} us | Linux process start (fork+exec+exit) | {spawn_us:.0f} us | x{hrt_boot_ms * 1000 / spawn_us:.2f} |")
print(f"| null hypercall, ROS process (EL0, doorbell) | {el0_ns:.0f} ns | getppid system call | {getppid_ns:.0f} ns | x{el0_ns / getppid_ns:.2f} |")
print(f"| null hypercall, HRT kernel (EL1, hvc) | {el1_ns:.0f} ns | getppid system call | {getppid_ns:.0f} ns | x{el1_ns / getppid_ns:.2f} |")
print(f"| async invocation round trip (ADD) | {async_us:.1f} us | pipe ping-pong across 2 ROS CPUs | {pipe_us:.1f} us | x{async_us / pipe_us:.2f} |")
print(f"| sync invocation round trip (ADD) | {sync_ns:.0f} ns | shared-memory ping-pong, 2 ROS threads | {shm_ns:.0f} ns | x{sync_ns / shm_ns:.2f} |")
print(f"| parallel invocation, every HRT core | {par_us:.1f} us | async invocation, first HRT core | {async_us:.1f} us | x{par_us / async_us:.2f} |")
print(f"| merge round trip | {merge_us:.1f} us | async invocation, first HRT core | {async_us:.1f} us | x{merge_us / async_us:.2f} |")
print(f"| page fault of ROS code in the HRT, forwarded | {fault_us:.1f} us | first touch of a page in the ROS | {touch_us:.1f} us | x{fault_us / touch_us:.2f} |")
print(f"| system call of ROS code in the HRT, forwarded | {sysfwd_us:.1f} us | getppid in the ROS | {sys_us:.2f} us | x{sysfwd_us / sys_us:.2f} |")
config = "3ros+1hrt"
with open(os.environ["CSV"], "w", newline="") as handle:
    out = csv.writer(handle)
    out.writerow(["metric", "config", "unit", "plain", "hypervisor", "runs"])
    out.writerow(["hrt_boot vs process_start", config, "us", f"{spawn_us:.3f}", f"{hrt_boot_ms * 1000:.3f}", len(rows)])
    out.writerow(["null_el0 vs getppid", config, "ns", f"{getppid_ns:.3f}", f"{el0_ns:.3f}", len(rows)])
    out.writerow(["null_el1 vs getppid", config, "ns", f"{getppid_ns:.3f}", f"{el1_ns:.3f}", len(rows)])
    out.writerow(["invoke_async vs pipe_cross", config, "us", f"{pipe_us:.3f}", f"{async_us:.3f}", len(rows)])
    out.writerow(["invoke_sync vs shm_cross", config, "ns", f"{shm_ns:.3f}", f"{sync_ns:.3f}", len(rows)])
    out.writerow(["invoke_parallel vs invoke_async", config, "us", f"{async_us:.3f}", f"{par_us:.3f}", len(rows)])
    out.writerow(["merge_rt vs invoke_async", config, "us", f"{async_us:.3f}", f"{merge_us:.3f}", len(rows)])
    out.writerow(["fault_forward vs first_touch", config, "us", f"{touch_us:.3f}", f"{fault_us:.3f}", len(rows)])
    out.writerow(["syscall_forward vs syscall", config, "us", f"{sys_us:.3f}", f"{sysfwd_us:.3f}", len(rows)])
' | tee "$out/hvm-bench.txt"
say "wrote build/bench/hvm-bench.txt and build/bench/hvm-bench.csv"
