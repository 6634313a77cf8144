#!/usr/bin/env bash
# Builds hvm-ros-lib's C API (hvm-ros-lib/src/capi.rs: Palacios' v3_hvm_ros_user.h functions)
# for the guest's C programs:
#   build/hvm-ros-lib/libhvm_ros.a        the static library, for aarch64-unknown-linux-gnu:
#                                         C programs link it with Debian's
#                                         aarch64-linux-gnu-gcc -static (glibc)
#   build/hvm-ros-lib/include/hvm_ros.h   its header (hvm-ros-lib/include/hvm_ros.h)
# `cargo rustc --crate-type staticlib` builds the crate's library (feature std) as a static
# library without making the crate a staticlib for its other users (the hypervisor and the HRT
# use it no_std), in target/hvm-ros-lib/ so it never waits for the workspace's target/ lock.
# cargo decides what to rebuild; a file is copied only when it changed (so scripts that hash
# their inputs, e.g. build-guest-progs.sh, see no change), through a temporary name of this
# run's own (two builds at once never take each other's half-written file). The header is compiled once with the
# cross compiler (its static assertions check the structure layouts).
#   CROSS_CC [aarch64-linux-gnu-gcc], CROSS_STRIP [aarch64-linux-gnu-strip] (Debian's
#   gcc-aarch64-linux-gnu, see scripts/bootstrap.sh)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/hvm-ros-lib
RUST_TARGET=aarch64-unknown-linux-gnu
target_dir=$root/target/hvm-ros-lib
CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
CROSS_STRIP=${CROSS_STRIP:-aarch64-linux-gnu-strip}

say() { printf '[hvm-ros-lib] %s\n' "$*"; }
die() { printf '[hvm-ros-lib] error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found (run scripts/bootstrap.sh)"
command -v "$CROSS_CC" >/dev/null || die "$CROSS_CC not found (run scripts/bootstrap.sh)"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
    die "Rust target $RUST_TARGET not installed (run scripts/bootstrap.sh)"
fi
mkdir -p "$out/include"

# The workspace's release profile keeps debug info (for the hypervisor); the library needs none.
# Fat LTO keeps only the parts of the standard library the C API uses: smaller, and no
# references to glibc's NSS functions (getaddrinfo, getpwuid_r), which make the static link
# warn.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
say "cargo rustc: hvm-ros-lib C API as a staticlib for $RUST_TARGET (target/hvm-ros-lib)"
cargo rustc --quiet --release --manifest-path "$root/Cargo.toml" -p hvm-ros-lib --features std --lib \
    --crate-type staticlib --target "$RUST_TARGET" --target-dir "$target_dir"
built=$target_dir/$RUST_TARGET/release/libhvm_ros_lib.a
[ -f "$built" ] || die "cargo did not produce $built"

# The standard library inside carries debug info; programs linked with it need none.
stripped=$target_dir/libhvm_ros.a
if command -v "$CROSS_STRIP" >/dev/null; then
    "$CROSS_STRIP" --strip-debug -o "$stripped.tmp.$$" "$built"
else
    cp -f "$built" "$stripped.tmp.$$"
fi
mv -f "$stripped.tmp.$$" "$stripped"

# install_changed <from> <to> <name shown>
install_changed() {
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        say "up to date: $3"
    else
        say "installing $3"
        cp -f "$1" "$2.tmp.$$"
        mv -f "$2.tmp.$$" "$2"
    fi
}
install_changed "$stripped" "$out/libhvm_ros.a" "build/hvm-ros-lib/libhvm_ros.a"
install_changed "$root/hvm-ros-lib/include/hvm_ros.h" "$out/include/hvm_ros.h" "build/hvm-ros-lib/include/hvm_ros.h"

say "checking build/hvm-ros-lib/include/hvm_ros.h with $CROSS_CC"
printf '#include "hvm_ros.h"\n' | "$CROSS_CC" -fsyntax-only -Wall -Wextra -Werror -I "$out/include" -x c -
