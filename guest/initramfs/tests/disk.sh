#!/bin/sh
# Virtio-blk check (boot with a disk: qemu.sh DISK=<raw image>). Prints
#   HVTEST: disk vda sectors=<512-byte sectors>     (or "HVTEST: disk no-vda", exit 1)
#   HVTEST: disk head-md5 <md5 of the first MiB>
# and, if the disk holds an ext4 filesystem (e.g. made with mke2fs -t ext4 -d <dir>):
#   HVTEST: disk mounted ext4
#   HVTEST: disk read <first line of /hello.txt>    (if the file exists)
#   HVTEST: disk wrote /guest.txt                   (content "written-by-guest"; check on the
#                                                    host with debugfs -R 'cat /guest.txt')
#   or HVTEST: disk no-ext4
# Exits non-zero on any failure.

i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do   # the disk probes asynchronously: 10 s max
    sleep 0.1
    i=$((i + 1))
done
if [ ! -b /dev/vda ]; then
    echo "HVTEST: disk no-vda"
    exit 1
fi
echo "HVTEST: disk vda sectors=$(cat /sys/block/vda/size)"
sum=$(dd if=/dev/vda bs=64k count=16 2>/dev/null | md5sum) || exit 1
echo "HVTEST: disk head-md5 ${sum%% *}"

if ! mount -t ext4 /dev/vda /mnt 2>/dev/null; then
    echo "HVTEST: disk no-ext4"
    exit 0
fi
echo "HVTEST: disk mounted ext4"
if [ -f /mnt/hello.txt ]; then
    read -r line </mnt/hello.txt
    echo "HVTEST: disk read $line"
fi
rc=0
if echo written-by-guest >/mnt/guest.txt && sync; then
    echo "HVTEST: disk wrote /guest.txt"
else
    rc=1
fi
umount /mnt || rc=1
exit "$rc"
