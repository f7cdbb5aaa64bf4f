#!/bin/bash
# Run one command inside a throwaway cgroup-v2-only Linux guest (QEMU) and
# return its output and exit status.
#
#   integration/vm/run.sh [OPTIONS] -- CMD [ARGS...]
#
# Options:
#   --mem M         guest memory (QEMU -m syntax; default 2G, env VM_MEM)
#   --cpus N        guest vCPUs (default 2, env VM_CPUS)
#   --timeout S     kill the guest after S seconds (default 900, env VM_TIMEOUT)
#   --env NAME      pass host variable NAME (or NAME=VALUE) to the command;
#                   repeatable. RUST_*, CARGO_*, CUDDY_* always pass.
#   --share DIR     also share host DIR read-write at the same path; repeatable
#   --preload LIST  comma-separated extra modules to modprobe before CMD
#                   (overlay, veth, bridge, tun are always loaded; others
#                   also autoload on demand)
#   --accel A       tcg, kvm or auto (default auto: KVM only where it works;
#                   env VM_ACCEL)
#   --verbose       show the guest kernel's console on stdout (env VM_DEBUG=1)
#
# Other environment: VM_APPEND (extra kernel command line), VM_TIMING=1 (print
# boot and run times on stderr), VM_KVM_PROBE_TIMEOUT (seconds, default 8).
#
# The guest: root, cgroup2 only at /sys/fs/cgroup with every controller in the
# root's cgroup.subtree_control, the host's /usr and /etc (overlay, writable in
# the guest, changes discarded), tmpfs /, /tmp, /run, /dev/shm, and the
# repository, the current directory, CARGO_TARGET_DIR and --share dirs
# shared read-write at their host paths (virtio-9p). CMD runs in the host's
# cwd with CUDDY_VM=1; its stdout goes to our stdout, its stderr to our
# stderr, and its exit status becomes ours. Boot failure: exit 125 (message
# on stderr); timeout: exit 124.
#
# As a cargo runner:
#   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/integration/vm/run.sh --" cargo test
set -uo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
BUILD=$VM_DIR/build

die() { echo "vm/run: error: $*" >&2; exit 125; }
usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; exit 125; }

mem=${VM_MEM:-2G}
cpus=${VM_CPUS:-2}
timeout=${VM_TIMEOUT:-900}
accel=${VM_ACCEL:-auto}
verbose=${VM_DEBUG:-0}
preload=
envs=()
shares=()
while [ $# -gt 0 ]; do
    case $1 in
        --mem) mem=$2; shift 2 ;;
        --mem=*) mem=${1#*=}; shift ;;
        --cpus) cpus=$2; shift 2 ;;
        --cpus=*) cpus=${1#*=}; shift ;;
        --timeout) timeout=$2; shift 2 ;;
        --timeout=*) timeout=${1#*=}; shift ;;
        --env) envs+=("$2"); shift 2 ;;
        --env=*) envs+=("${1#*=}"); shift ;;
        --share) shares+=("$2"); shift 2 ;;
        --share=*) shares+=("${1#*=}"); shift ;;
        --preload) preload=$2; shift 2 ;;
        --preload=*) preload=${1#*=}; shift ;;
        --accel) accel=$2; shift 2 ;;
        --accel=*) accel=${1#*=}; shift ;;
        --verbose|-v) verbose=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || die "no command given (usage: run.sh [OPTIONS] -- CMD [ARGS...])"
case $timeout in ''|*[!0-9]*) die "--timeout wants whole seconds" ;; esac
case $cpus in ''|*[!0-9]*) die "--cpus wants a number" ;; esac

