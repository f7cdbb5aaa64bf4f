#!/bin/sh
# Self-test of the cgroup-v2 guest: integration/vm/selftest.sh
# (host side: boots a few guests via run.sh; --guest: the checks run inside).
set -u
fails=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { desc=$1; shift; if "$@" >/tmp/selftest.out 2>&1; then ok "$desc"; else bad "$desc"; sed 's/^/       /' /tmp/selftest.out; fi; }

if [ "${1:-}" = --guest ]; then
    [ "${CUDDY_VM:-}" = 1 ] && ok "CUDDY_VM=1" || bad "CUDDY_VM=1"
    check "cgroup2 mounted at /sys/fs/cgroup" sh -c 'mount | grep -q "^cgroup2 on /sys/fs/cgroup type cgroup2"'
    check "no cgroup v1 hierarchy" sh -c '! awk "\$3 == \"cgroup\"" /proc/self/mounts | grep -q .'
    check "cgroup v1 cannot be mounted" sh -c 'mkdir -p /tmp/v1 && ! mount -t cgroup -o memory none /tmp/v1 2>/dev/null'
    check "/proc/self/cgroup is 0::/ only" sh -c 'test "$(cat /proc/self/cgroup)" = "0::/"'
    check "controllers all enabled" sh -c 'c=$(cat /sys/fs/cgroup/cgroup.controllers); test "$(cat /sys/fs/cgroup/cgroup.subtree_control)" = "$c" && for x in cpu memory pids io cpuset; do echo " $c " | grep -q " $x " || exit 1; done'
    check "child cgroup with limits" sh -c 'd=/sys/fs/cgroup/selftest && mkdir $d && echo 100M > $d/memory.max && echo "50000 100000" > $d/cpu.max && echo 10 > $d/pids.max && sh -c "echo \$\$ > $d/cgroup.procs && cat /proc/self/cgroup" | grep -qx "0::/selftest" && rmdir $d'
    check "unshare -m -p -f --mount-proc" unshare -m -p -f --mount-proc true
    check "pivot_root in a mount namespace" unshare -m sh -c 'mkdir -p /tmp/r && mount -t tmpfs t /tmp/r && mkdir /tmp/r/old && cd /tmp/r && pivot_root . old'
    check "user+net namespaces" unshare -U -r -n true
    check "overlay mount" sh -c 'mkdir -p /tmp/o/l /tmp/o/u /tmp/o/w /tmp/o/m && mount -t overlay o -o lowerdir=/tmp/o/l,upperdir=/tmp/o/u,workdir=/tmp/o/w /tmp/o/m && umount /tmp/o/m'
    check "veth + bridge + tap" sh -c 'ip link add stbr type bridge && ip link add stv0 type veth peer name stv1 && ip link set stv0 master stbr && ip tuntap add sttap mode tap'
    check "writable tmpfs /tmp /run /dev/shm" sh -c 'for d in /tmp /run /dev/shm; do touch $d/x && rm $d/x || exit 1; done; grep -q " /run tmpfs " /proc/mounts'
    check "/dev/pts and /dev/ptmx" sh -c 'test -c /dev/ptmx && grep -q " /dev/pts devpts " /proc/mounts'
    check "/ is a real mount (tmpfs, not rootfs)" grep -q '^[0-9]* [0-9]* [0-9:]* / / .* - tmpfs ' /proc/self/mountinfo
    check "cwd is the host cwd" test "$(pwd)" = "${SELFTEST_CWD:-$PWD}"
    check "host binaries on PATH" sh -c 'command -v unshare && command -v ip && command -v mount'
    exit $((fails > 0))
fi

here=$(cd "$(dirname "$0")" && pwd)
run=$here/run.sh
cd "$here/../.." || exit 1
"$run" -- sh -c 'exit 7'; rc=$?
[ $rc = 7 ] && ok "exit status propagates (7)" || bad "exit status propagates (got $rc)"
out=$("$run" -- printf '[%s]' "a b" "c'd" '$x "y"' "" '*'); rc=$?
[ $rc = 0 ] && [ "$out" = "[a b][c'd][\$x \"y\"][][*]" ] && ok "argument quoting" || bad "argument quoting: $out"
err=$("$run" -- sh -c 'echo out; echo err >&2' 2>&1 >/dev/null)
[ "$err" = err ] && ok "stderr stays stderr" || bad "stderr: $err"
out=$(CUDDY_X='a b' RUST_BACKTRACE=1 SELFTEST_PASS=p "$run" --env SELFTEST_PASS --env SELFTEST_SET=s -- sh -c 'echo "$CUDDY_X|$RUST_BACKTRACE|$SELFTEST_PASS|$SELFTEST_SET|${HOSTNAME_HOST:-}"')
[ "$out" = "a b|1|p|s|" ] && ok "environment passing" || bad "environment passing: $out"
start=$(date +%s.%N)
SELFTEST_CWD=$PWD "$run" --env SELFTEST_CWD -- sh integration/vm/selftest.sh --guest || fails=$((fails + 1))
end=$(date +%s.%N)
echo "guest self-test boot+run: $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')s"
[ $fails = 0 ] && echo "vm self-test: all passed" || echo "vm self-test: $fails failed"
exit $((fails > 0))
