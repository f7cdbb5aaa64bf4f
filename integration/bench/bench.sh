#!/usr/bin/env bash
# Benchmark cuddy against runc and crun on the same bundle.
#
#   integration/bench/bench.sh [-n N] [-c M] [-o FILE] [--cuddy PATH] [--runtimes LIST] [--skip ROWS]
#
#   -n N            runs per runtime for each single-container row (default 50)
#   -c M            repetitions of the concurrent row (default: min(N, 10))
#   --conc K        containers in the concurrent row (default 20)
#   -o FILE         also write the Markdown table to FILE
#   --cuddy PATH    cuddy binary (default target/release/cuddy; built with
#                   `cargo build --release` when the default is missing)
#   --runtimes LIST comma list out of cuddy,runc,crun (default all three)
#   --clients       instead: `ctr/podman/docker run --rm` of /bin/true with each
#                   runtime behind the client (integration/bench/clients.sh)
#   --sandbox       instead: /bin/true in a fresh sandbox (cuddy::Sandbox and
#                   `cuddy sandbox run`, from the rootfs and from a cached
#                   image) beside `cuddy run` of a plain bundle and
#                   `podman/docker run --rm` of the same image, interleaved,
#                   then 50 sandboxes at once (examples/sandbox_bench.rs, the
#                   clients set up by clients.sh --exec); --image PATH: the
#                   image (default: an OCI layout made from the fixture);
#                   --runtimes: the clients' runtimes (default runc,cuddy);
#                   --sandbox-clients LIST: podman,docker (default) or none
#   --skip ROWS     comma list out of run,seccomp,rss,phases,conc,list,net
#   --list-sizes L  container counts of the list case (default 10,100,500)
#
# Rows (medians and p90; last columns: ratio of the median to crun's):
#   `run` of /bin/true (wall time, stdout /dev/null); the same with podman's
#   default seccomp profile (tests/fixtures/seccomp-podman.json: ~420 names,
#   x86-64 + i386 + x32), and for cuddy also with a cold filter cache (its
#   <root>/.seccomp-cache removed, untimed, before each run); peak RSS of the runtime
#   process for `run` (GNU time %M: max RSS over the runtime and the children it
#   waited for); `create`/`start`/`kill KILL`/`delete` of a /bin/sleep 1000
#   container timed separately (after the kill the script polls `state` until
#   "stopped", untimed); K containers at once: create+start concurrently, then
#   `delete --force` them all concurrently (sub-phases and total).
# The list case (run after the rows above, in this script): for each size in
#   --list-sizes, that many /bin/sleep containers in the "created" state, then
#   medians of `list` (must grow linearly), `state` of one, and create+delete
#   of one more (both must stay flat); all deleted at the end.
# Runtimes are interleaved (cuddy, runc, crun, cuddy, ...). Each runtime gets
# its own --root under /tmp/cuddy-bench-XXXXXX/, container names start with
# cuddy-bench-. Bundle: a copy of rootfs-fixtures' busybox rootfs, read-only
# root, runc-spec-like mounts/maskedPaths/readonlyPaths/capabilities, namespaces
# pid/ipc/uts/mount/network, no `resources` section. A runtime that fails is
# shown as n/a, with its error under the table. A runtime must pass a smoke
# test first (`run` of /bin/echo, whose output must arrive) and `state` must say
# "created"/"running" after create/start (untimed), so a no-op binary can't win.
# The timing loops are in bench.py (fork+exec+pidfd wait, identical for all
# runtimes); this script prepares, installs, and cleans up (trap on EXIT/INT/
# TERM: `delete --force` of everything left in our --root dirs, SIGKILL by PID
# of any container process that survives, rmdir of leftover empty
# cuddy-bench-* cgroup dirs, then rm -rf of the work dir). No pkill/killall.
#
# crun and the hybrid cgroup layout
# ---------------------------------
# crun 1.8.1 (Debian 12) detects "hybrid" mode (/sys/fs/cgroup is a tmpfs of v1
# hierarchies and /sys/fs/cgroup/unified is cgroup2) and then refuses to run
# any container when /sys/fs/cgroup/unified/cgroup.controllers is non-empty:
#     cgroups in hybrid mode not supported, drop all controllers from cgroupv2
# On this machine that file says "hugetlb" (hugetlb is bound to no v1
# hierarchy, so it shows up in cgroup2). The check is done in
# libcrun_cgroup_enter() before the cgroup manager is consulted, so
# --cgroup-manager=disabled (accepted by this crun) fails the same way.
# Options considered:
#   a) mount a v1 hugetlb hierarchy while the benchmark runs (moves hugetlb out
#      of cgroup2): changes the host's cgroup layout for every other process on
#      this shared machine, and gives runc/cuddy one more hierarchy to manage.
#   b) what this script does: a private mount namespace, held open by one
#      `sleep` process, in which /sys/fs/cgroup/unified is unmounted; only crun
#      is run in it (the harness setns(2)es into it in the forked child right
#      before exec, so no extra process is timed). crun then sees a plain v1
#      ("legacy") layout and uses the same v1 hierarchies as runc/cuddy. The
#      host is not changed at all: nothing mounted or unmounted there. The one
#      difference left: crun puts no container into the cgroup2 hierarchy,
#      runc/cuddy do (one more mkdir + write + rmdir for them).
# The workaround is only set up when crun actually fails with that message,
# and the script prints what it did.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

