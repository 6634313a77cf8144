#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 machine for building and testing the hypervisor.
# Installs the Debian packages and Rust targets/components the project needs, printing what it
# does. On a machine that is already set up it only checks, which takes a few seconds.
set -euo pipefail

say() { printf '[bootstrap] %s\n' "$*"; }

# Run privileged commands directly as root, through sudo otherwise.
if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
else
    command -v sudo >/dev/null || { say "error: not root and sudo is missing"; exit 1; }
    as_root() { sudo "$@"; }
fi

# command (or absolute path of a file) -> Debian package that provides it
DEB_PACKAGES=(
    "qemu-system-aarch64:qemu-system-arm"
    "gdb-multiarch:gdb-multiarch"
    "dtc:device-tree-compiler"
    "aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu"
    # The C library for static arm64 guest programs (a Recommends the install above skips).
    "/usr/aarch64-linux-gnu/include/stdio.h:libc6-dev-arm64-cross"
    "cpio:cpio"
    "mke2fs:e2fsprogs"
    "debugfs:e2fsprogs"
    "python3:python3"
    "timeout:coreutils"
    "xz:xz-utils"
    "zstd:zstd"
)
# Python modules used by the profile/trace scripts (Debian packages).
PY_MODULES=("matplotlib:python3-matplotlib")

missing=()
for entry in "${DEB_PACKAGES[@]}"; do
    cmd=${entry%%:*}; pkg=${entry#*:}
    if [ "${cmd#/}" != "$cmd" ]; then
        [ -e "$cmd" ] || missing+=("$pkg")
        continue
    fi
    command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 \
        || missing+=("$pkg")
done
for entry in "${PY_MODULES[@]}"; do
    mod=${entry%%:*}; pkg=${entry#*:}
    /usr/bin/python3 -c "import $mod" >/dev/null 2>&1 || missing+=("$pkg")
done
# arm64 packages (kernel, busybox) are fetched with apt-get download: needs the architecture.
need_arch=0
dpkg --print-foreign-architectures | grep -qx arm64 || need_arch=1

if [ "${#missing[@]}" -gt 0 ] || [ "$need_arch" -eq 1 ]; then
    if [ "$need_arch" -eq 1 ]; then
        say "adding the arm64 dpkg architecture (for apt-get download of the guest kernel)"
        as_root dpkg --add-architecture arm64
    fi
    say "apt-get update"
    as_root apt-get update -q
    if [ "${#missing[@]}" -gt 0 ]; then
        mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
        say "installing Debian packages: ${unique[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${unique[@]}"
    fi
else
    say "Debian packages: all present"
fi

command -v rustup >/dev/null || { say "error: rustup is required (https://rustup.rs)"; exit 1; }
# aarch64-unknown-linux-gnu: hvm-ros-lib's C API (libhvm_ros.a), linked by Debian's cross gcc against glibc.
RUST_TARGETS=(aarch64-unknown-none-softfloat aarch64-unknown-none aarch64-unknown-linux-musl aarch64-unknown-linux-gnu)
RUST_COMPONENTS=(rust-src llvm-tools clippy rustfmt)
installed_targets=$(rustup target list --installed)
for t in "${RUST_TARGETS[@]}"; do
    if grep -qx "$t" <<<"$installed_targets"; then continue; fi
    say "rustup target add $t"
    rustup target add "$t"
done
installed_components=$(rustup component list --installed)
for c in "${RUST_COMPONENTS[@]}"; do
    if grep -q "^$c" <<<"$installed_components"; then continue; fi
    say "rustup component add $c"
    rustup component add "$c"
done
say "Rust targets and components: ready"
say "done"
