#!/usr/bin/env bash
# Speed behind clients (issue 9): `ctr run --rm`, `podman run --rm` and
# `docker run --rm` of /bin/true with cuddy, runc and crun as the OCI runtime,
# side by side in one run. Called by `bench.sh --clients` (or directly):
#
#   integration/bench/clients.sh [-n N] [-o FILE] [--cuddy PATH] [--runtimes LIST] [--clients LIST]
#                                [--exec PROG ARGS...]
#
#   -n N             runs per client and runtime (default 20), interleaved
#                    (cuddy, runc, crun, cuddy, ...) after one untimed warm-up
#   -o FILE          also write the Markdown table to FILE
#   --cuddy PATH     cuddy binary (default target/release/cuddy)
#   --runtimes LIST  comma list out of cuddy,runc,crun (default all three)
#   --clients LIST   comma list out of ctr,podman,docker (default all three)
#   --exec PROG ...  (last) set the clients up, then run PROG ARGS... with one
#                    `--case JSON` per client and runtime appended, JSON =
#                    {"name": "`podman run --rm` (runc)", "argv": [...]} (one
#                    run; "{i}" in argv to be replaced by a run number), and
#                    no timing here: PROG times them (`bench.sh --sandbox`)
#
# Each client runs with all its state in /tmp/cuddy-bench-clients-XXXXXX:
# containerd (private config/socket/root, overlayfs snapshotter, the runc
# shim v2 with `ctr run --runc-binary <runtime>`), podman (--root/--runroot/
# --tmpdir, --runtime <runtime>, cgroupfs, file events), dockerd (--data-root,
# --exec-root, -H unix://…, --add-runtime per runtime, --bridge=none
# --iptables=false). Every container: --network none (ctr: a new empty netns),
# the busybox fixture imported as the image, --rm. The daemons and podman run
# inside a network + mount namespace held by a `sleep` (unshare -n -m
# --propagation private, tmpfs over /run), so nothing reaches the host.
#
# crun 1.8.1 refuses a hybrid cgroup host ("cgroups in hybrid mode not
# supported", see bench.sh); on such a host crun gets a second namespace
# holder with a tmpfs over /sys/fs/cgroup/unified (its own containerd and
# dockerd inside), the others run with the host's layout. Timed: the client
# command's wall time (fork to exit, `date +%s%N`), so it includes the
# client's own work, the daemon, the shim/conmon and the runtime.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
n=20; outfile=""; cuddy="$repo/target/release/cuddy"
runtimes="cuddy,runc,crun"; clients="ctr,podman,docker"; exec_cmd=()
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n="$2"; shift 2 ;;
        -o) outfile="$2"; shift 2 ;;
        --cuddy) cuddy="$2"; shift 2 ;;
        --runtimes) runtimes="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --exec) shift; exec_cmd=("$@"); break ;;
        -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "clients.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "clients.sh: must run as root" >&2; exit 1; }
case "$cuddy" in /*) ;; *) cuddy="$PWD/$cuddy" ;; esac
[ -x "$cuddy" ] || { echo "clients.sh: no cuddy at $cuddy (cargo build --release)" >&2; exit 1; }
say() { echo "clients.sh: $*" >&2; }

work="$(mktemp -d /tmp/cuddy-bench-clients-XXXXXX)"
declare -A holder=() rtbin=([cuddy]="$cuddy" [runc]="$(command -v runc || true)" [crun]="$(command -v crun || true)")
declare -A ctrd=() dockerd=()
cg="cuddy-bench-clients-$$"

cleanup() {
    local rc=$? h p
    trap - EXIT INT TERM
    set +e
    for h in "${!dockerd[@]}"; do
        for p in $(dk "$h" ps -aq 2>/dev/null); do dk "$h" rm -f "$p" >/dev/null 2>&1; done
        kill -TERM "${dockerd[$h]}" 2>/dev/null; timeout 30 tail --pid="${dockerd[$h]}" -f /dev/null
    done
    for h in "${!ctrd[@]}"; do
        kill -TERM "${ctrd[$h]}" 2>/dev/null; timeout 30 tail --pid="${ctrd[$h]}" -f /dev/null
    done
    for h in "${!holder[@]}"; do
        [ -d "$work/$h/proot" ] && pm "$h" "$cuddy" rm -a -f >/dev/null 2>&1
        # Whatever is left in the holder's namespaces is ended by PID.
        local mnt; mnt=$(readlink "/proc/${holder[$h]}/ns/mnt")
        for p in /proc/[0-9]*; do
            p=${p#/proc/}
            [ "$p" != "${holder[$h]}" ] && [ "$(readlink "/proc/$p/ns/mnt" 2>/dev/null)" = "$mnt" ] && kill -KILL "$p" 2>/dev/null
        done
        kill -KILL "${holder[$h]}" 2>/dev/null; wait "${holder[$h]}" 2>/dev/null
    done
    find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -depth -type d -path "*/$cg*" -exec rmdir {} \; 2>/dev/null
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- namespaces
hybrid=0
[ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] && hybrid=1
start_holder() { # start_holder NAME EXTRA_SETUP
    mkdir -p "$work/$1"
    unshare -n -m --propagation private sh -c \
        "ip link set lo up && mount -t tmpfs tmpfs /run && $2 : > $work/$1/ready && exec sleep infinity" \
        </dev/null >/dev/null 2>"$work/$1/holder.err" &
    holder[$1]=$!
    for _ in $(seq 100); do [ -e "$work/$1/ready" ] && return 0; sleep 0.1; done
    say "namespace holder $1 failed: $(cat "$work/$1/holder.err")"; return 1
}
in_ns() { local h=$1; shift; nsenter -t "${holder[$h]}" -m -n -- "$@"; }
hold_of() { if [ "$1" = crun ] && [ $hybrid = 1 ]; then echo crunns; else echo main; fi; }

