#!/bin/sh
# Parallel invocations on a hybrid VM with several HRT cores.
#   HVTEST: step <name> rc=<rc>        after each step (its output before)
. /tests/lib/steps.sh
step parallel-add hvmctl invoke -p add 40 2
step parallel-spin hvmctl invoke -p spin 1000
step builtins hvm-test-rs builtins
