#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for ARGENT_FUZZ_SECONDS (default
# 30) on a copy of its committed corpus. A crash fails the run and leaves the input in
# fuzz/artifacts/<target>/. Stable Rust with `-s none` (argent has no unsafe code).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${ARGENT_FUZZ_SECONDS:-30}"
CARGO_FUZZ_VERSION="0.13.2"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

cd fuzz
cargo fuzz build -s none
for target in $(cargo fuzz list); do
    work="$(mktemp -d)"
    cp corpus/"$target"/* "$work"/
    echo "-- $target (${SECS}s, $(ls "$work" | wc -l) seeds)"
    # -timeout: one input taking 10 s is a finding (a stall), not a slow machine.
    if ! cargo fuzz run -s none "$target" "$work" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$work.log" 2>&1; then
        tail -60 "$work.log"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/"
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^Done ' "$work.log" || true
    rm -rf "$work" "$work.log"
done
