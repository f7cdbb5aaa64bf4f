#!/bin/bash
# The systemd tier: boot systemd as PID 1 of new namespaces (mount, pid,
# cgroup, uts, net, ipc; nspawn-style, no VM) in a child cgroup
# "cuddy-systemd-tier.PID" of every hierarchy, with a D-Bus system bus
# (dbus.socket + dbus.service only: /run/systemd/system overrides, started
# through a minimal target), then run the systemd-driver tests inside it:
#
#   integration/systemd/run.sh [--bench]
#
# --bench: instead of the tests, integration/systemd/bench.sh (create +
# start + delete with the systemd driver versus cgroupfs; cuddy, runc, crun).
#
# The tests are ignored ones: the lib's src/cgroups/systemd/tests_real.rs
# (the unit calls) and tests/root/systemd_driver.rs (cuddy --systemd-cgroup
# with the busybox fixture); they reach that systemd over
# /run/dbus/system_bus_socket, as cuddy does.
# Works on cgroup v1, hybrid and v2 hosts (the hierarchies are mounted again
# inside the cgroup namespace, so systemd sees its cgroup as the root), e.g.
# in the QEMU v2 guest, where integration/vm/test-v2.sh runs it with the
# test binaries built on the host (CUDDY_SYSTEMD_TIER_LIB / _ROOT: the
# guest has no cargo).
# Afterwards: systemd killed (by PID, with its whole pid namespace) and the
# child cgroups removed. Exit status: the tests'.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
die() { echo "systemd-tier: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
[ -x /lib/systemd/systemd ] || die "systemd is not installed (apt-get install systemd)"
command -v dbus-daemon > /dev/null || die "dbus-daemon is not installed (apt-get install dbus)"
exe() { bash integration/test-exe.sh "$@"; }  # the test binary's path
if [ -n "${CUDDY_SYSTEMD_TIER_LIB:-}" ]; then
    # Built beforehand (the QEMU v2 guest has no cargo: test-v2.sh builds
    # on the host and passes the test binaries' paths).
    lib=$CUDDY_SYSTEMD_TIER_LIB roott=${CUDDY_SYSTEMD_TIER_ROOT:-}
    [ -x "$lib" ] && [ -x "$roott" ] || die "CUDDY_SYSTEMD_TIER_LIB/ROOT: not executables"
else
    lib=$(exe --lib); [ -x "$lib" ] || die "cargo test --lib --no-run failed"
    roott=$(exe --test root); [ -x "$roott" ] || die "cargo test --test root --no-run failed"
    cargo build --quiet || die "cargo build failed"
    bash rootfs-fixtures/build.sh > /dev/null || die "rootfs-fixtures/build.sh failed"
fi

N=cuddy-systemd-tier.$$
run=$(mktemp -d) || die mktemp
upid=
cleanup() {
    if [ -n "$upid" ]; then
        for c in $(cat "/proc/$upid/task/$upid/children" 2>/dev/null); do kill -KILL "$c" 2>/dev/null; done
        wait "$upid" 2>/dev/null
    fi
    for h in /sys/fs/cgroup/ /sys/fs/cgroup/*/; do
        [ -d "$h$N" ] || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            find "$h$N" -depth -type d -exec rmdir {} + 2>/dev/null
            [ -d "$h$N" ] || break
            sleep 0.3
        done
        [ -d "$h$N" ] && echo "systemd-tier: warning: $h$N left behind" >&2
    done
    rm -rf "$run"
}
trap cleanup EXIT

# The cgroup mounts (mount point, type, controllers) to repeat inside.
awk '{ for (i = 7; $i != "-"; i++); if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5, $(i+1), $(i+3) }' \
    /proc/self/mountinfo > "$run/cgmounts"
grep -q . "$run/cgmounts" || die "no cgroup hierarchy is mounted"

cat > "$run/inner.sh" <<'INNER'
set -e
mount --make-rprivate /
# As systemd-nspawn: /proc/sys and /sys read-only, or systemd as PID 1
# writes the host's global sysctls (it sets fs.file-max at boot).
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount --bind /sys /sys
mount -o remount,bind,ro /sys
root=/sys/fs/cgroup
if grep -q "^$root cgroup2 " "$1"; then
    mount -t cgroup2 -o nsdelegate cgroup2 $root
else
    mount -t tmpfs -o mode=755 cgroup $root
    while read -r mp type opts; do
        [ "$mp" = $root ] && continue
        mkdir -p "$mp"
        if [ "$type" = cgroup2 ]; then mount -t cgroup2 cgroup2 "$mp"; continue; fi
        o=$(echo "$opts" | tr , '\n' | grep -Ev '^(rw|ro|xattr|release_agent=.*|clone_children)$' | paste -sd, -)
        case $o in name=*) o=none,$o ;; esac
        mount -t cgroup -o "$o" cgroup "$mp"
    done < "$1"
fi
mount -t tmpfs -o mode=755 run /run
mkdir -p /run/systemd/system /run/dbus
printf '[Unit]\nDefaultDependencies=no\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n' \
    > /run/systemd/system/dbus.socket
printf '[Unit]\nDefaultDependencies=no\nRequires=dbus.socket\n[Service]\nExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n' \
    > /run/systemd/system/dbus.service
printf '[Unit]\nDefaultDependencies=no\nWants=dbus.socket dbus.service\n' > /run/systemd/system/cuddy-tier.target
echo cuddy-tier > /run/systemd/container
export container=cuddy-tier
# Released by run.sh once the unshare process above us left the cgroup.
while [ ! -e "$2" ]; do sleep 0.05; done
exec /lib/systemd/systemd --system --unit=cuddy-tier.target --log-target=console --log-level=warning
INNER

# Our own child cgroup in each hierarchy (cpuset needs cpus/mems first).
# On a v2-only host /sys/fs/cgroup is the one hierarchy (its subdirectories
# are cgroups, not hierarchies).
hier=(/sys/fs/cgroup/*/ /sys/fs/cgroup/)
[ -e /sys/fs/cgroup/cgroup.controllers ] && hier=(/sys/fs/cgroup/)
for h in "${hier[@]}"; do
    [ -e "${h}cgroup.procs" ] || continue
    mkdir "$h$N" || die "mkdir $h$N"
    if [ -e "$h$N/cpuset.cpus" ] && [ -e "${h}cpuset.cpus" ]; then  # v1 (v2: inherited)
        cat "${h}cpuset.cpus" > "$h$N/cpuset.cpus"; cat "${h}cpuset.mems" > "$h$N/cpuset.mems"
    fi
done
(
    for h in "${hier[@]}"; do
        [ -d "$h$N" ] && echo "$BASHPID" > "$h$N/cgroup.procs"
    done
    exec unshare -m -C -u -n -i -p -f --mount-proc=/proc bash "$run/inner.sh" "$run/cgmounts" "$run/go"
) > "$run/log" 2>&1 &
upid=$!
# cgroup v2: the unshare process (the pid namespace's parent) goes back to
# our cgroup, or the tier's root cgroup keeps a process of its own and no
# controller can be enabled below it (no internal processes); its child
# took the cgroup namespace with it.
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    for _ in $(seq 1 100); do
        [ -n "$(cat "/proc/$upid/task/$upid/children" 2>/dev/null)" ] && break
        sleep 0.05
    done
    own=$(sed -n 's/^0:://p' /proc/self/cgroup)
    echo "$upid" > "/sys/fs/cgroup${own%/}/cgroup.procs" || die "moving $upid out of $N"
fi
: > "$run/go"

pid=
for _ in $(seq 1 100); do
    pid=$(tr -d " " < "/proc/$upid/task/$upid/children" 2>/dev/null)
    if [ -n "$pid" ] && [ "$(timeout 10 nsenter -t "$pid" -a systemctl is-active dbus.service 2>/dev/null)" = active ]; then
        break
    fi
    kill -0 "$upid" 2>/dev/null || { cat "$run/log" >&2; die "systemd did not start"; }
    sleep 0.3
done
[ -n "$pid" ] || die "systemd did not start"
# The host's sysctls are out of reach.
if nsenter -t "$pid" -a sh -c 'cat /proc/sys/fs/file-max > /proc/sys/fs/file-max' 2>/dev/null; then
    die "/proc/sys is writable in the tier"
fi
echo "systemd-tier: systemd $(nsenter -t "$pid" -a systemctl --version | sed -n '1s/^systemd //p') up as PID 1 (host pid $pid)" >&2
# In the tier: into systemd's root cgroup in every hierarchy (nsenter enters
# the cgroup namespace, not the cgroup), then into a scope of its own, as a
# login shell would be. In a copy of the tier's mount namespace without the
# read-only /proc/sys over /proc: a proc with a covered file is "not fully
# visible", and the kernel then refuses proc mounts in user namespaces.
# On a v2-only host the move into the tier's cgroup is made from outside:
# inside, nsdelegate refuses a migration from above the namespace's root
# ("I/O error", and systemd-run's job fails); init.scope, as N itself has
# controllers enabled for its children.
intier() {
    if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
        ( echo "$BASHPID" > "/sys/fs/cgroup/$N/init.scope/cgroup.procs" && intier_ns "$@" )
        return
    fi
    intier_ns "$@"
}
intier_ns() {
    nsenter -t "$pid" -a --wd="$REPO" unshare -m --propagation private sh -c '
        umount /proc/sys
        if [ ! -e /sys/fs/cgroup/cgroup.controllers ]; then
            for h in /sys/fs/cgroup/*/; do echo $$ 2>/dev/null > "${h}cgroup.procs"; done
        fi
        exec systemd-run --scope --quiet --collect -- "$@"' intier "$@"
}
rc=0
if [ "${1:-}" = --bench ]; then
    intier bash integration/systemd/bench.sh || rc=1
    exit "$rc"
fi
intier "$lib" cgroups::systemd --ignored --test-threads 1 || rc=1
intier "$roott" systemd_driver:: --ignored --test-threads 1 || rc=1
echo "systemd-tier: exit $rc" >&2
exit "$rc"
