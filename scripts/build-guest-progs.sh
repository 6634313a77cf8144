#!/usr/bin/env bash
# Builds the guest's own programs: every guest/bench/<name>.c becomes the static arm64 binary
# build/guest/bin/<name> (today: hvbench, the benchmark of scripts/guest-bench.sh).
# scripts/mkinitramfs.sh puts every file of build/guest/bin/ into the initramfs's /bin/.
# A program is rebuilt only when its source, the flags or this script changed (the hash of
# all three is kept next to the binary as .<name>.stamp).
#   CROSS_CC [aarch64-linux-gnu-gcc] (Debian's gcc-aarch64-linux-gnu, see scripts/bootstrap.sh)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/guest/bench
out=$root/build/guest/bin
CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
# Static, so the initramfs needs no C library; warnings on, as for any C in the tree.
CFLAGS=(-static -O2 -Wall -Wextra)

say() { printf '[guest-progs] %s\n' "$*"; }
die() { printf '[guest-progs] error: %s\n' "$*" >&2; exit 1; }

command -v "$CROSS_CC" >/dev/null || die "$CROSS_CC not found (run scripts/bootstrap.sh)"
mkdir -p "$out"
shopt -s nullglob
sources=("$src"/*.c)
[ "${#sources[@]}" -gt 0 ] || die "no programs in guest/bench/"
for c in "${sources[@]}"; do
    name=$(basename "$c" .c)
    bin=$out/$name
    stamp=$out/.$name.stamp
    hash=$({ sha256sum <"$c"; sha256sum <"$0"; echo "$CROSS_CC ${CFLAGS[*]}"; } \
           | sha256sum | cut -d' ' -f1)
    if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
        say "up to date: build/guest/bin/$name"
        continue
    fi
    say "building build/guest/bin/$name from guest/bench/$name.c"
    "$CROSS_CC" "${CFLAGS[@]}" -o "$bin.tmp" "$c"
    mv -f "$bin.tmp" "$bin"
    printf '%s\n' "$hash" >"$stamp"
done
# A program whose source is gone must not linger in the initramfs.
for bin in "$out"/*; do
    name=$(basename "$bin")
    [ -f "$src/$name.c" ] && continue
    say "removing build/guest/bin/$name (guest/bench/$name.c is gone)"
    rm -f "$bin" "$out/.$name.stamp"
done
