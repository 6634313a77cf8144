#!/usr/bin/env bash
# Builds guest/microbench, the bare-metal EL1 test kernel that measures virtualization costs
# from inside a guest, into build/microbench.bin (a bootable arm64 Image: QEMU's -kernel or the
# hypervisor's guest-loader module) and build/microbench.elf (the same with symbols, for gdb).
# Idempotent: cargo rebuilds only what changed; the outputs are rewritten each time.
#   PROFILE [release]   (cargo profile: release or dev)
# Cargo's output goes to target/microbench/ (guest/microbench/.cargo/config.toml), away from
# the root workspace's build directory and its lock.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${PROFILE:-release}
TARGET=aarch64-unknown-none-softfloat
crate=$root/guest/microbench
build=$root/build

say() { printf '[build-microbench] %s\n' "$*"; }
die() { printf '[build-microbench] error: %s\n' "$*" >&2; exit 2; }

# llvm-objcopy comes with rustup's llvm-tools component, in the sysroot (as in the Makefile).
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
objcopy=$sysroot/lib/rustlib/$host/bin/llvm-objcopy
[ -x "$objcopy" ] || die "$objcopy not found: run 'rustup component add llvm-tools' (or scripts/bootstrap.sh)"
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" \
    || die "Rust target $TARGET not installed: run 'rustup target add $TARGET'"

case $PROFILE in
    release) profile_flag=--release; profile_dir=release ;;
    dev) profile_flag=; profile_dir=debug ;;
    *) die "PROFILE must be release or dev, got '$PROFILE'" ;;
esac

say "cargo build ($PROFILE, $TARGET) in guest/microbench"
(cd "$crate" && cargo build $profile_flag --target "$TARGET")
elf=$root/target/microbench/$TARGET/$profile_dir/microbench
[ -f "$elf" ] || die "cargo did not produce $elf"

mkdir -p "$build"
cp "$elf" "$build/microbench.elf"
"$objcopy" -O binary "$build/microbench.elf" "$build/microbench.bin"
say "built build/microbench.bin ($(stat -c %s "$build/microbench.bin") bytes, arm64 Image) and build/microbench.elf"
