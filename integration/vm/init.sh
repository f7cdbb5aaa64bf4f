#!/.vm/busybox sh
# /init of the cgroup-v2 test guest (copied into the initramfs by setup.sh).
#
# Stage 1 (PID 1 on the initramfs): load the early modules, build the real
# root on a tmpfs (/usr and /etc from the host over virtio-9p, behind an
# overlay so they are writable in the guest; the host's shared directories at
# their host paths), then move it onto / and chroot: the guest's / is then a
# real mount and pivot_root works inside it.
# Stage 2 (PID 1 in the new root): cgroup2, modules, devices, run the command
# with its stdout/stderr on virtio ports, report its exit status, power off.
#
# The host side (run.sh) passes everything through the "vmctl" 9p share:
#   mounts   lines "TAG GUESTPATH ro|rw"   extra 9p shares
#   links    lines "NAME TARGET"           top-level symlinks (/bin -> usr/bin)
#   env.sh   export lines                  environment for the command
#   cmd.sh   "cd DIR" + "exec ARGS..."     the command
#   preload  module names to load before the command
BB=/.vm/busybox
PATH=/.vm/bin
export PATH

fail() {
    echo "vm-init: FATAL: $*" > /dev/console
    # Make QEMU exit (it runs with -no-reboot) instead of hanging.
    $BB sleep 1
    $BB reboot -f
    exit 1
}

p9() {  # p9 TAG DIR [ro]
    $BB mount -t 9p -o "trans=virtio,version=9p2000.L,msize=524288,cache=${P9CACHE:-loose}${3:+,ro}" "$1" "$2"
}

if [ "$1" != stage2 ]; then
    # ---------------------------------------------------------------- stage 1
    $BB mount -t proc proc /proc
    $BB mount -t sysfs sysfs /sys
    $BB mount -t devtmpfs devtmpfs /dev
    $BB mkdir -p /.vm/bin
    $BB --install -s /.vm/bin
    for m in $($BB cat /.vm/early-modules); do
        $BB insmod "/.vm/mods/$m" || fail "insmod $m"
    done
    KVER=$($BB cat /.vm/kver)

    R=/newroot
    $BB mount -t tmpfs -o mode=0755 root $R || fail "tmpfs root"
    $BB mkdir -p $R/.vm/ctl $R/.vm/lower/usr $R/.vm/lower/etc $R/.vm/lower/kernel \
        $R/.vm/upper $R/usr $R/etc $R/proc $R/sys $R/dev $R/tmp $R/run $R/root \
        $R/var/tmp $R/mnt $R/home
    $BB mkdir -p $R/var/lib $R/var/log $R/var/cache
    $BB ln -s ../run $R/var/run
    $BB chmod 1777 $R/tmp $R/var/tmp
    $BB chmod 0700 $R/root
    p9 vmctl $R/.vm/ctl ro || fail "mount vmctl share"
    P9CACHE=loose
    p9 vmusr $R/.vm/lower/usr ro || fail "mount host /usr"
    p9 vmetc $R/.vm/lower/etc ro || fail "mount host /etc"
    p9 vmkernel $R/.vm/lower/kernel ro || fail "mount kernel modules"
    $BB cp -a /.vm/busybox /.vm/bin $R/.vm/
    $BB cp /init $R/.vm/init

    # Writable /usr and /etc: overlay over the read-only host copies. /usr also
    # gets the guest kernel's modules (lib/modules/$KVER) as an extra layer.
    $BB mount -t tmpfs -o mode=0755 upper $R/.vm/upper
    $BB mkdir -p $R/.vm/upper/usr $R/.vm/upper/usr.work $R/.vm/upper/etc $R/.vm/upper/etc.work
    if $BB mount -t overlay -o "lowerdir=$R/.vm/lower/kernel:$R/.vm/lower/usr,upperdir=$R/.vm/upper/usr,workdir=$R/.vm/upper/usr.work" usr $R/usr &&
       $BB mount -t overlay -o "lowerdir=$R/.vm/lower/etc,upperdir=$R/.vm/upper/etc,workdir=$R/.vm/upper/etc.work" etc $R/etc; then
        :
    else
        echo "vm-init: overlay failed, /usr and /etc are read-only" > /dev/console
        $BB mount --bind $R/.vm/lower/usr $R/usr
        $BB mount --bind $R/.vm/lower/etc $R/etc
    fi
    $BB ln -sf /proc/self/mounts $R/etc/mtab 2>/dev/null

    while read -r name target; do
        [ -n "$name" ] && $BB ln -sfn "$target" "$R/$name"
    done < $R/.vm/ctl/links

    # Scratch tmpfs mounts first: shares below /tmp or /run go on top of them.
    $BB mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/tmp
    $BB mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $R/run

    # Work shares: the repository, the cwd, ... at the same path as on the host.
    P9CACHE=none
    while read -r tag path mode; do
        [ -n "$tag" ] || continue
        $BB mkdir -p "$R$path" || fail "mkdir $path"
        if [ "$mode" = ro ]; then p9 "$tag" "$R$path" ro; else p9 "$tag" "$R$path"; fi ||
            fail "mount share $tag at $path"
    done < $R/.vm/ctl/mounts

    $BB mount --move /proc $R/proc
    $BB mount --move /sys $R/sys
    $BB mount --move /dev $R/dev
    cd $R || fail "cd $R"
    $BB mount --move . / || fail "move root"
    exec $BB chroot . /.vm/busybox sh /.vm/init stage2
    fail "chroot"
