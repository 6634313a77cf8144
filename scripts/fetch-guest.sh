#!/usr/bin/env bash
# Fetches the guest: Debian's stock arm64 kernel and a static arm64 busybox, from the Debian
# mirror with apt-get download (no root needed unless the package lists must be refreshed).
#
# The kernel package is resolved through the linux-image-arm64 meta-package, so it follows
# whatever version Debian currently ships. Produces, under build/guest/:
#   Image           uncompressed arm64 kernel Image (magic "ARM\x64" at offset 56 checked)
#   kernel-version  the kernel release (uname -r), one line
#   busybox         static arm64 busybox (ELF e_machine = AArch64 checked)
#   modules/        the modules in GUEST_MODULES plus their dependencies, decompressed:
#                     *.ko, load-order (file names, dependencies first: insmod in this order),
#                     modules.dep (depmod format, for these modules only), builtin (requested
#                     modules that are built into the kernel, so not shipped)
#   debs/           the downloaded .deb files;  rootfs-pkgs/<package>/  their extracted contents
# Everything is cached: a re-run with nothing changed only asks apt which version is current.
#
# Environment: GUEST_MODULES  module names to ship (default below; dependencies are added).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/guest
debs=$out/debs
pkgs=$out/rootfs-pkgs
stamp=$out/.fetch-stamp
ARCH=arm64
KERNEL_META=linux-image-arm64
BUSYBOX_PKG=busybox-static
# virtio/virtio_ring are built into Debian's kernel today (listed in modules/builtin); ext4 and
# crc32c_generic let the guest mount an ext4 disk (ext4 needs the crc32c crypto driver and
# there is no modprobe to load it on demand).
GUEST_MODULES=${GUEST_MODULES:-virtio virtio_ring virtio_mmio virtio_blk ext4 crc32c_generic}

