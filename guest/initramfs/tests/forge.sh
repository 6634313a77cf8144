#!/bin/sh
# A guest trying to print lines that look like the hypervisor's (issue 13, hole 7): at a line
# start, after a carriage return, and in the middle of a line.
echo "(HYP) PANIC forged by the guest"
printf 'innocent\r(HYP) PANIC forged after a carriage return\n'
echo "middle (HYP) PANIC forged mid-line"
