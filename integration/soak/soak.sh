#!/usr/bin/env bash
# Soak test (issue 11): many lifecycles and execs in a row, watching for leaks.
#
#   integration/soak/soak.sh [-n CYCLES] [-e EXECS] [-k EVERY] [--cuddy PATH]
#
#   -n CYCLES     container lifecycles (default 1000): create, start, wait
#                 (poll `state` until "stopped"), delete of /bin/true
#   -e EXECS      execs of /bin/true into one long-running container
#                 (default: CYCLES)
#   -k EVERY      print a line every EVERY cycles/execs (default 100)
#   --cuddy PATH  cuddy binary (default target/release/cuddy, else
#                 target/debug/cuddy)
#
# Each line (at the start, every EVERY, at the end) gives:
#   fds      open fds of this shell, and of the long-running container's init
#   state    entries in the cuddy state root
#   mounts   lines of /proc/self/mountinfo
#   cgdirs   cgroup directories under the test parent (/cuddy-soak-PID), all
#            hierarchies together
#   zombies  zombies whose parent is this shell or the container's init /
#            zombies on the whole host (other users' processes included)
#   initRSS  VmRSS of the long-running container's init (kB)
#   peakRSS  the largest max-RSS of any cuddy invocation in the window (kB,
#            GNU time %M)
#   ms/op    wall time per lifecycle (or per exec) over the window
# The figures must stay flat: a leak shows as a column that grows.
#
# Not in CI (it takes minutes). Needs root, the busybox fixture
# (rootfs-fixtures/build.sh is run), python3 and GNU time. Cleans up on exit
# (delete --force of its containers, rmdir of its cgroup parent, rm -rf of its
# work dir); never touches anything else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

cycles=1000
execs=""
every=100
cuddy=""
usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        -n) cycles="$2"; shift 2 ;;
        -e) execs="$2"; shift 2 ;;
        -k) every="$2"; shift 2 ;;
        --cuddy) cuddy="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "soak.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ -n "$execs" ] || execs="$cycles"
for v in "$cycles" "$execs" "$every"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "soak.sh: counts must be numbers" >&2; exit 2; }
done
[ "$every" -gt 0 ] || every=100
[ "$(id -u)" = 0 ] || { echo "soak.sh: must run as root" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "soak.sh: needs GNU time (/usr/bin/time)" >&2; exit 1; }
if [ -z "$cuddy" ]; then
    cuddy="$repo/target/release/cuddy"
    [ -x "$cuddy" ] || cuddy="$repo/target/debug/cuddy"
fi
[ -x "$cuddy" ] || { echo "soak.sh: no cuddy binary at $cuddy (cargo build --release)" >&2; exit 1; }

bash "$repo/rootfs-fixtures/build.sh" > /dev/null
rootfs="$repo/rootfs-fixtures/build/busybox/rootfs"

work="$(mktemp -d /tmp/cuddy-soak-XXXXXX)"
root="$work/root"
parent="cuddy-soak-$$"
long="cuddy-soak-long-$$"
rssf="$work/rss"

