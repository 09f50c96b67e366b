#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time each.
#
#   scripts/fuzz.sh                  # every target, FUZZ_SECONDS each (default 60)
#   FUZZ_SECONDS=600 scripts/fuzz.sh request_head chunked
#
# Needs a nightly toolchain (libFuzzer instrumentation); installs cargo-fuzz
# when it is missing. The corpus grows in fuzz/corpus/<target> (not in git);
# the seeds in fuzz/seeds/<target> are read too. A crash leaves its input in
# fuzz/artifacts/<target>/ and stops the script with a non-zero status: copy
# the input to tests/fuzz_regressions/<target>/ so `cargo test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(request_head chunked response_head config snapshot proxy_header)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
    echo "== $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048
done