say() { printf '[fetch-guest] %s\n' "$*"; }
die() { printf '[fetch-guest] error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
    # apt-get download as root otherwise warns that the _apt sandbox user can't write here.
    APT_DL_OPTS=(-o APT::Sandbox::User=root)
else
    as_root() { sudo "$@"; }
    APT_DL_OPTS=()
fi

for cmd in apt-cache apt-get dpkg-deb sha256sum od; do
    command -v "$cmd" >/dev/null || die "$cmd not found (run scripts/bootstrap.sh)"
done

apt_updated=0
apt_update() {
    [ "$apt_updated" -eq 0 ] || return 1
    apt_updated=1
    dpkg --print-foreign-architectures | grep -qx "$ARCH" \
        || die "the $ARCH dpkg architecture is not enabled (run scripts/bootstrap.sh)"
    say "refreshing the package lists (apt-get update)"
    as_root apt-get update -q >/dev/null || die "apt-get update failed"
}

# Sets kpkg, kver_deb (kernel package and version) and bbver (busybox version) with one
# apt-cache call (apt-cache is slow here: about a second per call, no binary cache).
resolve() {
    local info
    info=$(apt-cache show --no-all-versions "$KERNEL_META:$ARCH" "$BUSYBOX_PKG:$ARCH" 2>/dev/null) || info=
    # The meta-package's Depends looks like "linux-image-6.1.0-56-arm64 (= 6.1.192-2)".
    read -r kpkg kver_deb < <(awk -v meta="$KERNEL_META" '
        /^Package: / { p = $2 }
        p == meta && /^Depends: / {
            sub(/^Depends: /, ""); n = split($0, alts, /[,|]/)
            for (i = 1; i <= n; i++) {
                s = alts[i]; gsub(/^ +| +$/, "", s)
                if (s ~ /^linux-image-[0-9]/) {
                    name = s; sub(/[ (:].*/, "", name)
                    ver = ""; if (match(s, /\(= [^)]+\)/)) ver = substr(s, RSTART + 3, RLENGTH - 4)
                    print name, ver; exit
                }
            }
        }' <<<"$info") || true
    bbver=$(awk -v p="$BUSYBOX_PKG" '/^Package: / { q = $2 } q == p && /^Version: / { print $2; exit }' <<<"$info")
    [ -n "${kpkg:-}" ] && [ -n "$bbver" ] || return 1
    if [ -z "${kver_deb:-}" ]; then   # unversioned dependency: ask for the candidate
        kver_deb=$(apt-cache policy "$kpkg:$ARCH" 2>/dev/null | sed -n 's/^ *Candidate: //p')
        [ -n "$kver_deb" ] && [ "$kver_deb" != "(none)" ] || return 1
    fi
}

if ! resolve; then
    say "$KERNEL_META:$ARCH or $BUSYBOX_PKG:$ARCH not found in the package lists"
    apt_update
    resolve || die "cannot resolve $KERNEL_META:$ARCH / $BUSYBOX_PKG:$ARCH from the package lists (is the $ARCH architecture enabled and the mirror reachable?)"
fi

script_hash=$(sha256sum "$0" | cut -d' ' -f1)
want_stamp="kernel=$kpkg=$kver_deb busybox=$BUSYBOX_PKG=$bbver modules=$GUEST_MODULES script=$script_hash"

outputs_present() {
    [ -s "$out/Image" ] && [ -s "$out/busybox" ] && [ -s "$out/kernel-version" ] \
        && [ -f "$out/modules/load-order" ] || return 1
    local m
    while read -r m; do [ -f "$out/modules/$m" ] || return 1; done <"$out/modules/load-order"
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ] && outputs_present; then
    say "cached: kernel $(cat "$out/kernel-version") ($kpkg $kver_deb), busybox $bbver," \
        "modules: $(tr '\n' ' ' <"$out/modules/load-order")- nothing to do"
    exit 0
fi

say "kernel package: $kpkg $kver_deb (via $KERNEL_META); busybox: $BUSYBOX_PKG $bbver"
mkdir -p "$debs" "$pkgs"

# apt-get download names files <pkg>_<version with ':' as %3a>_<arch>.deb
deb_name() { printf '%s_%s_%s.deb' "$1" "${2//:/%3a}" "$ARCH"; }

# download PKG VERSION: into debs/ unless it is there already. Sets $deb to its path.
download() {
    local pkg=$1 ver=$2 tmp
    deb=$debs/$(deb_name "$pkg" "$ver")
    if [ -s "$deb" ] && dpkg-deb --info "$deb" >/dev/null 2>&1; then
        say "cached: $(basename "$deb")"
        return 0
    fi
    say "downloading $pkg=$ver ($ARCH)"
    tmp=$(mktemp -d "$debs/.download.XXXXXX")
    if ! (cd "$tmp" && apt-get download -q "${APT_DL_OPTS[@]}" "$pkg:$ARCH=$ver" >&2); then
        rm -rf "$tmp"
        return 1
    fi
    local got=("$tmp"/*.deb)
    [ -f "${got[0]}" ] || { rm -rf "$tmp"; return 1; }
    mv -f "${got[0]}" "$deb"
    rm -rf "$tmp"
    # Drop older versions of the same package.
    local old
    for old in "$debs/${pkg}"_*_"$ARCH".deb; do
        [ "$old" = "$deb" ] || [ ! -e "$old" ] || { say "removing stale $(basename "$old")"; rm -f "$old"; }
    done
}

fetch_both() {
    download "$kpkg" "$kver_deb" || return 1
    kdeb=$deb
    download "$BUSYBOX_PKG" "$bbver" || { failed_pkg="$BUSYBOX_PKG=$bbver"; return 1; }
    bbdeb=$deb
}
failed_pkg="$kpkg=$kver_deb"
if ! fetch_both; then
    # The mirror may have moved on (old version gone): refresh the lists and try once more.
    say "download of $failed_pkg failed; refreshing the package lists and retrying"
    apt_update || true
    resolve || die "cannot resolve $KERNEL_META:$ARCH / $BUSYBOX_PKG:$ARCH after apt-get update"
    failed_pkg="$kpkg=$kver_deb"
    fetch_both || die "failed to download $failed_pkg ($ARCH) with apt-get download"
    want_stamp="kernel=$kpkg=$kver_deb busybox=$BUSYBOX_PKG=$bbver modules=$GUEST_MODULES script=$script_hash"
fi

# extract DEB DIRNAME: dpkg-deb -x into rootfs-pkgs/DIRNAME (skipped if already done).
extract() {
    local deb=$1 dir=$pkgs/$2
    if [ -f "$dir/.from-deb" ] && [ "$(cat "$dir/.from-deb")" = "$(basename "$deb")" ]; then
        say "cached: extracted $(basename "$deb")"
        return 0
    fi
    say "extracting $(basename "$deb") -> ${dir#"$root"/}"
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp" || die "dpkg-deb -x $(basename "$deb") failed"
    basename "$deb" >"$dir.tmp/.from-deb"
    mv "$dir.tmp" "$dir"
}
extract "$kdeb" linux-image
extract "$bbdeb" busybox-static
kroot=$pkgs/linux-image
bbroot=$pkgs/busybox-static

# ---- kernel Image ----
mapfile -t vmlinuz < <(ls "$kroot"/boot/vmlinuz-* 2>/dev/null)
[ "${#vmlinuz[@]}" -eq 1 ] || die "expected one /boot/vmlinuz-* in $kpkg, found ${#vmlinuz[@]}"
krel=${vmlinuz[0]##*/vmlinuz-}
[ -d "$kroot/lib/modules/$krel" ] || die "$kpkg has no /lib/modules/$krel"

hexat() { od -An -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'; }   # FILE OFFSET COUNT -> hex
u32at() { od -An -tu4 -j "$2" -N 4 "$1" | tr -d ' \n'; }      # FILE OFFSET -> little-endian u32
decompress_by_magic() {   # FILE -> stdout, raw if not compressed
    case $(hexat "$1" 0 6) in
        1f8b*) gzip -dc "$1" ;;
        28b52ffd*) zstd -qdc "$1" ;;
        fd377a585a00) xz -dc "$1" ;;
        *) cat "$1" ;;
    esac
}
img_tmp=$out/Image.tmp
src=${vmlinuz[0]}
if [ "$(hexat "$src" 0 2)" = 4d5a ] && [ "$(hexat "$src" 4 4)" = 7a696d67 ]; then
    # EFI zboot image ("MZ", "zimg"): compressed payload at offset/size in the header.
    off=$(u32at "$src" 8); size=$(u32at "$src" 12)
    comp=$(dd if="$src" bs=1 skip=24 count=8 status=none | tr -d '\0')
    say "vmlinuz is an EFI zboot image ($comp payload): extracting the Image"
    dd if="$src" of="$img_tmp.payload" bs=64K iflag=skip_bytes,count_bytes skip="$off" count="$size" status=none
    case $comp in
        gzip) gzip -dc "$img_tmp.payload" >"$img_tmp" ;;
        zstd|zstd22) zstd -qdc "$img_tmp.payload" >"$img_tmp" ;;
        xzkern|xz) xz -dc "$img_tmp.payload" >"$img_tmp" ;;
        *) die "unsupported zboot compression '$comp' in $(basename "$src")" ;;
    esac
    rm -f "$img_tmp.payload"
