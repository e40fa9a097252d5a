#!/usr/bin/env bash
# Sets up everything the tests need and runs them all: formatting, lints, unit
# tests, and the integration tests that start the real rwsgi binary with real
# Python apps and a real nginx.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
