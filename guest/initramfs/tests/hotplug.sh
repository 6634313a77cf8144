#!/bin/sh
# Takes the last CPU offline (PSCI CPU_OFF) and back online (PSCI CPU_ON) twice, printing
#   HVTEST: online <n>   after each step (the number of online CPUs)
last=$(($(grep -c processor /proc/cpuinfo) - 1))
online() { echo "HVTEST: online $(grep -c processor /proc/cpuinfo)"; }
online
for round in 1 2; do
    echo 0 >/sys/devices/system/cpu/cpu$last/online || echo "HVTEST: offline failed"
    online
    echo 1 >/sys/devices/system/cpu/cpu$last/online || echo "HVTEST: online failed"
    online
done
# The CPU that came back does work: run something pinned to it.
echo "HVTEST: pinned $(taskset -c "$last" sh -c 'echo ran-on-$(cut -d" " -f39 /proc/self/stat)')"
