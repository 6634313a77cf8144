#!/usr/bin/env bash
# Runs the guest fuzzer (guest/fuzz, built into build/fuzz.bin) under the hypervisor and judges
# the run. Exits 0 only if the fuzzer finished its random phase and every post-check
# (`FUZZ: done seed=<s> ok`), and the hypervisor printed no panic and no error line; a guest
# fault the hypervisor reports at warning level (UNDEF injected, unassigned IPA, ISV=0, bad
# virtio request...) is fine, any other warning is a failure too. On failure it prints the seed,
# the command that reproduces the run, and how to debug it.
#
# Knobs (environment; defaults in brackets):
#   SEED [1]  ITER [20000]  SMP [1] (pCPUs)  VCPUS [SMP]  CPU [cortex-a57]  RAM [2G]
#   HYP_ARGS [""] (hypervisor options; vcpus= is added from VCPUS unless given here)
#   FUZZ_ARGS [""] (extra fuzzer options: trace=<op>, classes=<a,b>, progress=<n>)
#   TIMEOUT [300] (seconds for the whole QEMU run)   DISK [a scratch copy of the template]
#   LOG [build/fuzz-logs/seed-<SEED>.log]   NO_BUILD [""] (1: skip building the fuzzer)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

SEED=${SEED:-1}
ITER=${ITER:-20000}
SMP=${SMP:-1}
VCPUS=${VCPUS:-$SMP}
CPU=${CPU:-cortex-a57}
RAM=${RAM:-2G}
HYP_ARGS=${HYP_ARGS:-}
FUZZ_ARGS=${FUZZ_ARGS:-}
TIMEOUT=${TIMEOUT:-300}
LOG=${LOG:-$root/build/fuzz-logs/seed-$SEED.log}

say() { printf '[fuzz] %s\n' "$*"; }

case " $HYP_ARGS " in
    *" vcpus="*) ;;
    *) HYP_ARGS="vcpus=$VCPUS${HYP_ARGS:+ $HYP_ARGS}" ;;
esac

[ -n "${NO_BUILD:-}" ] || "$root/scripts/build-fuzz.sh" >/dev/null
[ -f "$root/build/hypervisor.bin" ] || { say "build/hypervisor.bin not found: run 'make build'"; exit 2; }

# The fuzzer writes random data to the disk: give it a scratch copy of a small image, never
# build/disk.img itself.
mkdir -p "$(dirname "$LOG")"
if [ -z "${DISK:-}" ]; then
    DISK=$root/build/fuzz-logs/disk-$SEED-$$.img
    truncate -s 8M "$DISK"
    printf 'fuzz scratch disk seed %s\n' "$SEED" | dd of="$DISK" conv=notrunc status=none
    cleanup_disk=$DISK
fi
cleanup() { [ -z "${cleanup_disk:-}" ] || rm -f "$cleanup_disk"; }
trap cleanup EXIT

guest_args="seed=$SEED iter=$ITER${FUZZ_ARGS:+ $FUZZ_ARGS}"
reproduce="SEED=$SEED ITER=$ITER SMP=$SMP VCPUS=$VCPUS CPU=$CPU HYP_ARGS=\"$HYP_ARGS\"${FUZZ_ARGS:+ FUZZ_ARGS=\"$FUZZ_ARGS\"} scripts/fuzz.sh"

say "seed=$SEED iter=$ITER smp=$SMP cpu=$CPU hyp_args=\"$HYP_ARGS\" log=$LOG"
start=$(date +%s%N)
set +e
KERNEL=$root/build/fuzz.bin INITRD=none GUEST_ARGS="$guest_args" SMP=$SMP CPU=$CPU RAM=$RAM \
    HYP_ARGS="$HYP_ARGS" DISK="$DISK" TIMEOUT=$TIMEOUT \
    "$root/scripts/qemu.sh" </dev/null >"$LOG" 2>&1
status=$?
set -e
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))

# The judgement, one reason per line (tr: QEMU's console uses CR LF).
problems=()
log_text=$(tr -d '\r' <"$LOG")
case $status in
    0) ;;
    124) problems+=("QEMU killed after ${TIMEOUT}s (timeout: a hang)") ;;
    134) problems+=("QEMU itself aborted (status 134): $(grep -m1 '^qemu-system' <<<"$log_text" || echo 'no message')") ;;
    *) problems+=("QEMU exited with status $status") ;;
esac
grep -q '(HYP) PANIC' <<<"$log_text" && problems+=("hypervisor panic: $(grep -m1 -A2 '(HYP) PANIC' <<<"$log_text" | tr '\n' ' ')")
errors=$(grep -c '(HYP) ERROR' <<<"$log_text" || true)
[ "$errors" -eq 0 ] || problems+=("$errors hypervisor error line(s), first: $(grep -m1 '(HYP) ERROR' <<<"$log_text")")
# Warnings that report a guest's own fault, and nothing else, are expected.
guest_faults='UNDEF injected|at unassigned IPA|without a syndrome \(ISV=0\)|instruction fetch from IPA|disk: guest request refused'
other_warnings=$(grep '(HYP) WARN' <<<"$log_text" | grep -Ev "$guest_faults" || true)
[ -z "$other_warnings" ] || problems+=("hypervisor warning(s) that are not guest faults, first: $(head -n1 <<<"$other_warnings")")
failed_checks=$(grep -o 'FUZZ: check [a-z_]* fail.*' <<<"$log_text" || true)
[ -z "$failed_checks" ] || problems+=("failed check(s): $(tr '\n' ';' <<<"$failed_checks")")
fuzz_errors=$(grep -o 'FUZZ: error.*' <<<"$log_text" || true)
[ -z "$fuzz_errors" ] || problems+=("fuzzer error: $(head -n1 <<<"$fuzz_errors")")
grep -q "FUZZ: done seed=$SEED ok" <<<"$log_text" || problems+=("no 'FUZZ: done seed=$SEED ok' line")

summary=$(grep -o 'FUZZ: summary.*' <<<"$log_text" | tail -n1 || true)
warnings=$(grep -c '(HYP) WARN' <<<"$log_text" || true)
[ -z "$summary" ] || say "${summary#FUZZ: }"
say "hypervisor warnings (guest faults): $warnings; time: $((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))s"
if [ ${#problems[@]} -eq 0 ]; then
    say "PASS seed=$SEED"
    exit 0
fi
for problem in "${problems[@]}"; do
    say "FAIL: $problem"
done
# Keep the disk as the run left it, for the debug session below.
debug_disk=$DISK
cleanup_disk=
last_progress=$(grep -o 'FUZZ: progress cpu=[0-9]* op=[0-9]*' <<<"$log_text" | tail -n1 || true)
say "last progress: ${last_progress:-none}; last lines of $LOG:"
tail -n 15 "$LOG" | sed 's/^/    /'
cat <<EOF
[fuzz] reproduce: $reproduce
[fuzz] trace the operations (each printed before it runs) from op N on: add FUZZ_ARGS="trace=N"
[fuzz]   (N = the last progress op above), or narrow the classes: FUZZ_ARGS="classes=mem,virtio"
[fuzz] debug: make debug NO_BUILD=1 KERNEL=build/fuzz.bin INITRD=none SMP=$SMP CPU=$CPU RAM=$RAM \\
[fuzz]          HYP_ARGS="$HYP_ARGS" GUEST_ARGS="$guest_args" DISK=$debug_disk
[fuzz]        then 'make gdb' in another terminal (symbols of the guest: add-symbol-file build/fuzz.elf)
EOF
exit 1