IFS=, read -r -a rts <<<"$runtimes"
IFS=, read -r -a cls <<<"$clients"
start_holder main ""
for rt in "${rts[@]}"; do
    [ -n "${rtbin[$rt]:-}" ] || { say "no $rt binary"; exit 1; }
    if [ "$rt" = crun ] && [ $hybrid = 1 ]; then
        say "hybrid cgroup host: crun's client stack runs with a tmpfs over /sys/fs/cgroup/unified (private mount namespace)"
        start_holder crunns "mount -t tmpfs tmpfs /sys/fs/cgroup/unified &&"
    fi
done
fixture="$(bash "$repo/rootfs-fixtures/build.sh")/rootfs"
tar -C "$fixture" -cf "$work/busybox.tar" .
python3 "$repo/integration/containerd/mkimage.py" "$fixture" "$work/oci.tar" cuddy.bench/busybox:latest

# ---------------------------------------------------------------- clients
# ctr makes its fifos under /run/containerd/fifo: it runs in the holder too.
ctr_() { local h=$1; shift; in_ns "$h" ctr -a "$work/$h/ctrd/ctrd.sock" -n cuddy-bench "$@"; }
start_ctrd() {
    local h=$1 d="$work/$1/ctrd"; mkdir -p "$d"
    printf '%s\n' 'version = 2' "root = \"$d/root\"" "state = \"$d/state\"" \
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' "  address = \"$d/ctrd.sock\"" \
        '[ttrpc]' "  address = \"$d/ctrd.ttrpc.sock\"" '[debug]' '  address = ""' '[metrics]' '  address = ""' \
        > "$d/config.toml"
    # nsenter execs (no fork for -m -n): $! is containerd's PID.
    nsenter -t "${holder[$h]}" -m -n -- containerd --config "$d/config.toml" </dev/null >"$d/log" 2>&1 &
    ctrd[$h]=$!
    for _ in $(seq 100); do ctr_ "$h" version >/dev/null 2>&1 && break; sleep 0.2; done
    ctr_ "$h" image import "$work/oci.tar" >/dev/null
}
pm() { local h=$1 rt=$2; shift 2
    in_ns "$h" podman --root "$work/$h/proot" --runroot "$work/$h/prun" --tmpdir "$work/$h/ptmp" \
        --runtime "$rt" --cgroup-manager cgroupfs --events-backend file "$@"; }
dk() { local h=$1; shift; DOCKER_CONFIG="$work/$h/dcfg" /usr/bin/docker -H "unix://$work/$h/docker.sock" "$@"; }
start_dockerd() {
    local h=$1 d="$work/$1"; echo '{}' > "$d/daemon.json"
    nsenter -t "${holder[$h]}" -m -n -- dockerd --data-root "$d/ddata" --exec-root "$d/dexec" -H "unix://$d/docker.sock" \
        --pidfile "$d/docker.pid" --config-file "$d/daemon.json" --bridge=none --iptables=false \
        --ip6tables=false --add-runtime "cuddy=$cuddy" --add-runtime "crun=${rtbin[crun]:-/usr/bin/crun}" \
        --default-ulimit nofile=1024:1024 --cgroup-parent "/$cg" </dev/null >"$d/dockerd.log" 2>&1 &
    dockerd[$h]=$!
    for _ in $(seq 120); do dk "$h" version >/dev/null 2>&1 && break; sleep 0.5; done
    dk "$h" import "$work/busybox.tar" busybox:bench >/dev/null
}
holders=(main); [ -n "${holder[crunns]:-}" ] && holders+=(crunns)
for h in "${holders[@]}"; do
    for c in "${cls[@]}"; do
        case $c in
            ctr) start_ctrd "$h" ;;
            podman) pm "$h" "$cuddy" import "$work/busybox.tar" localhost/busybox >/dev/null 2>&1 ;;
            docker) start_dockerd "$h" ;;
        esac
    done
