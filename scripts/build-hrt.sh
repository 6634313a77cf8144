#!/usr/bin/env bash
# Builds guest/hrt, the HRT runtime kernel, into build/hrt.elf: the ELF (with symbols) that the
# hypervisor loads on the HRT cores of a hybrid VM (linked at hrt_boot::IMAGE_BASE, see
# hvm-ros-lib/src/abi.rs). Idempotent: cargo rebuilds only what changed; the output is rewritten
# each time.
#   PROFILE [release]   (cargo profile: release or dev)
# Cargo's output goes to target/hrt/ (guest/hrt/.cargo/config.toml), away from the root
# workspace's build directory and its lock.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=${PROFILE:-release}
TARGET=aarch64-unknown-none-softfloat
crate=$root/guest/hrt
build=$root/build

say() { printf '[build-hrt] %s\n' "$*"; }
die() { printf '[build-hrt] error: %s\n' "$*" >&2; exit 2; }

# llvm-readobj comes with rustup's llvm-tools component, in the sysroot (as in the Makefile): it
# checks the image's load segments below (in readelf's output style; the component has no
# llvm-readelf).
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
readobj=$sysroot/lib/rustlib/$host/bin/llvm-readobj
[ -x "$readobj" ] || die "$readobj not found: run 'rustup component add llvm-tools' (or scripts/bootstrap.sh)"
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" \
    || die "Rust target $TARGET not installed: run 'rustup target add $TARGET'"

case $PROFILE in
    release) profile_flag=--release; profile_dir=release ;;
    dev) profile_flag=; profile_dir=debug ;;
    *) die "PROFILE must be release or dev, got '$PROFILE'" ;;
esac

say "cargo build ($PROFILE, $TARGET) in guest/hrt"
(cd "$crate" && cargo build $profile_flag --target "$TARGET")
elf=$root/target/hrt/$TARGET/$profile_dir/hrt
[ -f "$elf" ] || die "cargo did not produce $elf"

# The hypervisor loads PT_LOAD segments only inside the HRT image window: catch a linker-script
# slip here rather than at boot.
image_base=0xffffff8000000000
"$readobj" --elf-output-style=GNU --program-headers "$elf" | awk -v base="$image_base" '
    $1 == "LOAD" { n++; if (tolower($3) < base) bad = bad " " $3 }
    END { if (n == 0) { print "no PT_LOAD segment"; exit 1 }
          if (bad != "") { print "PT_LOAD below the image base:" bad; exit 1 } }' \
    || die "$elf: bad load segments (guest/hrt/linker.ld)"

mkdir -p "$build"
# Write under a temporary name and rename, so a concurrent reader never sees a half-written file.
cp "$elf" "$build/hrt.elf.tmp.$$"
mv "$build/hrt.elf.tmp.$$" "$build/hrt.elf"
say "built build/hrt.elf ($(stat -c %s "$build/hrt.elf") bytes, ELF linked at $image_base)"