fi

# -------------------------------------------------------------------- stage 2
# cgroup v2 only (the kernel runs with cgroup_no_v1=all), every controller
# enabled for the children of the root.
$BB mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
for c in $($BB cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "vm-init: cannot enable $c" > /dev/console
done
$BB mkdir -p /dev/pts /dev/shm /dev/mqueue
$BB mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
$BB mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
$BB mount -t mqueue mqueue /dev/mqueue 2>/dev/null
$BB ln -sf /proc/self/fd /dev/fd
$BB ln -sf /proc/self/fd/0 /dev/stdin
$BB ln -sf /proc/self/fd/1 /dev/stdout
$BB ln -sf /proc/self/fd/2 /dev/stderr
[ -e /dev/ptmx ] || $BB ln -sf pts/ptmx /dev/ptmx
$BB mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
$BB mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
$BB mount -t bpf bpf /sys/fs/bpf 2>/dev/null

# Module autoloading (and modprobe for the preload list) from the guest
# kernel's tree, /usr/lib/modules/$KVER (overlay layer, see above).
KVER=$($BB uname -r)
if [ -d "/lib/modules/$KVER" ]; then
    echo /.vm/bin/modprobe > /proc/sys/kernel/modprobe
    for m in $($BB cat /.vm/ctl/preload 2>/dev/null); do
        $BB modprobe "$m" || echo "vm-init: modprobe $m failed" > /dev/console
    done
fi
$BB hostname cuddy-vm
$BB ip link set lo up
echo 1 > /proc/sys/net/ipv4/ip_forward

# Output ports (virtserialport, not consoles: the command sees plain char
# devices, not ttys).
OUT= ERR= STATUS=
for d in /sys/class/virtio-ports/*; do
    case $($BB cat "$d/name" 2>/dev/null) in
        vm.stdout) OUT=/dev/${d##*/} ;;
        vm.stderr) ERR=/dev/${d##*/} ;;
        vm.status) STATUS=/dev/${d##*/} ;;
    esac
done
[ -n "$OUT" ] && [ -n "$ERR" ] && [ -n "$STATUS" ] || fail "virtio ports not found"
echo "booted $($BB cut -d' ' -f1 /proc/uptime)" > "$STATUS"

# Clean environment + what the host passed.
for v in $($BB env | $BB sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$v" 2>/dev/null
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root USER=root LOGNAME=root SHELL=/bin/sh LANG=C.UTF-8
export CUDDY_VM=1
. /.vm/ctl/env.sh

# Run cmd.sh with the host's /bin/sh: busybox's sh would prefer its own
# applets (ip, mount, unshare...) over the host binaries on PATH.
SH=/bin/sh
[ -x "$SH" ] || SH="/.vm/busybox sh"
$SH /.vm/ctl/cmd.sh < /dev/null > "$OUT" 2> "$ERR"
rc=$?
echo "exit $rc" > "$STATUS"
$BB sync
$BB poweroff -f