done

argv_of() { # argv_of CLIENT RUNTIME : sets A to one `run --rm` of /bin/true ({i}: run number)
    local c=$1 rt=$2 h; h=$(hold_of "$rt")
    case $c in
        ctr) A=(nsenter -t "${holder[$h]}" -m -n -- ctr -a "$work/$h/ctrd/ctrd.sock" -n cuddy-bench
                run --rm --snapshotter overlayfs --runc-binary "${rtbin[$rt]}" --cgroup "/$cg/b-$rt-{i}"
                cuddy.bench/busybox:latest "b-$rt-{i}" /bin/true) ;;
        podman) A=(nsenter -t "${holder[$h]}" -m -n -- podman --root "$work/$h/proot" --runroot "$work/$h/prun"
                --tmpdir "$work/$h/ptmp" --runtime "${rtbin[$rt]}" --cgroup-manager cgroupfs --events-backend file
                run --rm --pull never --network none --ulimit nofile=1024:1024
                --ulimit nproc=1024:1024 --cgroup-parent "/$cg" localhost/busybox /bin/true) ;;
        docker) A=(/usr/bin/docker --config "$work/$h/dcfg" -H "unix://$work/$h/docker.sock"
                run --rm --network none --runtime "$rt" busybox:bench /bin/true) ;;
    esac
}
i=0
once() { argv_of "$1" "$2"; i=$((i + 1)); "${A[@]//\{i\}/$i}"; }
if [ ${#exec_cmd[@]} -gt 0 ]; then # the timing is PROG's (bench.sh --sandbox)
    case_args=()
    for c in "${cls[@]}"; do
        for rt in "${rts[@]}"; do
            argv_of "$c" "$rt"
            case_args+=(--case "$(python3 -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "argv": sys.argv[2:]}))' \
                "\`$c run --rm\` ($rt)" "${A[@]}")")
        done
    done
    # In the background + wait, so that a signal runs the cleanup at once.
    "${exec_cmd[@]}" "${case_args[@]}" &
    wait $!
    exit
fi
declare -A ms=()
for c in "${cls[@]}"; do
    for rt in "${rts[@]}"; do
        if ! once "$c" "$rt" >/dev/null 2>"$work/err"; then
            say "$c with $rt failed: $(tail -n 3 "$work/err")"; ms[$c/$rt]="n/a"
        fi
    done
    for _ in $(seq "$n"); do
        for rt in "${rts[@]}"; do
            [ "${ms[$c/$rt]:-}" = n/a ] && continue
            t0=$(date +%s%N)
            once "$c" "$rt" >/dev/null 2>"$work/err" || { say "$c with $rt failed: $(tail -n 3 "$work/err")"; exit 1; }
            t1=$(date +%s%N)
            ms[$c/$rt]+=" $(( (t1 - t0) / 1000 ))"
        done
    done
done

# ---------------------------------------------------------------- table
med() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) printf "%.1f", a[(NR+1)/2]/1000; else printf "%.1f", (a[NR/2]+a[NR/2+1])/2000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2f", a/b; else print "n/a" }'; }
table="## Behind clients: \`run --rm\` of /bin/true

- $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) CPUs, $n runs per client and runtime (interleaved, after a warm-up)
- clients: $(ctr --version | head -1); podman $(podman --version | awk '{print $3}'); Docker $(dk main version --format '{{.Server.Version}}' 2>/dev/null || echo n/a)
- runtimes: $(for rt in "${rts[@]}"; do printf '%s ' "$rt: $("${rtbin[$rt]}" --version | head -1);"; done)
$( [ $hybrid = 1 ] && echo "- crun's stack ran with /sys/fs/cgroup/unified covered by a tmpfs (crun 1.8.1 refuses this hybrid host otherwise)")
- ms = median wall time of the client command; ratio = cuddy median / other median

| client | $(printf '%s ms | ' "${rts[@]}")cuddy/runc | cuddy/crun |
|---|$(printf -- '---:|%.0s' "${rts[@]}")---:|---:|"
for c in "${cls[@]}"; do
    declare -A m=()
    line="| \`$c run --rm\` |"
    for rt in "${rts[@]}"; do
        if [ "${ms[$c/$rt]:-}" = n/a ]; then m[$rt]=n/a; else m[$rt]=$(echo "${ms[$c/$rt]:-}" | med); fi
        line+=" ${m[$rt]} |"
    done
    line+=" $(ratio "${m[cuddy]:-}" "${m[runc]:-}") | $(ratio "${m[cuddy]:-}" "${m[crun]:-}") |"
    table+="
$line"
done
echo "$table"
[ -z "$outfile" ] || echo "$table" > "$outfile"
