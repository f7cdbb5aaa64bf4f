#!/usr/bin/env bash
# Sandbox start-to-exit (issue 12 item 6), one table from one run. Called by
# `bench.sh --sandbox` (or directly, as root):
#
#   integration/bench/sandbox.sh [-n N] [--at-once K] [-o FILE] [--cuddy PATH]
#                                [--image PATH] [--clients LIST] [--runtimes LIST]
#
#   -n N            runs per row, interleaved, after one untimed warm-up (default 50)
#   --at-once K     size of the "at once" batches (default 50)
#   -o FILE         also write the Markdown table to FILE
#   --cuddy PATH    cuddy binary (default target/release/cuddy; built with
#                   `cargo build --release` when missing)
#   --image PATH    OCI image layout dir or `docker save` tarball for the
#                   image rows (default: an OCI layout made here from the
#                   busybox fixture by integration/containerd/mkimage.py)
#   --clients LIST  podman,docker (default), a part of it, or none
#   --runtimes LIST the clients' runtimes out of runc,cuddy,crun (default runc,cuddy)
#
# Rows (examples/sandbox_bench.rs times them all, fork+exec+wait, each
# round a fresh shuffled order of the rows): `Sandbox::rootfs(..).output()` and
# `Sandbox::image(..).output()` (library), `cuddy sandbox run --rootfs` and
# `--image` (CLI), `cuddy run` of a plain bundle over the same rootfs, and
# `podman run --rm` / `docker run --rm` of the same content (the fixture
# rootfs imported as an image) per runtime, set up by `clients.sh --exec`:
# podman and dockerd with all their state in /tmp/cuddy-bench-clients-*,
# inside a private network + mount namespace, all removed on exit. Then K
# `Sandbox::output()` at once from K threads (from the rootfs, then from the
# image). The image rows use a fresh image cache filled by the warm-up run,
# so they measure a cached image: overlay mount and cleanup included.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
n=50; k=50; outfile=""; cuddy="$repo/target/release/cuddy"; image=""
clients="podman,docker"; runtimes="runc,cuddy"
while [ $# -gt 0 ]; do
    case "$1" in
        -n) n="$2"; shift 2 ;;
        --at-once) k="$2"; shift 2 ;;
        -o) outfile="$2"; shift 2 ;;
        --cuddy) cuddy="$2"; shift 2 ;;
        --image) image="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --runtimes) runtimes="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "sandbox.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ "$n$k" =~ ^[1-9][0-9]*$ && "$k" =~ ^[1-9] ]] || { echo "sandbox.sh: -n and --at-once need positive numbers" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "sandbox.sh: must run as root" >&2; exit 1; }
case "$cuddy" in /*) ;; *) cuddy="$PWD/$cuddy" ;; esac
[ -z "$image" ] || case "$image" in /*) ;; *) image="$PWD/$image" ;; esac

fixture="$(bash "$repo/rootfs-fixtures/build.sh")/rootfs"
[ -x "$cuddy" ] || (cd "$repo" && cargo build --release >&2)
(cd "$repo" && cargo build --release --example sandbox_bench >&2)

work="$(mktemp -d /tmp/cuddy-bench-sbx-XXXXXX)"
trap 'rm -rf "$work"' EXIT
if [ -z "$image" ]; then # one uncompressed layer: the fixture rootfs as a tar
    python3 "$repo/integration/containerd/mkimage.py" "$fixture" "$work/oci.tar" cuddy.bench/busybox:latest
    mkdir "$work/oci"
    tar -C "$work/oci" -xf "$work/oci.tar"
    image="$work/oci"
    image_note="an OCI image layout made from the busybox fixture (one uncompressed layer, integration/containerd/mkimage.py)"
else
    image_note="$image"
fi

load0="$(cut -d' ' -f1-3 /proc/loadavg)"
prog=("$repo/target/release/examples/sandbox_bench" "$cuddy" "$fixture" -n "$n" --at-once "$k" --image "$image")
if [ "$clients" = none ]; then
    "${prog[@]}" >"$work/table"
else
    bash "$here/clients.sh" --cuddy "$cuddy" --clients "$clients" --runtimes "$runtimes" \
        --exec "${prog[@]}" >"$work/table"
fi

ver() { "$@" 2>/dev/null | head -n1 || echo n/a; }
rtver() { if [ "$1" = cuddy ]; then ver "$cuddy" --version; else ver "$(command -v "$1")" --version; fi; }
table="## Sandboxes (issue 12): start-to-exit of /bin/true

- $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) CPUs, load average (1/5/15 min) before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)
- cuddy: $cuddy ($(ver "$cuddy" --version)); image: $image_note
- $( [ "$clients" = none ] && echo "no clients" || echo "clients: $(ver podman --version), $(ver dockerd --version) (state in a private namespace, --network none); runtimes: $(for r in ${runtimes//,/ }; do printf '%s; ' "$(rtver "$r")"; done | sed 's/; $//')")
- every row: a fresh container of /bin/true that is gone afterwards; ms = wall time

$(cat "$work/table")"
echo "$table"
[ -z "$outfile" ] || echo "$table" >"$outfile"
