#!/usr/bin/env bash
# Fuzz cuddy's parsers with cargo-fuzz (fuzz/, docs/reliability.md "Fuzzing").
#
#   bash integration/fuzz/fuzz.sh [-t SECONDS] [TARGET...]
#
# Runs each target (default: all of fuzz/Cargo.toml's) for SECONDS (default
# 60) on the stable toolchain (`cargo fuzz build -s none`: coverage
# instrumentation without a sanitizer; Rust's own checks find panics,
# overflows and hangs). Inputs found are kept in fuzz/corpus-run/TARGET
# (ignored by git); the seeds in fuzz/corpus/TARGET are only read. A crash
# or hang leaves its input in fuzz/artifacts/TARGET/ and fails the run.
# Installs cargo-fuzz with `cargo install --locked` when it is missing.
#
# Prints a line per target (execs, coverage, features, crashes) and a last
# line in cargo test's format, so integration/test.sh counts targets run as
# passed or failed, and a run that cannot happen (no cargo-fuzz, no C++
# compiler for libFuzzer) as skipped, with the reason.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

secs=60
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t) secs="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] ||
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^cuddy-fuzz$')

skip() {
    echo "fuzz: SKIPPED: $*"
    echo "test result: ok. 0 passed; 0 failed; ${#targets[@]} ignored (fuzz targets)"
    exit 0
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || skip "cargo-fuzz is not installed and cargo install failed"
fi
command -v c++ >/dev/null || skip "no C++ compiler (libFuzzer is built from C++; apt-get install g++)"
cargo fuzz build -s none >/tmp/cuddy-fuzz-build.log 2>&1 ||
    { tail -20 /tmp/cuddy-fuzz-build.log; echo "test result: FAILED. 0 passed; ${#targets[@]} failed; 0 ignored (fuzz build)"; exit 1; }

passed=0; failed=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-run/$t" "fuzz/corpus/$t" "fuzz/artifacts/$t"
    out=$(mktemp)
    start=$(date +%s)
    cargo fuzz run -s none "$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$out" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$out" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$out" | tail -1 | cut -d' ' -f2)
    if [ $rc = 0 ]; then
        passed=$((passed + 1)); verdict=ok
    else
        failed=$((failed + 1)); verdict="FAILED (exit $rc)"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written|timeout' "$out" | head -10
    fi
    echo "fuzz: $t: $verdict, ${execs:-?} execs in ${took}s, cov ${cov:-?}, ft ${ft:-?}, corpus $(ls "fuzz/corpus-run/$t" | wc -l)+$(ls "fuzz/corpus/$t" | wc -l)"
    rm -f "$out"
done
echo "test result: $([ $failed = 0 ] && echo ok || echo FAILED). $passed passed; $failed failed; 0 ignored (fuzz targets, ${secs}s each)"
[ $failed = 0 ]
