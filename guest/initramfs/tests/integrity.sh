#!/bin/sh
# One cycle of the data-integrity test (issue 13): on /dev/vda (ext4), verify every file earlier
# cycles wrote (sha256 manifest), write this cycle's 256 KiB of random data, sync, then end the
# boot the way this cycle's number says: reboot -f on even cycles (SYSTEM_RESET: the same QEMU
# boots again and runs the next cycle), poweroff -f on odd ones (QEMU exits; the test starts
# it again).
#   HVTEST: integrity cycle=<n> verified=<files> ok|FAILED <why>
#   HVTEST: integrity ending with reboot|poweroff
dir=/mnt/integrity
mkdir -p /mnt
mount -t ext4 /dev/vda /mnt || { echo "HVTEST: integrity cycle=? verified=0 FAILED mount"; exit 1; }
mkdir -p "$dir"
cycle=$(cat "$dir/count" 2>/dev/null || echo 0)
verified=0
if [ -s "$dir/manifest" ]; then
    if ! (cd "$dir" && sha256sum -c manifest >/tmp/check 2>&1); then
        echo "HVTEST: integrity cycle=$cycle verified=0 FAILED $(grep -v ': OK' /tmp/check | head -3 | tr '\n' ' ')"
        umount /mnt
        exit 1
    fi
    verified=$(wc -l <"$dir/manifest")
fi
echo "HVTEST: integrity cycle=$cycle verified=$verified ok"
dd if=/dev/urandom of="$dir/data-$cycle" bs=4096 count=64 2>/dev/null
(cd "$dir" && sha256sum "data-$cycle" >>manifest)
echo $((cycle + 1)) >"$dir/count.new" && mv "$dir/count.new" "$dir/count"
sync
umount /mnt
if [ $((cycle % 2)) -eq 0 ]; then
    echo "HVTEST: integrity ending with reboot"
    reboot -f
else
    echo "HVTEST: integrity ending with poweroff"
    poweroff -f
fi
sleep 60
