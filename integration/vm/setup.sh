#!/bin/bash
# Prepare the cgroup-v2-only QEMU guest used by integration/vm/run.sh.
#
#  * installs qemu-system-x86 and busybox-static (Debian apt) when missing;
#  * downloads Debian's linux-image-*-amd64 package (apt-get download, never
#    installed), unpacks it, extracts the uncompressed vmlinux (boots faster:
#    no in-guest decompression) and runs depmod over its module tree;
#  * builds a tiny initramfs: static busybox, /init, and the few modules
#    needed before the 9p shares are mounted.
#
# Everything lands in integration/vm/build/, cached by kernel version; a
# second run only checks that the files are there (well under a second).
#
# Environment:
#   VM_KERNEL_PKG   kernel package to use (default: what linux-image-amd64
#                   depends on, e.g. linux-image-6.1.0-56-amd64)
#   VM_REBUILD=1    rebuild the initramfs even if it exists
set -euo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$VM_DIR/build
mkdir -p "$BUILD"

log() { echo "vm/setup: $*" >&2; }
die() { echo "vm/setup: error: $*" >&2; exit 1; }

# --- host packages -----------------------------------------------------------
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
    need_pkgs+=(busybox-static)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "need root to install ${need_pkgs[*]}"
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need_pkgs[@]}" >&2 ||
    { apt-get -o DPkg::Lock::Timeout=600 update >&2 &&
      apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need_pkgs[@]}" >&2; } ||
    die "apt-get install ${need_pkgs[*]} failed"
fi
BUSYBOX=/bin/busybox

# --- which kernel --------------------------------------------------------------
pkg=${VM_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
          sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
    if [ -z "$pkg" ]; then
        # apt lists not available: fall back to whatever was built last.
        [ -f "$BUILD/current" ] && pkg=$(cat "$BUILD/current") ||
        die "cannot resolve linux-image-amd64 (run apt-get update) and nothing cached"
    fi
fi
kver=${pkg#linux-image-}
KDIR=$BUILD/kernel-$kver
INITRD=$BUILD/initramfs-$kver.cpio.gz

if [ -s "$KDIR/vmlinux" ] && [ -s "$KDIR/lib/modules/$kver/modules.dep" ] &&
   [ -s "$INITRD" ] && [ "${VM_REBUILD:-0}" != 1 ] &&
   [ "$INITRD" -nt "$VM_DIR/init.sh" ] && [ "$INITRD" -nt "${BASH_SOURCE[0]}" ]; then
    echo "$pkg" > "$BUILD/current.tmp" && mv "$BUILD/current.tmp" "$BUILD/current"
    exit 0
fi

# --- kernel: download, unpack, decompress ---------------------------------------
if ! [ -s "$KDIR/vmlinux" ] || ! [ -s "$KDIR/lib/modules/$kver/modules.dep" ]; then
    log "fetching $pkg"
    tmp=$(mktemp -d "$BUILD/.dl.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # _apt cannot write into root-owned dirs; let it write into a world-writable one.
    chmod 1777 "$tmp"
    (cd "$tmp" && apt-get download "$pkg" >&2) ||
        { apt-get -o DPkg::Lock::Timeout=600 update >&2 && (cd "$tmp" && apt-get download "$pkg" >&2); } ||
        die "apt-get download $pkg failed"
    log "unpacking $pkg"
    mkdir "$tmp/x"
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"
    vmlinuz=$(ls "$tmp/x/boot/vmlinuz-$kver")
    # extract-vmlinux: find the compressed payload inside the bzImage and
    # decompress it. Try every candidate offset until an ELF comes out.
    found=
    for fmt in xz zstd gzip; do
        case $fmt in
            xz)   magic='\3757zXZ\000'; dec='xz -dc' ;;
            zstd) magic='(\265/\375'; dec='zstd -dcq' ;;
            gzip) magic='\037\213\010'; dec='gzip -dc' ;;
        esac
        command -v "${dec%% *}" >/dev/null || continue
        for off in $(LC_ALL=C grep -aboP "$(printf "$magic" | od -An -tx1 | tr -d ' \n' | sed 's/../\\x&/g')" "$vmlinuz" | cut -d: -f1); do
            tail -c +$((off + 1)) "$vmlinuz" | $dec > "$tmp/vmlinux" 2>/dev/null || true
            if [ "$(head -c 4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
                found=1; break 2
            fi
        done
    done
    rm -rf "$KDIR"; mkdir -p "$KDIR/lib/modules"
    if [ -n "$found" ]; then
        mv "$tmp/vmlinux" "$KDIR/vmlinux"
    else
        log "warning: could not extract vmlinux, booting the bzImage (slower)"
        cp "$vmlinuz" "$KDIR/vmlinux"
    fi
    cp "$tmp/x/boot/config-$kver" "$KDIR/config"
    mv "$tmp/x/lib/modules/$kver" "$KDIR/lib/modules/$kver"
    log "depmod $kver"
    "$BUSYBOX" depmod -b "$KDIR" "$kver"
    rm -rf "$tmp"; trap - EXIT
fi

# --- initramfs -------------------------------------------------------------------
log "building initramfs for $kver"
MODDIR=$KDIR/lib/modules/$kver
stage=$(mktemp -d "$BUILD/.initrd.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,newroot,.vm/mods}
cp "$BUSYBOX" "$stage/.vm/busybox"
cp "$VM_DIR/init.sh" "$stage/init"
chmod 755 "$stage/init"
# rdinit=/.vm/probe: run.sh's KVM probe (boot, power off at once).
printf '#!/.vm/busybox sh\n/.vm/busybox poweroff -f\n' > "$stage/.vm/probe"
chmod 755 "$stage/.vm/probe"
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3

# Early modules (needed to reach the 9p shares and the output ports), in
# dependency order. Everything else is loaded later from the full module
# tree, which the guest reads over 9p.
declare -A seen=()
order=()
add_mod() {  # $1 = path relative to MODDIR
    local m=$1 deps d
    [ -n "${seen[$m]:-}" ] && return
    seen[$m]=1
    deps=$(awk -v m="$m:" '$1 == m { $1 = ""; print }' "$MODDIR/modules.dep")
    for d in $deps; do add_mod "$d"; done
    order+=("$m")
}
# The modules cuddy's tests need are loaded here too: insmod from the
# initramfs is much cheaper than modprobe over 9p.
for name in virtio_pci virtio_console 9pnet_virtio 9p overlay veth bridge tun; do
    if grep -q "^kernel/.*/$name\.ko:" "$MODDIR/modules.dep"; then
        add_mod "$(grep -o "^kernel/[^:]*/$name\.ko" "$MODDIR/modules.dep" | head -n1)"
    elif ! grep -q "/$name\.ko\$" "$MODDIR/modules.builtin"; then
        die "module $name not found in $kver"
    fi
done
: > "$stage/.vm/early-modules"
for m in "${order[@]}"; do
    b=$(basename "$m")
    cp "$MODDIR/$m" "$stage/.vm/mods/$b"
    echo "$b" >> "$stage/.vm/early-modules"
done
echo "$kver" > "$stage/.vm/kver"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null) |
    gzip -1 > "$INITRD.tmp"
mv "$INITRD.tmp" "$INITRD"
rm -rf "$stage"; trap - EXIT
echo "$pkg" > "$BUILD/current.tmp" && mv "$BUILD/current.tmp" "$BUILD/current"
log "ready: $KDIR/vmlinux + $INITRD"
