#!/usr/bin/env bash
# Virtualization costs seen from inside a guest: boots guest/microbench (a bare-metal EL1
# kernel, build/microbench.bin) on plain QEMU and under the hypervisor, alternating, RUNS times
# each, and compares what it measures: PSCI_VERSION through the conduit (null_hvc), MMIO reads
# of the PL011 and the GIC distributor, interrupt ack+EOI, self-SGI delivery, an IPI round trip
# between two CPUs, and the virtual timer's interrupt latency (busy and in WFI).
#
#   plain QEMU:  qemu-system-aarch64 -M virt,gic-version=3 -cpu $CPU -smp 2 -m 1G -kernel microbench.bin
#   hypervisor:  scripts/qemu.sh with SMP=2 HYP_ARGS="vcpus=2 mem=256M" KERNEL=build/microbench.bin INITRD=none
#
# Prints one line per boot, then per metric the median over runs of each run's median (ns),
# plain and hypervisor, and their ratio; writes build/bench/microbench.csv (header
# metric,config,unit,plain,hypervisor,runs: config 2vcpu, unit ns, the guest benchmark suite's
# format) and keeps each boot's serial log in build/bench/microbench/<side>.<run>.log.
# Exit status 1 if a boot failed or a metric was unavailable (the table is printed all the
# same). A measurement, not a test: figures depend on the machine and on its load.
#
# Knobs: RUNS [3]  CPU [cortex-a57]  TIMEOUT [120] (seconds per boot)
#        NO_BUILD [""] (1: use build/microbench.bin as it is; else scripts/build-microbench.sh
#        runs first). build/hypervisor.bin must exist ('make build').
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

RUNS=${RUNS:-3}
CPU=${CPU:-cortex-a57}
TIMEOUT=${TIMEOUT:-120}
NO_BUILD=${NO_BUILD:-}
CONFIG=2vcpu   # two CPUs on both sides: 2 vCPUs on 2 pCPUs under the hypervisor
kernel=$root/build/microbench.bin
out=$root/build/bench
logs=$out/microbench
csv=$out/microbench.csv

