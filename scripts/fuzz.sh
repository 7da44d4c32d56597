#!/usr/bin/env bash
# Runs each cargo-fuzz target of krbd-placement (crates/krbd-placement/fuzz) for a bounded
# time, starting from its committed seed corpus (fuzz/corpus/<target>/), under libFuzzer's
# memory limits. A crash (panic), an out-of-memory (over 1 GB RSS, or one allocation over
# 1 GB), a leak or an input that takes over 30 s fails the run; the input that did it is
# left in target/fuzz/artifacts/<target>/ with the command that replays it.
#   scripts/fuzz.sh                every target, FUZZ_SECONDS (default 60) each
#   scripts/fuzz.sh TARGET...      only those
# Needs the nightly toolchain (FUZZ_TOOLCHAIN, default nightly) and cargo-fuzz, which this
# script installs (pinned) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
toolchain=${FUZZ_TOOLCHAIN:-nightly}
cargo_fuzz_version=0.13.2
fuzz_dir=crates/krbd-placement/fuzz
work=target/fuzz

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "fuzz: installing the $toolchain toolchain (libFuzzer's sanitizer flags need it)" >&2
    rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz_version"; then
    echo "fuzz: installing cargo-fuzz $cargo_fuzz_version" >&2
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

# The fuzz crate keeps its own Cargo.lock; refuse to run with one that would change.
cargo "+$toolchain" metadata --locked --format-version 1 --manifest-path "$fuzz_dir/Cargo.toml" >/dev/null
# Its sources are outside the workspace that `cargo fmt --all` checks.
rustfmt --edition 2021 --check "$fuzz_dir"/fuzz_targets/*.rs "$fuzz_dir"/src/*.rs

fuzz=(cargo "+$toolchain" fuzz)
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir "$fuzz_dir")
fi
# One build for all targets (address sanitizer, debug assertions on), beside the workspace's.
"${fuzz[@]}" build --fuzz-dir "$fuzz_dir" --target-dir "$work"
for t in "${targets[@]}"; do
    # New inputs go to a scratch corpus (the first folder); the committed seeds are only read.
    scratch=$work/corpus/$t
    artifacts=$work/artifacts/$t
    rm -rf "$scratch" "$artifacts"
    mkdir -p "$scratch" "$artifacts"
    echo "fuzz: $t for ${seconds}s" >&2
    start=$SECONDS
    if ! "${fuzz[@]}" run --fuzz-dir "$fuzz_dir" --target-dir "$work" "$t" "$scratch" "$fuzz_dir/corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=1024 -timeout=30 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 >"$work/$t.log" 2>&1; then
        tail -n 60 "$work/$t.log" >&2
        echo "fuzz: $t failed (log: $work/$t.log); the input is in $artifacts/; replay it with" >&2
        echo "  cargo +$toolchain fuzz run --fuzz-dir $fuzz_dir --target-dir $work $t $artifacts/<file>" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
    echo "fuzz: $t: ${runs:-?} inputs in $((SECONDS - start))s, no crash, leak or out-of-memory" >&2
done