else
    decompress_by_magic "$src" >"$img_tmp"
fi
[ "$(hexat "$img_tmp" 56 4)" = 41524d64 ] \
    || die "$(basename "$src") is not an arm64 Image (no \"ARM\\x64\" magic at offset 56)"
mv -f "$img_tmp" "$out/Image"
printf '%s\n' "$krel" >"$out/kernel-version"
say "kernel $krel: build/guest/Image ($(( $(stat -c %s "$out/Image") / 1024 / 1024 )) MiB, arm64 Image magic ok)"

# ---- busybox ----
bb=$bbroot/bin/busybox
[ -f "$bb" ] || die "$BUSYBOX_PKG has no /bin/busybox"
# ELF magic, 64-bit, little-endian; e_machine (offset 18) = 183 (EM_AARCH64).
if [ "$(hexat "$bb" 0 6)" != 7f454c460201 ] || [ "$(od -An -tu2 -j 18 -N 2 "$bb" | tr -d ' ')" != 183 ]; then
    die "$bb is not a 64-bit little-endian AArch64 ELF"
fi
if command -v file >/dev/null; then
    desc=$(file -b "$bb")
    [[ $desc == *"statically linked"* ]] || die "$bb is not statically linked: $desc"
fi
install -m 0755 "$bb" "$out/busybox.tmp" && mv -f "$out/busybox.tmp" "$out/busybox"
say "busybox $bbver: build/guest/busybox (static AArch64 ELF ok)"

