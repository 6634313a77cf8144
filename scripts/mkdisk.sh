#!/usr/bin/env bash
# Builds an ext4 disk image with known test files for the guest's virtio-blk disk:
#   /hello.txt   "hello-from-host"
#   /known.bin   2 MiB of deterministic data, its md5 in /known.md5
# Usage: scripts/mkdisk.sh [OUT] [SIZE]   (defaults: build/disk.img, 128M). Rebuilt only when
# missing or older than this script.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/disk.img}
size=${2:-128M}
say() { printf '[mkdisk] %s\n' "$*"; }

if [ -f "$out" ] && [ "$out" -nt "$0" ]; then
    say "up to date: $out"
    exit 0
fi
mke2fs=$(PATH="$PATH:/usr/sbin:/sbin" command -v mke2fs) || { say "error: mke2fs missing (apt-get install e2fsprogs)"; exit 1; }
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
echo "hello-from-host" >"$staging/hello.txt"
# Deterministic content: the decimal numbers 1.., cut to 2 MiB.
seq 1 400000 >"$staging/known.bin"
truncate -s 2M "$staging/known.bin"
md5sum "$staging/known.bin" | cut -d' ' -f1 >"$staging/known.md5"
mkdir -p "$(dirname "$out")"
rm -f "$out"
"$mke2fs" -q -t ext4 -L hvdisk -d "$staging" "$out" "$size"
say "built $out ($size ext4; known.bin md5 $(cat "$staging/known.md5"))"
