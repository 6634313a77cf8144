#!/usr/bin/env bash
# Builds the guest's own programs into static arm64 binaries build/guest/bin/<name>:
# - every guest/bench/<name>.c (today: hvbench, the benchmark of scripts/guest-bench.sh);
# - every guest/hvm-test/<name>.c (today: hvm-test, Palacios' HVM test program), linked with
#   hvm-ros-lib's C API (build/hvm-ros-lib/libhvm_ros.a and include/hvm_ros.h, which
#   scripts/build-hvm-ros-lib.sh builds first);
# - every hvm-ros-lib/src/bin/<name>.rs (today: hvmctl, 0xf00d calls through the doorbell page;
#   hvm-test-rs, the HVM test program through the Rust API),
#   built by cargo with hvm-ros-lib's `std` feature for aarch64-unknown-linux-musl (statically
#   linked against the musl that ships with that Rust target) in target/guest-progs/, so it
#   never waits for the workspace's target/ lock.
# scripts/mkinitramfs.sh puts every file of build/guest/bin/ into the initramfs's /bin/.
# A C program is rebuilt only when its source, the flags, this script (or, for hvm-test, the
# library and its header) changed (the hash of them all is kept next to the binary as
# .<name>.stamp); cargo decides for the Rust ones, and a binary is copied only when it changed.
#   CROSS_CC [aarch64-linux-gnu-gcc] (Debian's gcc-aarch64-linux-gnu, see scripts/bootstrap.sh)
#   CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER [rust-lld] (the toolchain's own lld; rustc
#       passes musl's crt objects and libc.a itself, so no musl or cross gcc is needed)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/guest/bench
hvm_test_src=$root/guest/hvm-test
hvm_ros_lib=$root/build/hvm-ros-lib
rust_src=$root/hvm-ros-lib/src/bin
out=$root/build/guest/bin
CROSS_CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
RUST_TARGET=aarch64-unknown-linux-musl
rust_target_dir=$root/target/guest-progs
# Static, so the initramfs needs no C library; warnings on, as for any C in the tree.
CFLAGS=(-static -O2 -Wall -Wextra)
# The HVM test programs: hvm_ros.h and libhvm_ros.a.
HVM_CFLAGS=(-I "$hvm_ros_lib/include")
HVM_LIBS=(-L "$hvm_ros_lib" -lhvm_ros)

say() { printf '[guest-progs] %s\n' "$*"; }
die() { printf '[guest-progs] error: %s\n' "$*" >&2; exit 1; }

command -v "$CROSS_CC" >/dev/null || die "$CROSS_CC not found (run scripts/bootstrap.sh)"
mkdir -p "$out"
shopt -s nullglob
sources=("$src"/*.c)
[ "${#sources[@]}" -gt 0 ] || die "no programs in guest/bench/"
# build_c <source> <extra inputs to hash...> -- <compiler arguments after the source...>
build_c() {
    local c=$1; shift
    local inputs=()
    while [ "$1" != -- ]; do inputs+=("$1"); shift; done
    shift
    local name bin stamp hash
    name=$(basename "$c" .c)
    bin=$out/$name
    stamp=$out/.$name.stamp
    hash=$({ sha256sum <"$c"; sha256sum <"$0"; for f in "${inputs[@]}"; do sha256sum <"$f"; done
             echo "$CROSS_CC ${CFLAGS[*]} $*"; } | sha256sum | cut -d' ' -f1)
    if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
        say "up to date: build/guest/bin/$name"
        return
    fi
    say "building build/guest/bin/$name from ${c#"$root"/}"
    # A dot name of this run's own: never shipped (mkinitramfs.sh skips dot files), never
    # taken by a concurrent build.
    "$CROSS_CC" "${CFLAGS[@]}" -o "$out/.$name.tmp.$$" "$c" "$@"
    mv -f "$out/.$name.tmp.$$" "$bin"
    printf '%s\n' "$hash" >"$stamp"
}

for c in "${sources[@]}"; do
    build_c "$c" --
done

# The HVM test programs, linked with hvm-ros-lib's C API.
hvm_sources=("$hvm_test_src"/*.c)
if [ "${#hvm_sources[@]}" -gt 0 ]; then
    "$root/scripts/build-hvm-ros-lib.sh"
    for c in "${hvm_sources[@]}"; do
        build_c "$c" "$hvm_ros_lib/libhvm_ros.a" "$hvm_ros_lib/include/hvm_ros.h" -- \
            "${HVM_CFLAGS[@]}" "${HVM_LIBS[@]}"
    done
fi

# The Rust programs.
command -v cargo >/dev/null || die "cargo not found (run scripts/bootstrap.sh)"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
    die "Rust target $RUST_TARGET not installed (run scripts/bootstrap.sh)"
fi
rust_progs=("$rust_src"/*.rs)
if [ "${#rust_progs[@]}" -gt 0 ]; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-rust-lld}
    # The workspace's release profile keeps debug info (for the hypervisor); an initramfs
    # program needs none.
    export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
    say "cargo build: hvm-ros-lib programs for $RUST_TARGET (linker $CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER, target/guest-progs)"
    cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p hvm-ros-lib --features std --bins \
        --target "$RUST_TARGET" --target-dir "$rust_target_dir"
    for rs in "${rust_progs[@]}"; do
        name=$(basename "$rs" .rs)
        built=$rust_target_dir/$RUST_TARGET/release/$name
        [ -x "$built" ] || die "cargo did not produce $built"
        if [ -x "$out/$name" ] && cmp -s "$built" "$out/$name"; then
            say "up to date: build/guest/bin/$name"
            continue
        fi
        say "installing build/guest/bin/$name from hvm-ros-lib/src/bin/$name.rs"
        cp -f "$built" "$out/.$name.tmp.$$"
        mv -f "$out/.$name.tmp.$$" "$out/$name"
    done
fi

# A program whose source is gone must not linger in the initramfs.
for bin in "$out"/*; do
    name=$(basename "$bin")
    [ -f "$src/$name.c" ] || [ -f "$hvm_test_src/$name.c" ] || [ -f "$rust_src/$name.rs" ] && continue
    say "removing build/guest/bin/$name (none of guest/bench/$name.c, guest/hvm-test/$name.c," \
        "hvm-ros-lib/src/bin/$name.rs exists)"
    rm -f "$bin" "$out/.$name.stamp"
done
