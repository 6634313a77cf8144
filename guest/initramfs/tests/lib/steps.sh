# Helpers the hybrid-VM test scripts source (. /tests/lib/steps.sh).

# Runs a step: its command's output, then "HVTEST: step <name> rc=<rc>".
step() {
    name=$1
    shift
    "$@"
    echo "HVTEST: step $name rc=$?"
}

# Polls until the HRT is ready, at most HRT_READY_SECONDS (default 20); says whether it became
# ready.
wait_ready() {
    polls=$(( ${HRT_READY_SECONDS:-20} * 5 ))
    i=0
    while [ $i -lt $polls ]; do
        hvmctl state 2>/dev/null | grep -q "HRT ready" && return 0
        sleep 0.2
        i=$((i + 1))
    done
    return 1
}
