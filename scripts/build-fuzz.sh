#!/usr/bin/env bash
# Builds guest/fuzz, the bare-metal EL1 guest fuzzer, into build/fuzz.bin (a bootable arm64
# Image: the hypervisor's guest-loader module) and build/fuzz.elf (the same with symbols, for
# gdb), and the same crate linked as a hybrid VM's HRT image (cargo feature `hrt`, at the HRT
# image window) into build/fuzz-hrt.elf (scripts/fuzz.sh MODE=hrt). Idempotent: cargo rebuilds
# only what changed; the outputs are rewritten each time.
#   PROFILE [release]   (cargo profile: release or dev)
# Cargo's output goes to target/fuzz/ (guest/fuzz/.cargo/config.toml), away from the root
# workspace's build directory and its lock; the HRT build's to target/fuzz-hrt/, so that the
# two builds never replace each other's binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${PROFILE:-release}
TARGET=aarch64-unknown-none-softfloat
crate=$root/guest/fuzz
build=$root/build

say() { printf '[build-fuzz] %s\n' "$*"; }
die() { printf '[build-fuzz] error: %s\n' "$*" >&2; exit 2; }

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

say "cargo build ($PROFILE, $TARGET) in guest/fuzz"
(cd "$crate" && cargo build $profile_flag --target "$TARGET")
elf=$root/target/fuzz/$TARGET/$profile_dir/fuzz
[ -f "$elf" ] || die "cargo did not produce $elf"
say "cargo build ($PROFILE, $TARGET, --features hrt) in guest/fuzz"
(cd "$crate" && cargo build $profile_flag --target "$TARGET" --features hrt --target-dir "$root/target/fuzz-hrt")
hrt_elf=$root/target/fuzz-hrt/$TARGET/$profile_dir/fuzz
[ -f "$hrt_elf" ] || die "cargo did not produce $hrt_elf"

mkdir -p "$build"
# Write under temporary names and rename, so a concurrent reader never sees a half-written file.
cp "$elf" "$build/fuzz.elf.tmp.$$"
"$objcopy" -O binary "$build/fuzz.elf.tmp.$$" "$build/fuzz.bin.tmp.$$"
cp "$hrt_elf" "$build/fuzz-hrt.elf.tmp.$$"
mv "$build/fuzz.elf.tmp.$$" "$build/fuzz.elf"
mv "$build/fuzz.bin.tmp.$$" "$build/fuzz.bin"
mv "$build/fuzz-hrt.elf.tmp.$$" "$build/fuzz-hrt.elf"
say "built build/fuzz.bin ($(stat -c %s "$build/fuzz.bin") bytes, arm64 Image), build/fuzz.elf and build/fuzz-hrt.elf"
