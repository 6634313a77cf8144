#!/usr/bin/env bash
# Builds guest/hrt, the HRT runtime kernel, into build/hrt.elf: the ELF (with symbols) that the
# hypervisor loads on the HRT cores of a hybrid VM (linked at hrt_boot::IMAGE_BASE, see
# hvm-ros-lib/src/abi.rs). Also builds build/hrt-alt.elf, the same crate with HRT_FLAVOUR=alt
# (its boot line says "version <version>-alt"): a second image for the test that installs one
# from the ROS (InstallHrtImage) and checks the new kernel is the one that boots. Idempotent:
# cargo rebuilds only what changed; the outputs are rewritten each time.
#   PROFILE [release]   (cargo profile: release or dev)
# Cargo's output goes to target/hrt/ (guest/hrt/.cargo/config.toml), away from the root
# workspace's build directory and its lock; the alt build's to target/hrt-alt/, so the two
# builds never overwrite (or keep rebuilding) each other.
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

image_base=0xffffff8000000000
mkdir -p "$build"

# build_image FLAVOUR TARGET_DIR OUTPUT: builds the crate with HRT_FLAVOUR=FLAVOUR (empty: the
# default image) into TARGET_DIR, checks it and copies it to build/OUTPUT.
build_image() {
    local flavour=$1 target_dir=$2 output=$3
    say "cargo build ($PROFILE, $TARGET${flavour:+, HRT_FLAVOUR=$flavour}) in guest/hrt"
    # The default image is built without HRT_FLAVOUR at all, as a plain `cargo build` in the
    # crate is: the two agree, and cargo does not rebuild when going from one to the other.
    local flavour_env=(-u HRT_FLAVOUR)
    [ -z "$flavour" ] || flavour_env=("HRT_FLAVOUR=$flavour")
    (cd "$crate" && env "${flavour_env[@]}" CARGO_TARGET_DIR="$target_dir" cargo build $profile_flag --target "$TARGET")
    local elf=$target_dir/$TARGET/$profile_dir/hrt
    [ -f "$elf" ] || die "cargo did not produce $elf"

    # The hypervisor loads PT_LOAD segments only inside the HRT image window: catch a
    # linker-script slip here rather than at boot.
    "$readobj" --elf-output-style=GNU --program-headers "$elf" | awk -v base="$image_base" '
        $1 == "LOAD" { n++; if (tolower($3) < base) bad = bad " " $3 }
        END { if (n == 0) { print "no PT_LOAD segment"; exit 1 }
              if (bad != "") { print "PT_LOAD below the image base:" bad; exit 1 } }' \
        || die "$elf: bad load segments (guest/hrt/linker.ld)"

    # Write under a temporary name and rename, so a concurrent reader never sees a half-written
    # file.
    cp "$elf" "$build/$output.tmp.$$"
    mv "$build/$output.tmp.$$" "$build/$output"
    say "built build/$output ($(stat -c %s "$build/$output") bytes, ELF linked at $image_base)"
}

build_image "" "$root/target/hrt" hrt.elf
build_image alt "$root/target/hrt-alt" hrt-alt.elf
