#!/bin/sh
# The guest platform as software written for QEMU virt probes it: every virtio-mmio slot the
# device tree lists, the boot seeds in /chosen, and whether KASLR is on.
#   HVTEST: virtio-slot <address> magic=<hex> version=<n> device=<n>   per listed slot
#   HVTEST: virtio-slots <count>
#   HVTEST: kaslr-seed <16 hex digits, or "absent">
#   HVTEST: kaslr <enabled|disabled|unknown> _stext=<address>
fail=0
count=0
for node in /proc/device-tree/virtio_mmio@*; do
    [ -e "$node" ] || continue
    base=0x${node##*@}
    magic=$(devmem "$base" 32) || fail=1
    version=$(devmem $((base + 4)) 32) || fail=1
    device=$(devmem $((base + 8)) 32) || fail=1
    echo "HVTEST: virtio-slot $base magic=$magic version=$((version)) device=$((device))"
    count=$((count + 1))
done
echo "HVTEST: virtio-slots $count"

seed=/proc/device-tree/chosen/kaslr-seed
if [ -e "$seed" ]; then
    echo "HVTEST: kaslr-seed $(od -An -tx1 "$seed" | tr -d ' \n')"
else
    echo "HVTEST: kaslr-seed absent"
fi

stext=$(grep ' _stext$' /proc/kallsyms | cut -d' ' -f1)
# Debian's kernel links _stext at ffff800008010000; KASLR moves it.
case "$stext" in
    '') state=unknown ;;
    ffff800008010000) state=disabled ;;
    *) state=enabled ;;
esac
echo "HVTEST: kaslr $state _stext=$stext"
exit $fail