say() { printf '[microbench] %s\n' "$*"; }
die() { printf '[microbench] error: %s\n' "$*" >&2; exit 2; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "TIMEOUT must be a positive integer, got '$TIMEOUT'"
[ -f "$root/build/hypervisor.bin" ] || die "build/hypervisor.bin missing: run 'make build'"
if [ "$NO_BUILD" != 1 ]; then
    "$root/scripts/build-microbench.sh"
fi
[ -f "$kernel" ] || die "build/microbench.bin missing: run scripts/build-microbench.sh"

rm -rf "$logs"
mkdir -p "$logs"

# boot SIDE RUN: one boot, its serial log in $logs/SIDE.RUN.log, QEMU's status appended.
boot() {
    local side=$1 run=$2 log start rc secs summary
    log=$logs/$side.$run.log
    printf '[microbench] run %d/%d %-11s ' "$run" "$RUNS" "$side:"
    start=$(date +%s.%N)
    set +e
    if [ "$side" = plain ]; then
        timeout --foreground -k 5 "$TIMEOUT" qemu-system-aarch64 -M virt,gic-version=3 -cpu "$CPU" \
            -smp 2 -m 1G -nographic -nic none -kernel "$kernel" </dev/null >"$log" 2>&1
    else
        SMP=2 CPU=$CPU HYP_ARGS="vcpus=2 mem=256M" KERNEL=$kernel INITRD=none TIMEOUT=$TIMEOUT \
            "$root/scripts/qemu.sh" </dev/null >"$log" 2>&1
    fi
    rc=$?
    set -e
    echo "MICROBENCH-RUN: qemu status=$rc" >>"$log"
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    # name=median pairs, for progress.
    summary=$(sed -n 's/^MICROBENCH: \([a-z_]*\) median_ns=\([0-9]*\).*/\1=\2/p' "$log" | tr -d '\r' | tr '\n' ' ')
    printf '%5s s  %s\n' "$secs" "${summary:-no results}"
}

say "$RUNS run(s), plain QEMU and hypervisor alternating; CPU $CPU, 2 CPUs, timeout ${TIMEOUT}s per boot"
for run in $(seq 1 "$RUNS"); do
    boot plain "$run"
    boot hyp "$run"
done
echo

status=0
python3 - "$logs" "$csv" "$RUNS" "$CONFIG" <<'PY' || status=1
"""Per metric: median over runs of the per-run medians, per side; table, CSV and problems."""
import csv
import math
import pathlib
import re
import statistics
import sys

logs, out, runs, config = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
SIDES = {"plain": "plain QEMU", "hyp": "hypervisor"}
RESULT = re.compile(r"MICROBENCH: (\w+) median_ns=(\d+) min_ns=(\d+) n=(\d+)")
UNAVAILABLE = re.compile(r"MICROBENCH: (\w+) unavailable reason=(.*)")
TROUBLE = re.compile(r"MICROBENCH: (exception|error|panic|warning)\b.*|\(HYP\) (WARN|ERROR): .*|\(HYP\) .*panic.*")
STATUS = re.compile(r"MICROBENCH-RUN: qemu status=(\d+)")

metrics = []  # in first-seen order
values = {side: {} for side in SIDES}  # side -> metric -> [run medians]
problems = []

def seen(name):
    if name not in metrics:
        metrics.append(name)

for run in range(1, runs + 1):
    for side, label in SIDES.items():
        path = logs / f"{side}.{run}.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        done, qemu = False, None
        for line in text.splitlines():
            line = line.rstrip("\r")
            if m := RESULT.search(line):
                seen(m[1])
                values[side].setdefault(m[1], []).append(int(m[2]))
            elif m := UNAVAILABLE.search(line):
                seen(m[1])
                problems.append(f"{label} run {run}: {m[1]} unavailable: {m[2]}")
            elif m := TROUBLE.search(line):
                problems.append(f"{label} run {run}: {m[0]}")
            elif line.startswith("MICROBENCH: done"):
                done = True
            elif m := STATUS.search(line):
                qemu = int(m[1])
        if qemu == 124:
            problems.append(f"{label} run {run}: QEMU was killed by the timeout ({path})")
        elif qemu not in (None, 0):
            problems.append(f"{label} run {run}: QEMU exited with status {qemu} ({path})")
        if not done:
            problems.append(f"{label} run {run}: no 'MICROBENCH: done' line ({path})")

def med(side, name):
    got = values[side].get(name, [])
    return statistics.median(got) if got else math.nan

def cell(value, fmt="{:.0f}"):
    return "-" if math.isnan(value) else fmt.format(value)

rows = []
for name in metrics:
    plain, hyp = med("plain", name), med("hyp", name)
    count = min(len(values["plain"].get(name, [])), len(values["hyp"].get(name, [])))
    ratio = hyp / plain if plain and not math.isnan(plain) and not math.isnan(hyp) else math.nan
    rows.append((name, plain, hyp, ratio, count))

header = ("metric", "plain ns", "hypervisor ns", "ratio", "runs")
lines = [header] + [(n, cell(p), cell(h), cell(r, "{:.2f}"), str(c)) for n, p, h, r, c in rows]
widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
print(f"medians over {runs} run(s) of each run's median; ratio = hypervisor / plain QEMU")
for line in lines:
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))

out.parent.mkdir(parents=True, exist_ok=True)
def number(value):
    """A CSV cell as scripts/bench-table.py writes it: 6 significant digits, empty if unknown."""
    return "" if math.isnan(value) else f"{value:.6g}"

with open(out, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["metric", "config", "unit", "plain", "hypervisor", "runs"])
    for name, plain, hyp, _, count in rows:
        writer.writerow([name, config, "ns", number(plain), number(hyp), count])
print(f"written to {out}")
for problem in problems:
    print(f"PROBLEM: {problem}")
sys.exit(1 if problems else 0)
PY
if [ "$status" -ne 0 ]; then
    say "FAILED: see the PROBLEM lines and the logs in ${logs#"$root"/}/"
    exit 1
fi
