#!/bin/sh
# The soak (make soak, issue 13): for $soak_seconds (default 600) of guest time, on a hybrid VM
# whose ROS has 3 vCPUs time-sliced with the HRT's on 2 pCPUs, all at once:
#   - hackbench rounds (hvbench hackbench), cross-CPU pipe ping-pong rounds (hvbench pipe-cross);
#   - disk I/O: 256 KiB files of random data written to /dev/vda (rotating through 256 slots),
#     synced, each with its sha256;
#   - the EL0 fuzzer: random 0xf00d calls through the doorbell (random sub-operation and
#     arguments; never a ROS reset, which would end the soak) and random /dev/mem reads of the
#     device space and around RAM, from root processes (faults kill only those processes).
# Then it checks every file's sha256 and the kernel log. Prints
#   HVTEST: soak progress t=<s> hackbench=<n> pipe=<n> files=<n> calls=<n> devmem=<n>
#   HVTEST: soak done seconds=<s> hackbench=<n> pipe=<n> files=<n> calls=<n> devmem=<n>
#   HVTEST: soak disk ok|FAILED files=<n>
#   HVTEST: dmesg-bad <line> / HVTEST: dmesg-bad-count <n>
seconds=${soak_seconds:-600}
read -r start _ </proc/uptime
start=${start%.*}
end=$((start + seconds))
now() { read -r t _ </proc/uptime; echo "${t%.*}"; }
SLOTS=256
count() { cat "/tmp/soak.$1" 2>/dev/null || echo 0; }
bump() { echo $(($(count "$1") + 1)) >"/tmp/soak.$1"; }

mkdir -p /mnt && mount -t ext4 /dev/vda /mnt || { echo "HVTEST: soak disk FAILED mount"; exit 1; }
rm -rf /mnt/soak && mkdir -p /mnt/soak

(while [ "$(now)" -lt "$end" ]; do hvbench hackbench 2 4 20 >/dev/null 2>&1 && bump hackbench; done) &
(while [ "$(now)" -lt "$end" ]; do hvbench pipe-cross 200 >/dev/null 2>&1 && bump pipe; done) &
(
    # Files rotate through SLOTS slots (64 MiB of the 128 MiB disk), each with its own sum, so
    # the disk never fills however long the soak runs.
    n=0
    while [ "$(now)" -lt "$end" ]; do
        slot=$((n % SLOTS))
        if ! dd if=/dev/urandom of="/mnt/soak/f$slot" bs=4096 count=64 2>/dev/null; then
            echo "HVTEST: soak disk FAILED write of f$slot"
            break
        fi
        (cd /mnt/soak && sha256sum "f$slot" >"s$slot")
        sync
        n=$((n + 1))
        echo "$n" >/tmp/soak.files
    done
) &
(
    # A small xorshift in shell arithmetic: reproducible from the boot's seed.
    # (rnd sets r in this shell: a $(...) subshell would never advance x.)
    x=${soak_seed:-12345}
    rnd() { x=$(( (x ^ (x << 13)) & 0x7fffffff )); x=$(( x ^ (x >> 17) )); x=$(( (x ^ (x << 5)) & 0x7fffffff )); r=$x; }
    while [ "$(now)" -lt "$end" ]; do
        rnd; op=$(( r % 0x70 ))
        case $op in 1 | 3) op=0 ;; esac
        rnd; a2=$r
        rnd; a3=$r
        hvmctl call "$(printf %x $op)" "$(printf %x $a2)" "$(printf %x $a3)" >/dev/null 2>&1
        bump calls
        # Device space (GIC, UART, virtio, doorbell, holes) and just past ROS RAM.
        rnd; where=$(( r % 3 ))
        rnd
        case $where in
            0) addr=$(( 0x08000000 + (r % 0x04000000) )) ;;
            1) addr=$(( 0x0b000000 + (r % 0x1000) )) ;;
            *) addr=$(( 0x80000000 + (r % 0x100000) )) ;;
        esac
        devmem $(( addr & ~3 )) 32 >/dev/null 2>&1
        bump devmem
    done
) &

while [ "$(now)" -lt "$end" ]; do
    sleep 30
    echo "HVTEST: soak progress t=$(($(now) - start)) hackbench=$(count hackbench) pipe=$(count pipe) files=$(count files) calls=$(count calls) devmem=$(count devmem)"
done
wait
echo "HVTEST: soak done seconds=$(($(now) - start)) hackbench=$(count hackbench) pipe=$(count pipe) files=$(count files) calls=$(count calls) devmem=$(count devmem)"
if (cd /mnt/soak && cat s* >manifest && sha256sum -c manifest >/tmp/soak.check 2>&1); then
    echo "HVTEST: soak disk ok files=$(wc -l </mnt/soak/manifest) written=$(count files)"
else
    echo "HVTEST: soak disk FAILED $(grep -v ': OK' /tmp/soak.check | head -3 | tr '\n' ' ')"
fi
umount /mnt
n=0
bad=$(dmesg | grep -iE 'rcu.*stall|soft lockup|hung task|blocked for more than|oops|bug:|warning:')
if [ -n "$bad" ]; then
    echo "$bad" | while IFS= read -r line; do echo "HVTEST: dmesg-bad $line"; done
    n=$(echo "$bad" | wc -l)
fi
echo "HVTEST: dmesg-bad-count $n"
