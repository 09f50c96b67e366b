#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (libFuzzer, through libfuzzer-sys) for a
# bounded time each.
#
#   scripts/fuzz.sh                  # every target, FUZZ_SECONDS each (default 60)
#   FUZZ_SECONDS=600 scripts/fuzz.sh request_head chunked
#
# Builds with the stable toolchain, cargo-fuzz not needed: libFuzzer's
# coverage feedback is LLVM's SanitizerCoverage, which stable rustc turns on
# through -C flags (the ones cargo-fuzz passes). What stable cannot add is
# AddressSanitizer; the code under test is safe Rust, which catches its own
# out-of-bounds accesses, and debug assertions and overflow checks are on.
# (libFuzzer's warning that it cannot find __sanitizer_acquire_crash_state
# says just that: no sanitizer runtime is linked.)
# The corpus grows in fuzz/corpus/<target> (not in git); the seeds in
# fuzz/seeds/<target> are read too. A crash leaves its input in
# fuzz/artifacts/<target>/ and stops the script with a non-zero status: copy
# the input to tests/fuzz_regressions/<target>/ so `cargo test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(request_head chunked response_head config snapshot proxy_header routes auth rewrite range
        cache_rules x509 client_fields log_line jwt ocsp sub_filter gunzip fastcgi_reply client_hello acme dns
        geoip)
fi

# With an explicit --target, RUSTFLAGS reach the fuzzed code only, not build
# scripts and proc macros (which must not be instrumented).
host=$(rustc -vV | sed -n 's/^host: //p')
coverage=(
    --cfg fuzzing
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    -Cdebug-assertions
    -Coverflow-checks
)
RUSTFLAGS="${coverage[*]}" cargo build --release --manifest-path fuzz/Cargo.toml \
    --target "$host" --bins

for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target" "fuzz/artifacts/$target"
    echo "== $target for ${seconds}s"
    "fuzz/target/$host/release/$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
        -artifact_prefix="fuzz/artifacts/$target/" \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048
done