# ---- modules ----
# Debian's package has no modules.dep (depmod runs at install time) and the host has no kmod,
# so dependencies come from each module's .modinfo "depends=" field, which is what depmod uses
# for the direct dependencies of a module.
moddir=$kroot/lib/modules/$krel
declare -A modpath=() builtin=() state=()
while IFS= read -r f; do
    n=${f##*/}; n=${n%%.ko*}; modpath[${n//-/_}]=$f
done < <(find "$moddir" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
if [ -f "$moddir/modules.builtin" ]; then
    while IFS= read -r f; do n=${f##*/}; n=${n%%.ko*}; builtin[${n//-/_}]=1; done <"$moddir/modules.builtin"
fi

mods_tmp=$out/modules.tmp
rm -rf "$mods_tmp"; mkdir -p "$mods_tmp"
order=() builtins=() depline=()
decompress_module() {   # SRC DEST
    case $1 in
        *.ko.xz) xz -dc "$1" >"$2" ;;
        *.ko.zst) zstd -qdc "$1" >"$2" ;;
        *.ko.gz) gzip -dc "$1" >"$2" ;;
        *) cp "$1" "$2" ;;
    esac
}
visit() {   # NAME: depth-first, dependencies before the module itself
    local n=${1//-/_} dest deps d files=()
    case ${state[$n]:-} in
        done) return 0 ;;
        active) die "module dependency cycle at $n" ;;
    esac
    if [ -n "${builtin[$n]:-}" ]; then
        state[$n]='done'; builtins+=("$n"); return 0
    fi
    [ -n "${modpath[$n]:-}" ] || die "module $n is neither in $kpkg nor built into the kernel"
    state[$n]=active
    dest=$mods_tmp/$n.ko
    decompress_module "${modpath[$n]}" "$dest"
    [ "$(hexat "$dest" 0 4)" = 7f454c46 ] || die "module $n: not an ELF file after decompression"
    # (grep reads everything: an early exit would SIGPIPE tr and trip pipefail)
    deps=$(tr '\0' '\n' <"$dest" | grep -a '^depends=') || deps=
    deps=${deps%%$'\n'*}; deps=${deps#depends=}
    for d in ${deps//,/ }; do
        visit "$d"
        [ -n "${builtin[${d//-/_}]:-}" ] || files+=("${d//-/_}.ko")
    done
    state[$n]='done'
    order+=("$n.ko")
    depline+=("$n.ko:${files[*]:+ ${files[*]}}")
}
for m in $GUEST_MODULES; do visit "$m"; done
printf '%s\n' "${order[@]}" >"$mods_tmp/load-order"
printf '%s\n' "${depline[@]}" >"$mods_tmp/modules.dep"
printf '%s\n' ${builtins[@]+"${builtins[@]}"} >"$mods_tmp/builtin"
rm -rf "$out/modules"; mv "$mods_tmp" "$out/modules"
say "modules (load order): ${order[*]}"
[ "${#builtins[@]}" -eq 0 ] || say "built into the kernel (not shipped): ${builtins[*]}"

printf '%s\n' "$want_stamp" >"$stamp"
say "done: build/guest/{Image,kernel-version,busybox,modules/}"
