#!/usr/bin/env bash
# Starts QEMU virt with the hypervisor and (optionally) a guest, the one way every make target
# and test does. Settings come from the environment (defaults in brackets):
#   CPU [cortex-a57]   SMP [4]   RAM [2G]   HYP_ARGS [""] (hypervisor options, -append)
#   KERNEL [build/guest/Image]   INITRD [build/guest/initramfs.cpio.gz]   GUEST_ARGS [console=ttyAMA0]
#   KERNEL_ADDR [0x44000000]     INITRD_ADDR [0x4A000000]    (set KERNEL=none / INITRD=none to omit)
#   DISK [""] (raw image attached as a virtio-blk device)
#   HRT [none] (a hybrid VM's HRT image, e.g. build/hrt.elf; give HYP_ARGS="hvm=on ...")
#   HRT_ADDR [0x49000000]  HRT_ARGS [""] (the HRT's command line)
#   HYP [build/hypervisor.bin]   TIMEOUT [""] (seconds; QEMU is killed after it)
# Extra arguments are passed to QEMU as they are (e.g. -s -S, -d int -D file).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

CPU=${CPU:-cortex-a57}
SMP=${SMP:-4}
RAM=${RAM:-2G}
HYP=${HYP:-$root/build/hypervisor.bin}
KERNEL=${KERNEL:-$root/build/guest/Image}
INITRD=${INITRD:-$root/build/guest/initramfs.cpio.gz}
KERNEL_ADDR=${KERNEL_ADDR:-0x44000000}
INITRD_ADDR=${INITRD_ADDR:-0x4A000000}
GUEST_ARGS=${GUEST_ARGS:-console=ttyAMA0}
HYP_ARGS=${HYP_ARGS:-}
DISK=${DISK:-}
HRT=${HRT:-none}
HRT_ADDR=${HRT_ADDR:-0x49000000}
HRT_ARGS=${HRT_ARGS:-}
TIMEOUT=${TIMEOUT:-}

[ -f "$HYP" ] || { echo "qemu.sh: $HYP not found: run 'make build'" >&2; exit 2; }

args=(
    -M virt,gic-version=3,virtualization=on
    -cpu "$CPU" -smp "$SMP" -m "$RAM"
    -nographic -nic none
    -kernel "$HYP" -append "$HYP_ARGS"
)
if [ "$KERNEL" != none ]; then
    [ -f "$KERNEL" ] || { echo "qemu.sh: guest kernel $KERNEL not found: run scripts/fetch-guest.sh" >&2; exit 2; }
    args+=(-device "guest-loader,addr=$KERNEL_ADDR,kernel=$KERNEL,bootargs=$GUEST_ARGS")
fi
if [ "$INITRD" != none ]; then
    [ -f "$INITRD" ] || { echo "qemu.sh: initramfs $INITRD not found: run scripts/mkinitramfs.sh" >&2; exit 2; }
    args+=(-device "guest-loader,addr=$INITRD_ADDR,initrd=$INITRD")
fi
if [ "$HRT" != none ]; then
    [ -f "$HRT" ] || { echo "qemu.sh: HRT image $HRT not found: run 'make build'" >&2; exit 2; }
    # The word "hrt" marks the module as the HRT image; the rest is its command line.
    args+=(-device "guest-loader,addr=$HRT_ADDR,kernel=$HRT,bootargs=hrt $HRT_ARGS")
fi
if [ -n "$DISK" ]; then
    args+=(-drive "if=none,file=$DISK,format=raw,id=hd0" -device virtio-blk-device,drive=hd0)
fi

if [ -n "$TIMEOUT" ]; then
    exec timeout --foreground -k 5 "$TIMEOUT" qemu-system-aarch64 "${args[@]}" "$@"
fi
exec qemu-system-aarch64 "${args[@]}" "$@"
