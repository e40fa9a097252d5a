#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and fails on the first crash.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]     (default 60)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain; where
# there is no nightly, RUSTC_BOOTSTRAP=1 lets stable build the targets.
# A crash leaves its input under fuzz/artifacts/<target>/: minimise it with
# `cargo fuzz tmin <target> <file>`, copy it to proto/tests/testdata/fuzz/, and
# add a replay to proto/tests/fuzz_regressions.rs with a comment on the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
for target in decode_packet vars_roundtrip decode_split; do
  echo "== fuzzing $target for ${secs}s"
  mkdir -p "fuzz/corpus/$target"
  cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" \
    -- -max_total_time="$secs" -max_len=4096 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss|Done|==[0-9]+==|SUMMARY)|cov:' \
    | tail -n 4
done
