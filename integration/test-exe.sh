#!/bin/bash
# test-exe.sh CARGO-TEST-ARGS...: print the path of the test binary that
# `cargo test CARGO-TEST-ARGS --no-run` builds (e.g. `--lib`, `--test root`).
#
# Cargo's JSON marks a *test harness* build with "test":true in "profile";
# the "target" object also says "test":true for every testable target,
# the cuddy binary included (built as the integration tests' dependency),
# so matching "test":true anywhere picks whichever artifact came last: on a
# fresh clone that was target/debug/cuddy (CI, stop 15).
set -o pipefail
cargo test "$@" --no-run --message-format=json 2>/dev/null |
    grep -E '"profile":\{[^}]*"test":true\}' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1
