#!/bin/sh
# Prints /proc/interrupts twice, one second apart, then
#   HVTEST: arch_timer <n1> <n2>
# with the arch_timer interrupt counts summed over all CPUs (and all arch_timer lines) for
# each snapshot: n2 > n1 shows that the timer interrupt is being delivered.

# arch_timer_sum: /proc/interrupts on stdin. The header has one column per CPU; a line is
# "IRQ: <count per CPU> <chip> <hwirq> <type> <name>".
arch_timer_sum() {
    awk 'NR == 1 { ncpu = NF; next }
         /arch_timer/ { for (i = 2; i <= ncpu + 1 && $i ~ /^[0-9]+$/; i++) s += $i }
         END { print s + 0 }'
}

a=$(cat /proc/interrupts)
echo "$a"
n1=$(echo "$a" | arch_timer_sum)
sleep 1
b=$(cat /proc/interrupts)
echo "$b"
n2=$(echo "$b" | arch_timer_sum)
echo "HVTEST: arch_timer $n1 $n2"
