#!/usr/bin/env bash
# Builds build/guest/initramfs.cpio.gz (newc cpio, gzip) for the test guest from what
# scripts/fetch-guest.sh produced and the sources in guest/initramfs/:
#   /init                    guest/initramfs/init
#   /bin/busybox, /bin/sh    build/guest/busybox (applet links are made by /init at boot:
#                            the arm64 busybox can't run on the host to list its applets)
#   /bin/<prog>              every file of build/guest/bin/ (scripts/build-guest-progs.sh:
#                            the guest's own programs, e.g. hvbench; dot files are skipped)
#   /lib/modules/            build/guest/modules/*.ko, load-order, modules.dep
#   /lib/hrt/hrt.elf         build/hrt.elf and build/hrt-alt.elf (scripts/build-hrt.sh), when
#   /lib/hrt/hrt-alt.elf     they exist: HRT images a ROS process installs (hvm-test-rs install)
#   /tests/                  guest/initramfs/tests/* (if present)
#   /dev/console             character device 5,1 (written without mknod, so no root needed)
# Rebuilt only when an input's content (or this script) changed; the archive is reproducible
# (sorted names, fixed owners and timestamps, gzip -n).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
g=$root/build/guest
# The HRT images shipped in /lib/hrt/ (those that exist).
hrt_images=()
for f in "$root/build/hrt.elf" "$root/build/hrt-alt.elf"; do
    [ -f "$f" ] && hrt_images+=("$f")
done
src=$root/guest/initramfs
out=$g/initramfs.cpio.gz
stamp=$g/.initramfs-stamp
EPOCH=${SOURCE_DATE_EPOCH:-0}

say() { printf '[mkinitramfs] %s\n' "$*"; }
die() { printf '[mkinitramfs] error: %s\n' "$*" >&2; exit 1; }

command -v cpio >/dev/null || die "cpio not found (run scripts/bootstrap.sh)"
for f in "$g/busybox" "$g/modules/load-order"; do
    [ -e "$f" ] || die "${f#"$root"/} missing: run scripts/fetch-guest.sh first"
done
[ -f "$src/init" ] || die "guest/initramfs/init missing"

# Inputs: every file that goes into the archive, plus this script.
inputs=("$0" "$src/init" "$g/busybox")
while IFS= read -r f; do inputs+=("$f"); done < <(
    find "$g/modules" -type f | LC_ALL=C sort
    [ -d "$g/bin" ] && find "$g/bin" -type f ! -name '.*' | LC_ALL=C sort
    [ -d "$src/tests" ] && find "$src/tests" -type f | LC_ALL=C sort
    [ "${#hrt_images[@]}" -eq 0 ] || printf '%s\n' "${hrt_images[@]}"
)
# Hash names (relative) and contents, so added, removed and edited files all count.
hash=$(for f in "${inputs[@]}"; do
           printf '%s %s\n' "${f#"$root"/}" "$(sha256sum <"$f" | cut -d' ' -f1)"
       done | sha256sum | cut -d' ' -f1)
if [ -f "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
    say "up to date: build/guest/initramfs.cpio.gz ($(stat -c %s "$out") bytes)"
    exit 0
fi

say "building build/guest/initramfs.cpio.gz"
# A staging directory and archive name of this run's own: two builds at once never mix files.
stage=$g/initramfs-root.$$
trap 'rm -rf "$stage" "$out.tmp.$$"' EXIT
rm -rf "$g/initramfs-root" "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,mnt,etc,lib/modules,lib/hrt,tests}
chmod 1777 "$stage/tmp"
chmod 0700 "$stage/root"
install -m 0755 "$src/init" "$stage/init"
install -m 0755 "$g/busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
if [ -d "$g/bin" ]; then
    find "$g/bin" -maxdepth 1 -type f ! -name '.*' | while IFS= read -r f; do
        install -m 0755 "$f" "$stage/bin/"
    done
fi
for f in "$g"/modules/*; do
    case $f in
        *.ko) install -m 0644 "$f" "$stage/lib/modules/" ;;
        */load-order|*/modules.dep) install -m 0644 "$f" "$stage/lib/modules/" ;;
    esac
done
cp "$g/kernel-version" "$stage/etc/kernel-version" 2>/dev/null || true
for f in ${hrt_images[@]+"${hrt_images[@]}"}; do
    install -m 0644 "$f" "$stage/lib/hrt/"
done
if [ -d "$src/tests" ]; then
    (cd "$src/tests" && find . -type f) | while IFS= read -r f; do
        mode=0644; case $f in *.sh) mode=0755 ;; esac
        install -D -m "$mode" "$src/tests/$f" "$stage/tests/$f"
    done
fi
find "$stage" -exec touch -h -d "@$EPOCH" {} +

# newc_node NAME MODE(octal) MAJOR MINOR INO: one cpio entry without data (device node).
newc_node() {
    local namesize=$(( ${#1} + 1 ))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$5" "$((8#$2))" 0 0 1 "$EPOCH" 0 0 0 "$3" "$4" "$namesize" 0
    printf '%s\0' "$1"
    head -c $(( (4 - (110 + namesize) % 4) % 4 )) /dev/zero
}

tmp=$out.tmp.$$
{
    (cd "$stage" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort \
        | cpio -o -H newc -R 0:0 --reproducible --quiet)
    # A second archive (the kernel unpacks concatenated ones) with the initial console, which
    # the kernel opens for /init before any devtmpfs is mounted.
    newc_node dev/console 020600 5 1 1000001
    newc_node TRAILER!!! 0 0 0 0
} | gzip -n -9 >"$tmp"
mv -f "$tmp" "$out"
printf '%s\n' "$hash" >"$stamp"
nfiles=$(find "$stage" -mindepth 1 | wc -l)
say "done: build/guest/initramfs.cpio.gz ($(stat -c %s "$out") bytes, $((nfiles + 1)) entries," \
    "modules: $(tr '\n' ' ' <"$g/modules/load-order")programs: $(cd "$stage/bin" && find . -type f ! -name busybox | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ')tests: $(cd "$stage/tests" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ')HRT images: $(cd "$stage/lib/hrt" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' '))"
