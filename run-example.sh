#!/usr/bin/env bash
# Sets up and serves the Flask example on http://127.0.0.1:9090/ with a
# master and 4 worker processes. Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh
cargo build --release --locked
exec target/release/rwsgi --http 127.0.0.1:9090 --master --processes 4 \
  --chdir examples/flask_hello --module app:app --virtualenv "$RWSGI_VENV"
