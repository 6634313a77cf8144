#!/bin/sh
# Basic health check of the guest:
#   uname -a
#   HVTEST: cpus <n>               CPUs the kernel brought up (/proc/cpuinfo)
#   HVTEST: dmesg-bad <line>       for each kernel log line that looks like trouble
#   HVTEST: dmesg-bad-count <n>
uname -a
echo "HVTEST: cpus $(grep -c processor /proc/cpuinfo)"
n=0
bad=$(dmesg | grep -iE 'oops|bug:|warning:|rcu.*stall|timed out')
if [ -n "$bad" ]; then
    while IFS= read -r line; do
        echo "HVTEST: dmesg-bad $line"
        n=$((n + 1))
    done <<END
$bad
END
fi
echo "HVTEST: dmesg-bad-count $n"
