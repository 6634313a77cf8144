#!/bin/sh
# Cross-CPU IPIs at full rate: pipe ping-pong between processes pinned to CPU 0 and CPU 1
# (every round trip two wake-ups across CPUs), 6,000 round trips, four times.
# A lost IPI leaves the guest hung here (it once did: two vCPUs spinning on a lock).
i=0
while [ $i -lt 4 ]; do
    hvbench pipe-cross 6000 || exit 1
    i=$((i + 1))
done
echo "HVTEST: pingpong rounds=$i"