cleanup() {
    set +e
    for d in "$root"/*/; do
        [ -f "$d/state.json" ] && "$cuddy" --root "$root" delete --force "$(basename "$d")" >/dev/null 2>&1
    done
    for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
        [ -d "$h/$parent" ] || continue
        find "$h/$parent" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# config.json: the default spec on the fixture, read-only root, no terminal.
bundle() { # bundle DIR CGROUP ARGS...
    local dir="$1" cg="$2"; shift 2
    mkdir -p "$dir"
    "$cuddy" spec --bundle "$dir"
    python3 - "$dir/config.json" "$rootfs" "/$parent/$cg" "$@" <<'EOF'
import json, sys
p, rootfs, cg, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
c = json.load(open(p))
c["root"] = {"path": rootfs, "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = args
c["linux"]["cgroupsPath"] = cg
json.dump(c, open(p, "w"))
EOF
}

# cz ARGS...: cuddy with our root, its max RSS appended to $rssf.
cz() {
    /usr/bin/time -f %M -a -o "$rssf" "$cuddy" --root "$root" "$@"
}

cgdirs() {
    local n=0 h
    for h in /sys/fs/cgroup /sys/fs/cgroup/*; do
        [ -d "$h/$parent" ] && n=$((n + $(find "$h/$parent" -type d | wc -l)))
    done
    echo "$n"
}

init_pid=""
zombies() {
    ps -eo ppid=,stat= | awk -v a="$$" -v b="${init_pid:-0}" \
        '$2 ~ /^Z/ { h++; if ($1 == a || $1 == b) o++ } END { printf "%d/%d", o, h }'
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
report() { # report PHASE DONE OPS_IN_WINDOW WINDOW_MS
    local peak fds_init="-" rss="-"
    peak=$(sort -n "$rssf" 2>/dev/null | tail -1)
    : > "$rssf"
    if [ -n "$init_pid" ] && [ -d "/proc/$init_pid" ]; then
        fds_init=$(ls "/proc/$init_pid/fd" | wc -l)
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$init_pid/status")
    fi
    local per="-"
    [ "$3" -gt 0 ] && per=$(awk -v w="$4" -v n="$3" 'BEGIN { printf "%.1f", w / n }')
    printf '%-9s %6s  fds %3s/%-3s state %3s  mounts %4s  cgdirs %3s  zombies %5s  initRSS %6s  peakRSS %6s  ms/op %7s\n' \
        "$1" "$2" "$(ls /proc/$$/fd | wc -l)" "$fds_init" "$(ls "$root" 2>/dev/null | wc -l)" \
        "$(wc -l < /proc/self/mountinfo)" "$(cgdirs)" "$(zombies)" \
        "$rss" "${peak:--}" "$per"
}

mkdir -p "$root"
: > "$rssf"
bundle "$work/b-true" x /bin/true
bundle "$work/b-long" long /bin/probe --sleep
echo "soak.sh: $cycles lifecycles, $execs execs, cuddy $cuddy ($("$cuddy" --version | head -1))"

# The long-running container first, so its cgroup parent and init are there
# for the whole run.
cz create --bundle "$work/b-long" "$long" > /dev/null
cz start "$long"
init_pid=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])' < <("$cuddy" --root "$root" state "$long"))

report start 0 0 0
t0=$(now_ms); tw=$t0
for i in $(seq 1 "$cycles"); do
    id="cuddy-soak-$$-$i"
    # Each lifecycle gets its own cgroup below the shared parent.
    sed "s#\"/$parent/x\"#\"/$parent/c$i\"#" "$work/b-true/config.json" > "$work/b-true/c.json"
    cz create --bundle "$work/b-true" --config "$work/b-true/c.json" "$id" > /dev/null
    cz start "$id"
    for _ in $(seq 1 2000); do
        case "$("$cuddy" --root "$root" state "$id")" in *'"stopped"'*) break ;; esac
        sleep 0.005
    done
    cz delete "$id"
    if [ $((i % every)) -eq 0 ] || [ "$i" -eq "$cycles" ]; then
        t=$(now_ms)
        n=$(( i % every == 0 ? every : i % every ))
        report lifecycle "$i" "$n" $((t - tw))
        tw=$t
    fi
done
t1=$(now_ms); tw=$t1
for i in $(seq 1 "$execs"); do
    cz exec "$long" /bin/true
    if [ $((i % every)) -eq 0 ] || [ "$i" -eq "$execs" ]; then
        t=$(now_ms)
        n=$(( i % every == 0 ? every : i % every ))
        report exec "$i" "$n" $((t - tw))
        tw=$t
    fi
done
t2=$(now_ms)
cz kill "$long" KILL
for _ in $(seq 1 2000); do
    case "$("$cuddy" --root "$root" state "$long")" in *'"stopped"'*) break ;; esac
    sleep 0.005
done
cz delete "$long"
init_pid=""
report end "-" 0 0
echo "soak.sh: lifecycles $(( (t1 - t0) / (cycles > 0 ? cycles : 1) )) ms each, execs $(( (t2 - t1) / (execs > 0 ? execs : 1) )) ms each"
left=$(cgdirs)
if [ "$left" != 0 ] || [ -n "$(ls "$root")" ]; then
    echo "soak.sh: LEFT BEHIND: $left cgroup dirs under /$parent, state: $(ls "$root")" >&2
    exit 1
fi
echo "soak.sh: nothing left behind (state root empty, cgroup parent /$parent removed)"
