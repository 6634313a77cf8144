#!/usr/bin/env bash
# `make run` / `make run-hvm`: boots the guest under the hypervisor (scripts/qemu.sh, whose
# knobs all apply). Interactive, unless CMD is set: then the guest runs that shell command after
# boot (its output on the console), powers off, and this script exits with the command's
# status (125 if the guest never reported one: it crashed, hung past TIMEOUT, or QEMU failed).
#   CMD [""]   GUEST_ARGS [console=ttyAMA0]   TIMEOUT [""; with CMD: 600] (seconds)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CMD=${CMD:-}
GUEST_ARGS=${GUEST_ARGS:-console=ttyAMA0}

if [ -z "$CMD" ]; then
    exec "$root/scripts/qemu.sh" "$@"
fi

# The guest's init decodes hvcmd= (base64 keeps spaces and quotes intact on the kernel command
# line) and prints "HVTEST: command status=<rc>" before powering off.
encoded=$(printf '%s' "$CMD" | base64 -w0)
export GUEST_ARGS="$GUEST_ARGS hvcmd=$encoded"
export TIMEOUT=${TIMEOUT:-600}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The console goes to the terminal as it comes; the log is kept to find the status.
"$root/scripts/qemu.sh" "$@" </dev/null | tee "$log" || true
status=$(sed -n 's/.*HVTEST: command status=\([0-9]*\).*/\1/p' "$log" | tail -n 1)
if [ -z "$status" ]; then
    echo "run.sh: the guest did not report the command's status (crash, hang or QEMU error)" >&2
    exit 125
fi
exit "$status"
