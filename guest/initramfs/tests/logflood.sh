#!/bin/sh
# A guest flooding the hypervisor's log (issue 13, hole 5): 300 reads of an unassigned
# address, each an external abort for the guest (SIGBUS for devmem) and a warning for the
# hypervisor's log.
i=0
while [ $i -lt 300 ]; do
    devmem 0x0c000000 32 >/dev/null 2>&1
    i=$((i + 1))
done
echo "HVTEST: logflood reads=$i"
