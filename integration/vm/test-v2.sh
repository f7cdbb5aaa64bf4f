#!/bin/bash
# The cgroup v2 tier: cuddy's root integration tests inside a QEMU guest that
# has only cgroup v2 (see README.md in this directory).
#
#   integration/vm/test-v2.sh [TEST FILTER...]
#
# Builds the test binary on the host (cargo test --test root --no-run), then
# lets cargo run it in the guest through run.sh as the target runner, and
# prints the test harness's output (its "test result:" summary line included).
# With no filter, the whole root suite runs. Exit status: the test binary's.
#
# Works on a fresh machine: setup.sh installs qemu and busybox and fetches the
# guest kernel; rootfs-fixtures/build.sh builds the busybox fixture (on the
# host: 9p and TCG make it slow in the guest).
#
# Then the systemd tier (integration/systemd/run.sh: systemd booted in
# namespaces, the systemd cgroup driver's tests and podman
# --cgroup-manager systemd) in a second guest, so the driver is tested on
# cgroup v2 too; its "test result:" lines follow the suite's.
#
# Environment: VM_TIMEOUT (seconds for the guest, default 3600), VM_CPUS,
# VM_MEM, VM_ACCEL as for run.sh; CUDDY_V2_TEST_THREADS (default 2);
# CUDDY_V2_SYSTEMD: 1 (default) both, 0 no systemd tier, only: the systemd
# tier alone (no root suite).
set -uo pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
cd "$REPO"

die() { echo "test-v2: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the guest runs the root integration tests)"

start=$(date +%s)
"$VM_DIR/setup.sh" || die "integration/vm/setup.sh failed"
bash rootfs-fixtures/build.sh > /dev/null || die "rootfs-fixtures/build.sh failed"
echo "test-v2: building the root test binary on the host" >&2
cargo test --test root --no-run --quiet || die "cargo test --no-run failed"
sd=${CUDDY_V2_SYSTEMD:-1}
if [ "$sd" != 0 ]; then
    cargo test --lib --no-run --quiet || die "cargo test --lib --no-run failed"
    cargo build --quiet || die "cargo build failed"
fi
# examples/sandbox (the library test runs it)
cargo build --examples --quiet || die "cargo build --examples failed"
built=$(date +%s)

# cargo runs target/.../root-HASH through the runner: one guest, all tests.
# The OCI spec's schemas (../shared beside the checkout, else /work/shared,
# where tests/root/schema.rs looks next) are shared too, for the schema tests.
share=()
if [ -d "$REPO/../shared" ]; then
    share=(--share "$(cd "$REPO/../shared" && pwd)")
elif [ -d /work/shared ]; then
    share=(--share /work/shared)
fi
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$VM_DIR/run.sh --timeout ${VM_TIMEOUT:-3600} ${share[*]} --"
rc=0
if [ "$sd" != only ]; then
    echo "test-v2: running the root integration tests in the cgroup v2 guest" >&2
    cargo test --test root --quiet -- --test-threads "${CUDDY_V2_TEST_THREADS:-2}" "$@"
    rc=$?
fi
suite=$(date +%s)
if [ "$sd" != 0 ]; then
    # The test binaries cargo just built (the guest has no cargo).
    exe() { bash integration/test-exe.sh "$@"; }  # the test binary's path
    echo "test-v2: running the systemd tier in the cgroup v2 guest" >&2
    CUDDY_SYSTEMD_TIER_LIB=$(exe --lib) CUDDY_SYSTEMD_TIER_ROOT=$(exe --test root) \
        "$VM_DIR/run.sh" --timeout "${VM_SYSTEMD_TIMEOUT:-600}" -- bash integration/systemd/run.sh ||
        rc=1
fi
end=$(date +%s)
echo "test-v2: build $((built - start))s, guest run $((suite - built))s, systemd tier $((end - suite))s, exit $rc" >&2
exit "$rc"
