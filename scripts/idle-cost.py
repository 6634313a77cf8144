#!/usr/bin/env python3
"""What an idle vCPU costs: boots Linux under the hypervisor with VCPUS vCPUs (default 4 on 4
pCPUs), waits for its shell, prints the exit profile (Ctrl-] on the console), lets the guest
idle for IDLE_SECONDS (default 10), prints the profile again, and reports each vCPU's hypervisor
(EL2) time over that interval as a share of wall time. Writes build/bench/idle-cost.csv in the
suites' format (metric,config,unit,plain,hypervisor,runs; the plain column is empty: plain
QEMU has no EL2 time). A measurement, not a test.

Knobs (environment): VCPUS [4], SMP [= VCPUS], IDLE_SECONDS [10], TIMEOUT [180].
"""

import argparse
import csv
import os
import pathlib
import re
import select
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROFILE_KEY = b"\x1d"  # Ctrl-]: the hypervisor prints its exit profile
SUMMARY = re.compile(r"profile begin version=\d+ counter_hz=(\d+)|profile vcpu=(\d+) guest_ticks=\d+ hyp_ticks=(\d+)")


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    vcpus = int(os.environ.get("VCPUS", "4"))
    seconds = float(os.environ.get("IDLE_SECONDS", "10"))
    env = dict(os.environ, SMP=os.environ.get("SMP", str(vcpus)), RAM="2G", HYP_ARGS=f"vcpus={vcpus} mem=1G",
               TIMEOUT=os.environ.get("TIMEOUT", "180"), GUEST_ARGS="console=ttyAMA0 nokaslr mitigations=off hvloglevel=1")
    qemu = subprocess.Popen([str(ROOT / "scripts/qemu.sh")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    log = bytearray()

    def read_for(duration: float) -> None:
        end = time.time() + duration
        while time.time() < end:
            ready, _, _ = select.select([qemu.stdout], [], [], 0.2)
            if ready:
                data = os.read(qemu.stdout.fileno(), 65536)
                if not data:
                    return
                log.extend(data)

    def profile() -> tuple[int, dict[int, int]]:
        start = len(log)
        qemu.stdin.write(PROFILE_KEY)
        qemu.stdin.flush()
        read_for(3)
        hz, ticks = 0, {}
        for match in SUMMARY.finditer(log[start:].decode(errors="replace")):
            if match.group(1):
                hz = int(match.group(1))
            else:
                ticks[int(match.group(2))] = int(match.group(3))
        return hz, ticks

    try:
        deadline = time.time() + 150
        while b"HVTEST: shell ready" not in log:
            if time.time() > deadline or qemu.poll() is not None:
                print("idle-cost: the guest did not reach its shell", file=sys.stderr)
                return 1
            read_for(0.5)
        read_for(3)  # let the boot's last work settle
        hz, before = profile()
        started = time.time()
        read_for(seconds)
        _, after = profile()
        elapsed = time.time() - started
    finally:
        os.killpg(qemu.pid, 9)
    if not hz or sorted(before) != list(range(vcpus)) or sorted(after) != list(range(vcpus)):
        print("idle-cost: could not read both profiles", file=sys.stderr)
        return 1
    rows = []
    for vcpu in range(vcpus):
        share = (after[vcpu] - before[vcpu]) / hz / elapsed * 100
        print(f"vcpu{vcpu}: hypervisor time {(after[vcpu] - before[vcpu]) / hz * 1e3:.1f} ms over {elapsed:.1f} s "
              f"of idling = {share:.2f}% (vcpu0's includes printing the profile)")
        rows.append((f"idle_el2_vcpu{vcpu}", f"{vcpus}vcpu", "%", "", f"{share:.3f}", 1))
    out = ROOT / "build/bench/idle-cost.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric", "config", "unit", "plain", "hypervisor", "runs"])
        writer.writerows(rows)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
