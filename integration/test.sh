#!/usr/bin/env bash
# The whole test suite, as CI and a newcomer run it (README.md, .ci/run):
#
#   bash integration/test.sh
#
# 1. installs what the tests need from Debian (busybox-static, gcc for the
#    probe, python3-jsonschema for the schema tests, nftables for the
#    published-port tests, containerd for the orchestrator test, protoc for
#    the CRI test driver, qemu for the cgroup v2 tier) when missing;
# 2. builds the busybox fixture and the probe (rootfs-fixtures/build.sh);
# 3. cargo fmt --check and cargo clippy -D warnings (cuddy, and the CRI test
#    driver integration/cri/client, built into target/cri-client);
# 4. cargo test: unit tests and the root integration tests (real containers
#    on this host's cgroups, v1 or v2);
# 5. the fuzz targets, 25 s each (integration/fuzz/fuzz.sh; installs
#    cargo-fuzz when missing; CUDDY_SKIP_FUZZ=1 skips);
# 5b. the systemd tier: systemd booted as PID 1 of its own namespaces and
#    cgroup, running the systemd driver's tests (integration/systemd/run.sh);
# 6. the cgroup v2 tier: the root integration tests again inside a QEMU guest
#    that has only cgroup v2 (integration/vm/test-v2.sh), when present;
# 7. prints one summary line with the totals.
#
# Must run as root (the integration tests create namespaces, mounts and
# cgroups). Set CUDDY_SKIP_V2=1 to skip step 6 locally.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "test.sh: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root: the integration tests create namespaces, mounts and cgroups"
command -v cargo >/dev/null || die "cargo not found: install Rust >= 1.85 (https://rustup.rs), then run this again"

need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
# The schema tests validate cuddy's JSON with Debian's jsonschema.
/usr/bin/python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)
# seccomp: the libseccomp crate links libseccomp (found with pkg-config).
dpkg-query -W -f='${Status}' libseccomp-dev 2>/dev/null | grep -q 'ok installed' || need+=(libseccomp-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
# The crash-injection tier (tests/root/crash.rs) kills cuddy with strace -e inject.
command -v strace >/dev/null || need+=(strace)
# setcap (file capabilities in the escape tests).
command -v setcap >/dev/null || [ -x /usr/sbin/setcap ] || need+=(libcap2-bin)
# Published ports and bridge masquerade: the nft tool (network tests).
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need+=(nftables)
# A real orchestrator: containerd (with ctr and its runc shim v2).
command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null || need+=(containerd)
# Behind podman and Docker (tests/root/podman.rs, docker.rs): Debian's podman
# 4.3 (conmon, CNI plugins) and docker.io 20.10 (dockerd, docker-init);
# apparmor for apparmor_parser: where the kernel has AppArmor (the v2 tier's
# Debian guest kernel) dockerd and podman load their default profile with it
# and refuse to run containers without it.
# The systemd tier (integration/systemd/run.sh): systemd and dbus-daemon.
for p in podman conmon containernetworking-plugins docker.io apparmor systemd dbus; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
done
# The CRI suite's driver (integration/cri/client): the k8s-cri crate's build
# script compiles the CRI protos with protoc.
command -v protoc >/dev/null || need+=(protobuf-compiler)
# CNI mode (network_cni tests): the iptables the CNI plugins run.
command -v iptables-save >/dev/null || need+=(iptables)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need[@]}" ||
        { apt-get update && apt-get install -y --no-install-recommends "${need[@]}"; } ||
        die "apt-get install ${need[*]} failed"
fi

bash rootfs-fixtures/build.sh >/dev/null || die "building the busybox fixture failed"

log=$(mktemp -d /tmp/cuddy-test-log.XXXXXX)
trap 'rm -rf "$log"' EXIT
fail=0

echo "== cargo fmt --check"
cargo fmt --check || { echo "cargo fmt --check: FAILED"; fail=1; }
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings || { echo "cargo clippy: FAILED"; fail=1; }

# The CRI test driver is its own crate (tonic/tokio stay out of cuddy) with
# its own target dir; tests/root/cri.rs runs it (and the v2 guest reuses it).
echo "== integration/cri/client (CRI test driver): fmt --check, clippy, build"
cri=(--manifest-path integration/cri/client/Cargo.toml)
cri_target="${CARGO_TARGET_DIR:-$PWD/target}/cri-client"
{ cargo fmt "${cri[@]}" --check &&
  CARGO_TARGET_DIR="$cri_target" cargo clippy "${cri[@]}" --all-targets --quiet -- -D warnings &&
  CARGO_TARGET_DIR="$cri_target" cargo build "${cri[@]}" --quiet; } || { echo "integration/cri/client: FAILED"; fail=1; }

echo "== integration/seccomp converter tests (Docker's profile -> tests/fixtures)"
python3 integration/seccomp/test_docker_profile.py 2>&1 | tail -3
[ "${PIPESTATUS[0]}" = 0 ] || { echo "docker_profile tests: FAILED"; fail=1; }

echo "== cargo test (unit + root integration, this host's cgroups)"
cargo test --no-fail-fast 2>&1 | tee "$log/host.txt"
[ "${PIPESTATUS[0]}" = 0 ] || fail=1

if [ "${CUDDY_SKIP_FUZZ:-0}" != 1 ]; then
    echo "== fuzz targets, ${CUDDY_FUZZ_SECONDS:-25}s each (integration/fuzz/fuzz.sh)"
    bash integration/fuzz/fuzz.sh -t "${CUDDY_FUZZ_SECONDS:-25}" 2>&1 | tee "$log/fuzz.txt"
    [ "${PIPESTATUS[0]}" = 0 ] || fail=1
fi

echo "== systemd tier (systemd as PID 1 of its own namespaces: the systemd cgroup driver's tests)"
bash integration/systemd/run.sh 2>&1 | tee "$log/systemd.txt"
[ "${PIPESTATUS[0]}" = 0 ] || fail=1

if [ -x integration/vm/test-v2.sh ] && [ "${CUDDY_SKIP_V2:-0}" != 1 ]; then
    echo "== cgroup v2 tier (QEMU guest with only cgroup v2)"
    bash integration/vm/test-v2.sh 2>&1 | tee "$log/v2.txt"
    [ "${PIPESTATUS[0]}" = 0 ] || fail=1
fi

# Totals over every "test result:" line that cargo's test harness printed.
passed=0; failed=0; ignored=0
for f in "$log"/*.txt; do
    while read -r p fl ig; do
        passed=$((passed + p)); failed=$((failed + fl)); ignored=$((ignored + ig))
    done < <(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$f")
done
[ "$fail" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo
echo "summary: $passed passed, $failed failed, $ignored skipped"
[ "$fail" = 0 ] && [ "$failed" = 0 ]
