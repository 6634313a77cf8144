#!/bin/sh
# The ROS side of a hybrid VM (make run-hvm): what the ROS sees of the machine, 0xf00d calls
# from a process through the doorbell (hvmctl), calls the ROS may not make, and a process that
# touches HRT memory through /dev/mem.
#   HVTEST: nproc <n>                          CPUs Linux runs on
#   HVTEST: cpu-nodes <n>                      cpu@ nodes in the device tree
#   HVTEST: ram <base> <size>                  /memory reg (hex)
#   HVTEST: doorbell <node>                    the hvm-ros,doorbell node
#   HVTEST: null rc=<rc> <hvmctl output>
#   HVTEST: loop-null <hvmctl output>
#   HVTEST: nonroot rc=<rc> <message>          a process that may not open /dev/mem
#   HVTEST: call <subop> x0=<signed x0>        sub-operations the ROS may not issue, or not yet
#   HVTEST: hrt-read rc=<rc> / hrt-write rc=<rc>  a process touching the first HRT page
#   HVTEST: null-after rc=<rc>                 the HVM still answers afterwards
fail=0
hex() { od -An -tx1 "$1" | tr -d ' \n'; }

echo "HVTEST: nproc $(nproc)"
cpus=0
for node in /proc/device-tree/cpus/cpu@*; do
    [ -e "$node" ] && cpus=$((cpus + 1))
done
echo "HVTEST: cpu-nodes $cpus"
reg=$(hex /proc/device-tree/memory@*/reg)
base=0x${reg%????????????????}
size=0x${reg#????????????????}
echo "HVTEST: ram $base $size"
for node in /proc/device-tree/*; do
    if grep -q "hvm-ros,doorbell" "$node/compatible" 2>/dev/null; then
        echo "HVTEST: doorbell ${node##*/}"
    fi
done

out=$(hvmctl null 2>&1)
echo "HVTEST: null rc=$? $out"
echo "HVTEST: loop-null $(hvmctl loop-null 1000 2>&1)"
out=$(hvmctl --as-user 65534 null 2>&1)
echo "HVTEST: nonroot rc=$? $out"

# HRT-kernel-only answers, an invocation without a buffer, a signal with code 0, an undefined
# code.
for subop in 2f 3f 5f 10 1e 61 20 41 99; do
    x0=$(hvmctl call "$subop" 2>&1 | sed -n 's/.*x0 = \(-*[0-9]*\) .*/\1/p')
    echo "HVTEST: call $subop x0=$x0"
done

# HRT RAM lies directly above the ROS's: the first HRT page is at the end of ROS RAM.
hrt=$((base + size))
devmem "$hrt" 32 >/dev/null 2>&1
echo "HVTEST: hrt-read rc=$?"
devmem "$hrt" 32 0x12345678 >/dev/null 2>&1
echo "HVTEST: hrt-write rc=$?"
# Time for the HRT's heartbeat (heartbeat=1) to show it runs on.
sleep 2
hvmctl null >/dev/null 2>&1
echo "HVTEST: null-after rc=$?"
exit $fail
