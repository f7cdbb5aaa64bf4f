#!/usr/bin/env bash
# Build the busybox OCI bundle fixture used by cuddy's tests and benchmarks.
#
#   bash rootfs-fixtures/build.sh [--force]
#
# Result: rootfs-fixtures/build/busybox/ (bundle dir; its path is printed last)
#   rootfs/bin/busybox + one symlink per applet (sh, true, sleep, ...)
#   rootfs/bin/probe   (static build of probe/probe.c)
#   rootfs/{proc,sys,dev,tmp,root,home} empty, rootfs/etc/{passwd,group,hostname}
#   no config.json: tests and scripts write their own (`cuddy spec` makes one)
#
# Idempotent: a stamp (hash of this script, probe.c and the busybox binary)
# makes a second run a no-op. --force rebuilds. Concurrent runs are serialised
# with flock. Installs busybox-static / gcc / libc6-dev with apt-get if absent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/build"
bundle="$build/busybox"
rootfs="$bundle/rootfs"
probe_src="$here/probe/probe.c"

force=0
for a in "$@"; do
    case "$a" in
        --force) force=1 ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "build.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done

die() { echo "build.sh: error: $*" >&2; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || echo "build.sh: failed (exit $rc) at line $LINENO" >&2' EXIT

[ -f "$probe_src" ] || die "missing $probe_src"
mkdir -p "$build"

# Serialise concurrent builds (tests may call this in parallel).
exec 9>"$build/.lock"
flock 9 || die "cannot lock $build/.lock"

apt_updated=0
need_pkg() { # need_pkg PACKAGE -- install with apt-get if dpkg does not know it as installed
    local p="$1"
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        return 0
    fi
    command -v apt-get >/dev/null || die "package $p is missing and apt-get is not available"
    echo "build.sh: installing $p with apt-get" >&2
    if [ $apt_updated -eq 0 ]; then
        apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >&2 || die "apt-get install $p failed"
}

find_busybox() {
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        if [ -x "$b" ] && file_is_static "$b"; then echo "$b"; return 0; fi
    done
    return 1
}
file_is_static() { # no PT_INTERP program header => static
    ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'INTERP'
}

command -v readelf >/dev/null || need_pkg binutils
bb="$(find_busybox || true)"
if [ -z "$bb" ]; then
    need_pkg busybox-static
    bb="$(find_busybox || true)"
    [ -n "$bb" ] || die "busybox-static installed but no static busybox found in /bin or /usr/bin"
fi

stamp_want="$(cat "${BASH_SOURCE[0]}" "$probe_src" "$bb" | sha256sum | cut -d' ' -f1)"
stamp_file="$bundle/.fixture-stamp"


if [ $force -eq 0 ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_want" ] \
    && [ -x "$rootfs/bin/busybox" ] && [ -x "$rootfs/bin/probe" ] && [ -e "$rootfs/bin/sh" ]; then
    trap - EXIT
    echo "$bundle"
    exit 0
fi

# --- full build ---------------------------------------------------------------
command -v gcc >/dev/null || need_pkg gcc
need_pkg libc6-dev   # provides the static libc.a used by -static

echo "build.sh: building $rootfs" >&2
mkdir -p "$bundle"
tmp="$(mktemp -d "$bundle/.rootfs.tmp.XXXXXX")"
cleanup_tmp() { rm -rf "$tmp" "$bundle/.rootfs.old" 2>/dev/null || true; }
trap 'rc=$?; cleanup_tmp; [ $rc -eq 0 ] || echo "build.sh: failed (exit $rc)" >&2' EXIT

chmod 0755 "$tmp"
for d in bin proc sys dev tmp etc root home usr usr/bin sbin usr/sbin; do mkdir -p "$tmp/$d"; done
chmod 1777 "$tmp/tmp"
chmod 0700 "$tmp/root"

install -m 0755 "$bb" "$tmp/bin/busybox"
applets="$("$tmp/bin/busybox" --list)" || die "busybox --list failed"
n=0
while IFS= read -r a; do
    [ -n "$a" ] || continue
    case "$a" in busybox|*/*) continue ;; esac
    ln -sf busybox "$tmp/bin/$a"
    n=$((n + 1))
done <<<"$applets"
[ -e "$tmp/bin/sh" ] && [ -e "$tmp/bin/true" ] && [ -e "$tmp/bin/sleep" ] \
    || die "busybox lacks sh/true/sleep applets"

gcc -static -O2 -Wall -o "$tmp/bin/probe" "$probe_src" \
    || die "compiling $probe_src failed"
file_is_static "$tmp/bin/probe" || die "probe is not statically linked"

cat >"$tmp/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$tmp/etc/group" <<'EOF'
root:x:0:
tester:x:1000:
nobody:x:65534:
EOF
echo cuddy >"$tmp/etc/hostname"
chmod 0644 "$tmp/etc/passwd" "$tmp/etc/group" "$tmp/etc/hostname"

# Swap the new rootfs in (keeps anything else in the bundle dir, e.g. a config.json
# written by tests).
rm -rf "$bundle/.rootfs.old"
[ -e "$rootfs" ] && mv "$rootfs" "$bundle/.rootfs.old"
mv "$tmp" "$rootfs"
rm -rf "$bundle/.rootfs.old"
echo "$stamp_want" >"$stamp_file"
echo "build.sh: busybox with $n applet links, probe installed" >&2
trap - EXIT
echo "$bundle"
