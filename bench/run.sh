#!/usr/bin/env bash
# Runs the side-by-side benchmarks on loopback and writes bench/results/report.md.
#   bench/run.sh [--quick] [--seconds N] [--reps N]
# Installs what it needs: wrk and nginx with apt-get, uWSGI/gunicorn/granian and
# Flask into bench/.venv (from the same Python rwsgi embeds), and builds rwsgi in
# release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if ! command -v wrk >/dev/null 2>&1 || ! command -v ab >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk apache2-utils >/dev/null
fi
[ -x bench/.venv/bin/python ] || "$RWSGI_PYTHON" -m venv bench/.venv
bench/.venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
cargo build --release --locked
exec bench/.venv/bin/python bench/suite.py "$@"
