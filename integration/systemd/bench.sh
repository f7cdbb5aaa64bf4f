#!/bin/bash
# create + start + delete of /bin/true with the systemd cgroup driver versus
# cgroupfs, cuddy, runc and crun side by side, in the systemd tier (run
# there by `integration/systemd/run.sh --bench`): median and mean of N
# rounds (default 20, env BENCH_N), in ms. Needs the busybox fixture
# (rootfs-fixtures/build.sh) and a built cuddy (target/debug or
# CUDDY_BIN).
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${BENCH_N:-20}
CUDDY=${CUDDY_BIN:-$REPO/target/debug/cuddy}
ROOTFS=$REPO/rootfs-fixtures/build/busybox/rootfs
[ -d "$ROOTFS" ] || { echo "bench: no fixture at $ROOTFS" >&2; exit 1; }
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
mkdir "$work/bundle"
(cd "$work/bundle" && "$CUDDY" spec) || exit 1
# /bin/true, no terminal, the fixture; cgroupsPath per round below.
sed -i -e 's|"terminal": true|"terminal": false|' -e 's|"sh"|"true"|' \
    -e "s|\"path\": \"rootfs\"|\"path\": \"$ROOTFS\"|" "$work/bundle/config.json"
grep -q '"true"' "$work/bundle/config.json" || { echo "bench: cannot edit config.json" >&2; exit 1; }
# Debian 12's crun refuses ociVersion 1.3.0; the host's cgroup namespace
# (the tier's remounted v1 hierarchies make cuddy's cgroup mount in a new
# cgroup namespace fail with EBUSY there), the same config for all three.
python3 - "$work/bundle/config.json" <<'PY' || exit 1
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["ociVersion"] = "1.0.2"
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "cgroup"]
json.dump(c, open(p, "w"), indent=1)
PY

one() {  # one RUNTIME DRIVER I: ms of create+start+delete
    local rt=$1 drv=$2 id=bench-$2-$3 flag=() cgp t0 t1
    if [ "$drv" = systemd ]; then
        flag=(--systemd-cgroup); cgp="system.slice:bench:$id"
    else
        cgp="/bench-$id"  # no parent to make and remove each round
    fi
    sed "s|\"linux\": {|\"linux\": {\"cgroupsPath\": \"$cgp\",|" "$work/bundle/config.json" > "$work/b/config.json"
    t0=$(date +%s%N)
    "$rt" --root "$work/root-${rt##*/}" "${flag[@]}" create --bundle "$work/b" "$id" > /dev/null &&
    "$rt" --root "$work/root-${rt##*/}" "${flag[@]}" start "$id" &&
    "$rt" --root "$work/root-${rt##*/}" "${flag[@]}" delete --force "$id" || { echo "bench: $rt $drv failed" >&2; return 1; }
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
}
mkdir "$work/b"
ln -s "$ROOTFS" "$work/b/rootfs"
printf '%-8s %-8s %10s %10s\n' runtime driver median_ms mean_ms
for rt in "$CUDDY" runc crun; do
    command -v "$rt" > /dev/null || continue
    for drv in cgroupfs systemd; do
        one "$rt" "$drv" warm > /dev/null || continue
        for i in $(seq 1 "$N"); do one "$rt" "$drv" "$i" || break; done > "$work/t"
        [ "$(wc -l < "$work/t")" = "$N" ] || continue
        sort -n "$work/t" | awk -v rt="${rt##*/}" -v drv="$drv" '
            { v[NR] = $1; s += $1 }
            END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                  printf "%-8s %-8s %10.1f %10.1f\n", rt, drv, m / 1000, s / NR / 1000 }'
    done
done