# --- kernel + initramfs (built by setup.sh, cached) -------------------------------
kpkg=$(cat "$BUILD/current" 2>/dev/null)
kver=${kpkg#linux-image-}
if [ -z "$kpkg" ] || [ ! -s "$BUILD/kernel-$kver/vmlinux" ] || [ ! -s "$BUILD/initramfs-$kver.cpio.gz" ] ||
   [ "$VM_DIR/init.sh" -nt "$BUILD/initramfs-$kver.cpio.gz" ] || [ "$VM_DIR/setup.sh" -nt "$BUILD/initramfs-$kver.cpio.gz" ]; then
    "$VM_DIR/setup.sh" >&2 || die "setup.sh failed"
    kpkg=$(cat "$BUILD/current"); kver=${kpkg#linux-image-}
fi
KDIR=$BUILD/kernel-$kver
INITRD=$BUILD/initramfs-$kver.cpio.gz
QEMU=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found (run setup.sh)"

# --- per-run control directory -------------------------------------------------------
run=$(mktemp -d "${TMPDIR:-/tmp}/cuddy-vm.XXXXXX") || die "mktemp failed"
qpid=
cleanup() {
    [ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

sq() {  # single-quote for sh
    local s=${1//\'/\'\\\'\'}
    printf "'%s'" "$s"
}

# The command: cd to our cwd, exec argv (resolved on the guest's PATH).
{
    printf 'cd %s || exit 126\n' "$(sq "$PWD")"
    printf 'exec'
    for a in "$@"; do printf ' %s' "$(sq "$a")"; done
    printf '\n'
} > "$run/cmd.sh"

# Environment: RUST_*, CARGO_*, CUDDY_* and --env names.
{
    while IFS= read -r -d '' kv; do
        name=${kv%%=*}
        case $name in
            RUST_*|CARGO_*|CUDDY_*) ;;
            *) continue ;;
        esac
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        printf 'export %s=%s\n' "$name" "$(sq "${kv#*=}")"
    done < /proc/self/environ
    for e in ${envs[@]+"${envs[@]}"}; do
        name=${e%%=*}
        [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad --env name: $name"
        if [[ $e == *=* ]]; then
            printf 'export %s=%s\n' "$name" "$(sq "${e#*=}")"
        elif [ -n "${!name+x}" ]; then
            printf 'export %s=%s\n' "$name" "$(sq "${!name}")"
        fi
    done
    echo 'export CUDDY_VM=1'
} > "$run/env.sh"
echo "${preload//,/ }" > "$run/preload"

# Top-level layout: mirror the host's /bin, /sbin, /lib* symlinks (merged /usr).
: > "$run/links"
fsdev=()
ntag=0
addshare() {  # addshare HOSTDIR GUESTPATH ro|rw
    local tag="vmshare$ntag" ro=
    ntag=$((ntag + 1))
    [ "$3" = ro ] && ro=,readonly=on
    fsdev+=(-fsdev "local,id=$tag,path=$1,security_model=none,multidevs=remap$ro"
            -device "virtio-9p-pci,fsdev=$tag,mount_tag=$tag")
    printf '%s %s %s\n' "$tag" "$2" "$3" >> "$run/mounts"
}
: > "$run/mounts"
for d in bin sbin lib lib32 lib64 libx32; do
    if [ -L "/$d" ]; then
        printf '%s %s\n' "$d" "$(readlink "/$d")" >> "$run/links"
    elif [ -d "/$d" ]; then
        addshare "/$d" "/$d" ro
    fi
done

# Work shares at their host paths: the repository, cwd, CARGO_TARGET_DIR,
# the command's directory, --share. Nested ones are covered by their parent.
cands=("$REPO" "$PWD")
[ -n "${CARGO_TARGET_DIR:-}" ] && cands+=("$CARGO_TARGET_DIR")
case $1 in /*) cands+=("$(dirname "$1")") ;; esac
cands+=(${shares[@]+"${shares[@]}"})
picked=()
for c in "${cands[@]}"; do
    [ -d "$c" ] || { [ -n "${shares[*]+x}" ] && [[ " ${shares[*]} " == *" $c "* ]] && die "--share $c: not a directory"; continue; }
    c=$(cd "$c" && pwd -P)
    case $c in
        /|/usr|/usr/*|/etc|/etc/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;;
    esac
    skip=
    for p in ${picked[@]+"${picked[@]}"}; do
        case $c/ in "$p"/*) skip=1 ;; esac
    done
    [ -n "$skip" ] && continue
    # Drop already-picked children of c.
    keep=()
    for p in ${picked[@]+"${picked[@]}"}; do
        case $p/ in "$c"/*) ;; *) keep+=("$p") ;; esac
    done
    picked=(${keep[@]+"${keep[@]}"} "$c")
done
for p in ${picked[@]+"${picked[@]}"}; do addshare "$p" "$p" rw; done

# --- accelerator ---------------------------------------------------------------------------
# KVM is used only where it really runs a guest: some nested/software KVMs
# accept the VM but fail on -cpu host, or hit emulation failures later (QEMU
# then hangs). So boot the kernel once to a trivial /.vm/probe (power off)
# under KVM with a short timeout; the verdict is cached per host boot.
kvm_probe() {  # kvm_probe CPU -> 0 if a guest boots and powers off
    timeout -k 2 "${VM_KVM_PROBE_TIMEOUT:-8}" "$QEMU" -M q35 -accel kvm -cpu "$1" -smp 1 -m 256 \
        -nodefaults -no-user-config -display none -no-reboot -nic none -serial none \
        -kernel "$KDIR/vmlinux" -initrd "$INITRD" \
        -append "console=ttyS0 quiet panic=-1 rdinit=/.vm/probe tsc=reliable" \
        < /dev/null > /dev/null 2>&1
}
pick_kvm() {
    [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
    local id cache cpu
    id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)
    cache=$BUILD/kvm-probe.$kver.${id:-unknown}
    if [ -f "$cache" ]; then
        cpu=$(cat "$cache")
    else
        cpu=none
        for c in host host,-arch-capabilities; do
            if kvm_probe "$c"; then cpu=$c; break; fi
        done
        rm -f "$BUILD"/kvm-probe.*
        echo "$cpu" > "$cache"
    fi
    [ "$cpu" != none ] && echo "$cpu"
}
tcg_args=(-accel tcg,thread=multi,tb-size=256 -cpu max)
case $accel in
    tcg) accel_args=("${tcg_args[@]}") ;;
    kvm) accel_args=(-accel kvm -cpu host) ;;
    auto)
        if cpu=$(pick_kvm); then accel_args=(-accel kvm -cpu "$cpu")
        else accel_args=("${tcg_args[@]}"); fi ;;
    *) die "--accel: tcg, kvm or auto" ;;
esac

# --- boot -----------------------------------------------------------------------------------
mkfifo "$run/stdout" "$run/stderr"
cmdline="console=ttyS0 loglevel=4 panic=-1 oops=panic cgroup_no_v1=all tsc=reliable no_timer_check
 rdinit=/init i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=1 mitigations=off audit=0
 random.trust_cpu=on nowatchdog systemd.unified_cgroup_hierarchy=1"
cmdline=$(echo $cmdline ${VM_APPEND:-})
if [ "$verbose" = 1 ]; then console=(-serial stdio); cmdline=${cmdline/loglevel=4/loglevel=7}
else console=(-serial "file:$run/console.log"); fi

# stdout/stderr: QEMU writes into FIFOs, cat copies them to our fds (works
# whatever our fds are: tty, pipe, file, socket).
# We hold both FIFOs open read-write (never reading) so that nothing blocks
# whether or not QEMU gets as far as opening them; the cats see EOF once QEMU
# has exited and we close our ends.
exec 3<>"$run/stdout" 4<>"$run/stderr"
cat "$run/stdout" 3>&- 4>&- &
cat_out=$!
cat "$run/stderr" >&2 3>&- 4>&- &
cat_err=$!

start=$(date +%s.%N)
timeout -k 5 "$timeout" "$QEMU" \
    -M q35 "${accel_args[@]}" -smp "$cpus" -m "$mem" \
    -nodefaults -no-user-config -display none -no-reboot -nic none \
    "${console[@]}" \
    -kernel "$KDIR/vmlinux" -initrd "$INITRD" -append "$cmdline" \
    -fsdev "local,id=vmctl,path=$run,security_model=none,readonly=on" \
    -device virtio-9p-pci,fsdev=vmctl,mount_tag=vmctl \
    -fsdev "local,id=vmusr,path=/usr,security_model=none,readonly=on,multidevs=remap" \
    -device virtio-9p-pci,fsdev=vmusr,mount_tag=vmusr \
    -fsdev "local,id=vmetc,path=/etc,security_model=none,readonly=on,multidevs=remap" \
    -device virtio-9p-pci,fsdev=vmetc,mount_tag=vmetc \
    -fsdev "local,id=vmkernel,path=$KDIR,security_model=none,readonly=on" \
    -device virtio-9p-pci,fsdev=vmkernel,mount_tag=vmkernel \
    ${fsdev[@]+"${fsdev[@]}"} \
    -device virtio-serial-pci,id=vser \
    -chardev "file,id=vmout,path=$run/stdout" -device virtserialport,chardev=vmout,name=vm.stdout \
    -chardev "file,id=vmerr,path=$run/stderr" -device virtserialport,chardev=vmerr,name=vm.stderr \
    -chardev "file,id=vmstatus,path=$run/status" -device virtserialport,chardev=vmstatus,name=vm.status \
    < /dev/null 2> "$run/qemu.err" 3>&- 4>&- &
qpid=$!
wait "$qpid"
qrc=$?
qpid=
exec 3>&- 4>&-
wait "$cat_out" "$cat_err" 2>/dev/null
end=$(date +%s.%N)

status=$(cat "$run/status" 2>/dev/null)
booted=$(sed -n 's/^booted //p' <<<"$status")
rc=$(sed -n 's/^exit //p' <<<"$status")
if [ -n "${VM_TIMING:-}" ]; then
    echo "vm/run: guest booted at ${booted:-?}s uptime; QEMU ran $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')s (${accel_args[*]:0:2})" >&2
fi
if [ -n "$rc" ]; then
    exit "$rc"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    if [ -n "$booted" ]; then what="the command was still running"; else what="the guest had not finished booting"; fi
    echo "vm/run: error: timed out after ${timeout}s ($what)" >&2
    rc=124
else
    echo "vm/run: error: guest did not report an exit status (QEMU exit $qrc${booted:+, command started at ${booted}s})" >&2
    rc=125
fi
[ -s "$run/qemu.err" ] && sed 's/^/vm\/run: qemu: /' "$run/qemu.err" >&2
if [ -s "$run/console.log" ]; then
    echo "vm/run: last guest console lines:" >&2
    tail -n 25 "$run/console.log" | sed 's/^/  | /' >&2
elif [ "$verbose" != 1 ]; then
    echo "vm/run: the guest printed nothing; try --verbose" >&2
fi
exit "$rc"
