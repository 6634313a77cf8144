#!/bin/sh
# The virtio-blk disk test. Mode from the blk_mode= kernel parameter:
#   write     check /known.bin against /known.md5, write 32 MiB of random data to
#             /written.bin, record its md5 in /written.md5, sync
#   verify    check /written.bin against /written.md5 (after a reboot)
#   parallel  on every CPU at once: a writer of 8 MiB to /par<cpu>.bin and a reader of
#             /known.bin; then record each file's md5 in /par<cpu>.md5, sync
# Prints "HVTEST: blk <what> <value>" lines; exits non-zero on any failure.
mode=${blk_mode:-write}
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -b /dev/vda ] || { echo "HVTEST: blk no-vda"; exit 1; }
mount -t ext4 /dev/vda /mnt || { echo "HVTEST: blk mount-failed"; exit 1; }
echo "HVTEST: blk mounted"

md5() { md5sum "$1" | cut -d' ' -f1; }

check_known() {
    got=$(md5 /mnt/known.bin)
    want=$(cat /mnt/known.md5)
    echo "HVTEST: blk known $got want=$want"
    [ "$got" = "$want" ]
}

case "$mode" in
write)
    check_known || exit 1
    dd if=/dev/urandom of=/mnt/written.bin bs=1M count=32 2>/dev/null || exit 1
    sync
    sum=$(md5 /mnt/written.bin)
    echo "$sum" >/mnt/written.md5
    echo "HVTEST: blk written $sum"
    ;;
verify)
    check_known || exit 1
    got=$(md5 /mnt/written.bin)
    want=$(cat /mnt/written.md5)
    echo "HVTEST: blk verified $got want=$want"
    [ "$got" = "$want" ] || exit 1
    ;;
parallel)
    ncpu=$(grep -c processor /proc/cpuinfo)
    echo "HVTEST: blk parallel on $ncpu cpus"
    cpu=0
    pids=""
    while [ "$cpu" -lt "$ncpu" ]; do
        taskset -c "$cpu" dd if=/dev/urandom of=/mnt/par$cpu.bin bs=64k count=128 2>/dev/null &
        pids="$pids $!"
        taskset -c "$cpu" sh -c 'md5sum /mnt/known.bin > /tmp/read'"$cpu"'.md5' &
        pids="$pids $!"
        cpu=$((cpu + 1))
    done
    for p in $pids; do wait "$p" || { echo "HVTEST: blk job failed"; exit 1; }; done
    want=$(cat /mnt/known.md5)
    cpu=0
    while [ "$cpu" -lt "$ncpu" ]; do
        got=$(cut -d' ' -f1 /tmp/read$cpu.md5)
        [ "$got" = "$want" ] || { echo "HVTEST: blk reader $cpu got $got want=$want"; exit 1; }
        sum=$(md5 /mnt/par$cpu.bin)
        echo "$sum" >/mnt/par$cpu.md5
        echo "HVTEST: blk par$cpu $sum"
        cpu=$((cpu + 1))
    done
    ;;
*)
    echo "HVTEST: blk unknown mode $mode"
    exit 1
    ;;
esac
sync
umount /mnt || exit 1
echo "HVTEST: blk ok $mode"
