#!/usr/bin/env bash
# The networking case of the benchmark (issue 10, item 8): the added cost of
# `--network bridge` and `--network cni` on `cuddy run` of /bin/true, beside
# the plain run, and runc's plain run beside runc with the same CNI plugins
# driven as podman's CNI backend drives them (bench_net.py says how).
#
#   integration/bench/bench-net.sh [-n N] [-o FILE] [--cuddy PATH]
#
# Everything runs inside a network namespace made here (ip netns add
# cuddy-bench-net-PID), entered with `nsenter --net` (the host's mount
# namespace, so pins under the work dir behave as on a host): the bridge,
# veths and iptables rules the runs make never touch the host's. The CNI
# list is podman's default (87-podman-bridge.conflist: bridge, portmap,
# firewall, tuning) with host-local's dataDir in the work dir. Cleanup (trap
# on EXIT/INT/TERM): delete --force of leftovers inside the namespace,
# SIGKILL by PID of what is still in it, `ip netns del`, rm -rf of the work
# dir. bench.sh runs this after its own rows unless `--skip net`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
n=30
outfile=""
cuddy="$repo/target/release/cuddy"
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n="$2"; shift 2 ;;
        -o) outfile="$2"; shift 2 ;;
        --cuddy) cuddy="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-net.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-net.sh: must run as root" >&2; exit 1; }
say() { echo "bench-net.sh: $*" >&2; }
for p in bridge host-local portmap firewall tuning; do
    [ -x "/usr/lib/cni/$p" ] || { say "needs /usr/lib/cni/$p (apt-get install containernetworking-plugins)"; exit 1; }
done
[ -x "$cuddy" ] || (cd "$repo" && cargo build --release >&2)
[ -z "$outfile" ] || case "$outfile" in /*) ;; *) outfile="$PWD/$outfile" ;; esac

work="$(mktemp -d /tmp/cuddy-bench-net-XXXXXX)"
ns="cuddy-bench-net-$$"
in_ns() { nsenter --net="/run/netns/$ns" -- "$@"; }
cleanup() {
    local rc=$? id pid m
    trap - EXIT INT TERM
    set +e
    for r in "$work"/root-*; do
        [ -d "$r" ] || continue
        for id in $(ls -1 "$r" 2>/dev/null | grep '^cuddy-bench-net-'); do
            case "$r" in
                *root-cuddy) in_ns "$cuddy" --root "$r" delete --force "$id" >/dev/null 2>&1 ;;
                *root-runc) in_ns runc --root "$r" delete --force "$id" >/dev/null 2>&1 ;;
            esac
        done
    done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    # Namespace pins left under the work dir (ours only).
    for m in $(awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo); do
        umount -l "$m" 2>/dev/null
    done
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$ns"
in_ns ip link set lo up
mkdir -p "$work/net.d" "$work/bundle" "$work/root-cuddy" "$work/root-runc"
fixture="$(bash "$repo/rootfs-fixtures/build.sh")"
cp -a "$fixture/rootfs" "$work/bundle/rootfs"
(cd "$work/bundle" && "$cuddy" spec)
python3 - "$work" <<'EOF'
import json, sys
w = sys.argv[1]
p = f"{w}/bundle/config.json"
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"), indent=2)
conf = {
  "cniVersion": "0.4.0", "name": "podman",
  "plugins": [
    {"type": "bridge", "bridge": "cni-podman0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
     "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
              "ranges": [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]],
              "dataDir": f"{w}/cni-data"}},
    {"type": "portmap", "capabilities": {"portMappings": True}},
    {"type": "firewall"},
    {"type": "tuning"},
  ],
}
json.dump(conf, open(f"{w}/net.d/87-podman-bridge.conflist", "w"), indent=2)
EOF
runc_arg=()
command -v runc >/dev/null && runc_arg=(--runc "$(command -v runc)")
say "$n runs per case in network namespace $ns ($("$cuddy" --version | head -n1); runc: $(runc --version 2>/dev/null | head -n1 || echo none))"
in_ns python3 "$here/bench_net.py" --cuddy "$cuddy" "${runc_arg[@]}" --bundle "$work/bundle" \
    --conf-dir "$work/net.d" --workdir "$work" -n "$n" ${outfile:+-o "$outfile"}