n=50
conc=20
conc_runs=""
outfile=""
cuddy="target/release/cuddy"
cuddy_default=1
runtimes="cuddy,runc,crun"
skip=""
list_sizes="10,100,500"
usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n="$2"; shift 2 ;;
        -c) conc_runs="$2"; shift 2 ;;
        --conc) conc="$2"; shift 2 ;;
        -o) outfile="$2"; shift 2 ;;
        --cuddy) cuddy="$2"; cuddy_default=0; shift 2 ;;
        --runtimes) runtimes="$2"; runtimes_set=1; shift 2 ;;
        --skip) skip="$2"; shift 2 ;;
        --clients) clients=1; shift ;;
        --sandbox) sandbox=1; shift ;;
        --image) sbx_image="$2"; shift 2 ;;
        --sandbox-clients) sbx_clients="$2"; shift 2 ;;
        --list-sizes) list_sizes="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: -n needs a positive number" >&2; exit 2; }
[ -n "$conc_runs" ] || conc_runs=$(( n < 10 ? n : 10 ))
[ "$(id -u)" = 0 ] || { echo "bench.sh: must run as root" >&2; exit 1; }
case "$cuddy" in /*) ;; *) cuddy="$repo/$cuddy" ;; esac
if [ "${clients:-0}" = 1 ]; then # behind clients (issue 9): a script of its own
    exec bash "$here/clients.sh" -n "$n" --cuddy "$cuddy" --runtimes "$runtimes" ${outfile:+-o "$outfile"}
fi
[ -z "$outfile" ] || case "$outfile" in /*) ;; *) outfile="$PWD/$outfile" ;; esac
if [ "${sandbox:-0}" = 1 ]; then # sandboxes (issue 12): a Rust program of its own
    exec bash "$here/sandbox.sh" -n "$n" --cuddy "$cuddy" ${sbx_image:+--image "$sbx_image"} \
        --clients "${sbx_clients:-podman,docker}" ${runtimes_set:+--runtimes "$runtimes"} ${outfile:+-o "$outfile"}
fi

say() { echo "bench.sh: $*" >&2; }

# ---------------------------------------------------------------- packages
missing=()
command -v runc >/dev/null || missing+=(runc)
command -v crun >/dev/null || missing+=(crun)
[ -x /usr/bin/time ] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
command -v unshare >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

# ---------------------------------------------------------------- work dir + cleanup
work="$(mktemp -d /tmp/cuddy-bench-XXXXXX)"
holder_pid=""
py_pid=""
declare -A rt_bin=() rt_ns=() rt_err=()

rt_cmd() { # rt_cmd NAME ARGS... : run runtime NAME with its --root (and namespace)
    local rt="$1"; shift
    if [ -n "${rt_ns[$rt]:-}" ]; then
        nsenter --mount="${rt_ns[$rt]}" -- "${rt_bin[$rt]}" --root "$work/root-$rt" "$@"
    else
        "${rt_bin[$rt]}" --root "$work/root-$rt" "$@"
    fi
}

cleanup() {
    local rc=$? rt id pid ids
    trap - EXIT INT TERM
    set +e
    if [ -n "$py_pid" ] && kill -0 "$py_pid" 2>/dev/null; then
        kill -TERM "$py_pid" 2>/dev/null
        wait "$py_pid" 2>/dev/null
    fi
    for rt in "${!rt_bin[@]}"; do
        [ -d "$work/root-$rt" ] || continue
        ids="$( { rt_cmd "$rt" list -q 2>/dev/null; ls -1 "$work/root-$rt" 2>/dev/null; } \
                | grep '^cuddy-bench-' | sort -u)"
        for id in $ids; do
            rt_cmd "$rt" delete --force "$id" >/dev/null 2>&1
            if rt_cmd "$rt" state "$id" >/dev/null 2>&1; then
                pid="$(rt_cmd "$rt" state "$id" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("pid") or "")' 2>/dev/null)"
                if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ]; then
                    say "cleanup: $rt container $id survived delete --force; SIGKILL pid $pid"
                    kill -KILL "$pid" 2>/dev/null
                    sleep 0.1
                fi
                rt_cmd "$rt" delete --force "$id" >/dev/null 2>&1
            fi
        done
    done
    # Empty cgroup directories a failed runtime may have left behind (ours only).
    find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -depth -type d -name 'cuddy-bench-*' \
        -exec rmdir {} \; 2>/dev/null
    if [ -n "$holder_pid" ]; then
        kill -TERM "$holder_pid" 2>/dev/null
        wait "$holder_pid" 2>/dev/null
        say "cleanup: ended the crun mount-namespace holder (pid $holder_pid)"
    fi
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- runtimes
IFS=, read -r -a rts <<<"$runtimes"
for rt in "${rts[@]}"; do
    case "$rt" in
        cuddy)
            rt_bin[cuddy]="$cuddy"
            if [ ! -x "$cuddy" ] && [ $cuddy_default -eq 1 ]; then
                say "$cuddy missing: cargo build --release in $repo"
                if ! (cd "$repo" && cargo build --release >&2 2>"$work/cargo.log"); then
                    tail -n 20 "$work/cargo.log" >&2
                    rt_err[cuddy]="cargo build --release failed: $(grep -m1 '^error' "$work/cargo.log" || tail -n1 "$work/cargo.log")"
                fi
            fi
            if [ -z "${rt_err[cuddy]:-}" ] && [ ! -x "$cuddy" ]; then
                rt_err[cuddy]="no executable at $cuddy"
            fi
            ;;
        runc|crun) rt_bin[$rt]="$(command -v "$rt")" ;;
        *) echo "bench.sh: unknown runtime $rt" >&2; exit 2 ;;
    esac
    mkdir -p "$work/root-$rt"
done

# ---------------------------------------------------------------- bundles
fixture="$(bash "$repo/rootfs-fixtures/build.sh")" || { echo "bench.sh: fixture build failed" >&2; exit 1; }
mk_bundle() { # mk_bundle DIR ARGS_JSON [SECCOMP_JSON_FILE]
    mkdir -p "$1"
    cp -a "$fixture/rootfs" "$1/rootfs"
    python3 - "$1/config.json" "$2" "${3:-}" <<'EOF'
import json, sys
caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
cfg = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": json.loads(sys.argv[2]),
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "cuddy-bench",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}
if sys.argv[3]:
    with open(sys.argv[3]) as f:
        cfg["linux"]["seccomp"] = json.load(f)
with open(sys.argv[1], "w") as f:
    json.dump(cfg, f, indent=2)
EOF
}
mk_bundle "$work/bundle-true" '["/bin/true"]'
mk_bundle "$work/bundle-sleep" '["/bin/sleep", "1000"]'
mk_bundle "$work/bundle-echo" '["/bin/echo", "cuddy-bench-ok"]'
mk_bundle "$work/bundle-true-seccomp" '["/bin/true"]' "$repo/tests/fixtures/seccomp-podman.json"

# ---------------------------------------------------------------- crun workaround
crun_note=""
if [ -n "${rt_bin[crun]:-}" ]; then
    if ! "${rt_bin[crun]}" --root "$work/root-crun" run --bundle "$work/bundle-true" cuddy-bench-crun-probe \
            >/dev/null 2>"$work/crun-probe.err"; then
        crun_msg="$(tail -n1 "$work/crun-probe.err")"
        if grep -q 'hybrid mode not supported' "$work/crun-probe.err"; then
            say "crun says: $crun_msg"
            say "-> starting a private mount namespace (unshare -m --propagation private) in which"
            say "   /sys/fs/cgroup/unified is unmounted; crun alone is run inside it. The host is not changed."
            unshare --mount --propagation private -- /bin/sh -c \
                'umount /sys/fs/cgroup/unified && echo ready >"$1" && exec sleep 86400' sh "$work/holder.ready" \
                </dev/null >/dev/null 2>"$work/holder.err" &
            holder_pid=$!
            for _ in $(seq 100); do
                [ -s "$work/holder.ready" ] || ! kill -0 "$holder_pid" 2>/dev/null && break
                sleep 0.1
            done
            if [ -s "$work/holder.ready" ] && kill -0 "$holder_pid" 2>/dev/null; then
                rt_ns[crun]="/proc/$holder_pid/ns/mnt"
                say "   namespace holder pid $holder_pid (ended on exit)"
                crun_note="crun ran in a private mount namespace without /sys/fs/cgroup/unified (host unchanged): on this hybrid host crun otherwise fails with \"$crun_msg\"."
            else
                rt_err[crun]="$crun_msg (and the mount-namespace workaround failed: $(cat "$work/holder.err"))"
            fi
        else
            rt_err[crun]="$crun_msg"
        fi
    fi
fi

# ---------------------------------------------------------------- run
ver() { local v; v="$("$1" --version 2>/dev/null | head -n1)" || true; echo "${v:-no --version output}"; }
header="## cuddy vs runc vs crun

- $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) CPUs, cgroup: $(
    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then echo v2;
    elif [ -d /sys/fs/cgroup/unified ] && [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then echo "hybrid (v1 + cgroup2 at /sys/fs/cgroup/unified)";
    else echo v1; fi)
- runs: $n per runtime and row (interleaved), concurrent row: $conc containers x $conc_runs
- ms = wall time; RSS in KiB; ratio = median / crun median"
for rt in "${rts[@]}"; do
    header+="
- $rt: ${rt_bin[$rt]} ($( [ -x "${rt_bin[$rt]}" ] && ver "${rt_bin[$rt]}" || echo missing))"
done
[ -z "$crun_note" ] || header+="
- $crun_note"

args=()
for rt in "${rts[@]}"; do
    args+=(--rt "$rt=${rt_bin[$rt]}"$'\x1f'"$work/root-$rt"$'\x1f'"${rt_ns[$rt]:-}"$'\x1f'"${rt_err[$rt]:-}")
done
# In the background + wait, so that a signal to this script runs the cleanup at once.
python3 "$here/bench.py" "${args[@]}" \
    --bundle-true "$work/bundle-true" --bundle-true-seccomp "$work/bundle-true-seccomp" --bundle-sleep "$work/bundle-sleep" --bundle-echo "$work/bundle-echo" --workdir "$work" \
    -n "$n" --conc "$conc" --conc-runs "$conc_runs" --skip "$skip" --header "$header" \
    ${outfile:+-o "$outfile"} &
py_pid=$!
wait "$py_pid"

# ---------------------------------------------------------------- list case
list_case() { # list_case RUNTIME: prints one Markdown row per size
    local rt="$1" pre=()
    [ -z "${rt_ns[$rt]:-}" ] || pre=(nsenter --mount="${rt_ns[$rt]}" --)
    python3 - "$rt" "$list_sizes" "$n" "$work/bundle-sleep" "${pre[@]}" "${rt_bin[$rt]}" --root "$work/root-$rt" <<'EOF'
import json, statistics, subprocess, sys, tempfile, time
rt, sizes, reps, bundle, cmd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
reps = max(5, min(reps, 20))
def run(*a):
    # Files, not pipes: a created container keeps the runtime's stdio open,
    # and a pipe would never see EOF.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.run(cmd + list(a), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        out.seek(0); err.seek(0)
        if p.returncode != 0:
            raise SystemExit(f"{rt} {' '.join(a)}: {err.read().decode().strip()}")
        return out.read()
def timed(*a):
    t = time.perf_counter(); run(*a); return (time.perf_counter() - t) * 1000
made = []
try:
    for size in (int(x) for x in sizes.split(",") if x):
        while len(made) < size:
            cid = f"cuddy-bench-list-{len(made)}"
            run("create", "--bundle", bundle, cid); made.append(cid)
        ls = json.loads(run("list", "--format", "json") or b"[]") or []
        assert len(ls) == size and all(c["status"] == "created" for c in ls), ls[:3]
        l = statistics.median(timed("list", "--format", "json") for _ in range(reps))
        s = statistics.median(timed("state", made[0]) for _ in range(reps))
        cd = []
        for i in range(reps):
            cid = f"cuddy-bench-list-x{i}"
            t = time.perf_counter(); run("create", "--bundle", bundle, cid); run("delete", "--force", cid)
            cd.append((time.perf_counter() - t) * 1000)
        print(f"| {rt} | {size} | {l:.1f} | {l / size * 1000:.0f} | {s:.1f} | {statistics.median(cd):.1f} |")
        sys.stdout.flush()
finally:
    for cid in made:
        subprocess.run(cmd + ["delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
EOF
}
if [[ ",$skip," != *",list,"* ]]; then
    table="
### list at N containers (all \"created\"; medians of $(( n < 5 ? 5 : (n > 20 ? 20 : n) )) runs)

| runtime | containers | list ms | list µs/container | state ms | create+delete ms |
|---|---|---|---|---|---|"
    for rt in "${rts[@]}"; do
        [ -z "${rt_err[$rt]:-}" ] || continue
        if rows="$(list_case "$rt")"; then
            table+=$'\n'"$rows"
        else
            table+=$'\n'"| $rt | n/a | | | | |"
        fi
    done
    echo "$table"
    [ -z "$outfile" ] || echo "$table" >> "$outfile"
fi

# ---------------------------------------------------------------- networking
# The networking case (issue 10): self-contained in bench-net.sh (its own
# network namespace, bundle and cleanup); `--skip net` leaves it out.
if [[ ",$skip," != *",net,"* ]]; then
    bash "$here/bench-net.sh" -n "$n" --cuddy "$cuddy" -o "$work/net.md" || say "networking case failed"
    [ -z "$outfile" ] || [ ! -s "$work/net.md" ] || { echo; cat "$work/net.md"; } >>"$outfile"
fi
