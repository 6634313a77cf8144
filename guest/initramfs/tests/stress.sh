#!/bin/sh
# SMP stress for at least $stress_seconds (default 60) seconds of guest time, on every CPU:
# busy loops, a pipe ping-pong between processes pinned to different CPUs, and fork/exec
# churn. Prints
#   HVTEST: stress done seconds=<s> pingpong=<n> forks=<n>
#   HVTEST: dmesg-bad <line>      for kernel log lines showing stalls or lockups
#   HVTEST: dmesg-bad-count <n>
seconds=${stress_seconds:-60}
ncpu=$(grep -c processor /proc/cpuinfo)
echo "HVTEST: stress on $ncpu cpus for ${seconds}s"
read -r start _ </proc/uptime
start=${start%.*}
end=$((start + seconds))

now() { read -r t _ </proc/uptime; echo "${t%.*}"; }

pids=""
# Busy loops, one per CPU.
cpu=0
while [ "$cpu" -lt "$ncpu" ]; do
    taskset -c "$cpu" sh -c "while [ \$(cut -d. -f1 /proc/uptime) -lt $end ]; do :; done" &
    pids="$pids $!"
    cpu=$((cpu + 1))
done

# Pipe ping-pong between the first and the last CPU.
mkfifo /tmp/ping /tmp/pong
taskset -c $((ncpu - 1)) sh -c 'while read -r x; do echo "$x"; done </tmp/ping >/tmp/pong' &
echoer=$!
(
    exec 3>/tmp/ping 4</tmp/pong
    n=0
    while [ "$(now)" -lt "$end" ]; do
        echo "$n" >&3
        read -r reply <&4
        [ "$reply" = "$n" ] || { echo "HVTEST: pingpong mismatch $n $reply"; break; }
        n=$((n + 1))
    done
    echo "$n" >/tmp/pingpong.count
) &
pinger=$!

# Fork/exec churn.
(
    n=0
    while [ "$(now)" -lt "$end" ]; do
        /bin/true
        n=$((n + 1))
    done
    echo "$n" >/tmp/forks.count
) &
forker=$!

wait $pinger $forker
kill $echoer 2>/dev/null
for p in $pids; do wait "$p"; done
echo "HVTEST: stress done seconds=$(($(now) - start)) pingpong=$(cat /tmp/pingpong.count) forks=$(cat /tmp/forks.count)"
n=0
bad=$(dmesg | grep -iE 'rcu.*stall|soft lockup|hung task|blocked for more than|oops|bug:|warning:')
if [ -n "$bad" ]; then
    echo "$bad" | while IFS= read -r line; do echo "HVTEST: dmesg-bad $line"; done
    n=$(echo "$bad" | wc -l)
fi
echo "HVTEST: dmesg-bad-count $n"
