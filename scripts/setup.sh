#!/usr/bin/env bash
# Installs what building and testing rwsgi needs on a fresh Debian machine,
# and creates the project virtualenv. Sourced by test.sh and run-example.sh;
# safe to run again (it only installs what is missing).
#
# The embedded Python is Debian's /usr/bin/python3.11 (ARCHITECTURE.md,
# "Which Python"): pyo3 is built against it and the virtualenv is made from it,
# so the server, the tests and the container run one and the same interpreter.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RWSGI_PYTHON="${RWSGI_PYTHON:-/usr/bin/python3.11}"
export PYO3_PYTHON="$RWSGI_PYTHON"
VENV="$ROOT/.venv"

need_apt=()
[ -x "$RWSGI_PYTHON" ] || need_apt+=(python3.11)
[ -f /usr/include/python3.11/Python.h ] || need_apt+=(python3.11-dev)
"$RWSGI_PYTHON" -c 'import ensurepip' 2>/dev/null || need_apt+=(python3.11-venv)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "setup: creating $VENV from $RWSGI_PYTHON"
  rm -rf "$VENV"
  "$RWSGI_PYTHON" -m venv "$VENV"
fi
req="$ROOT/tests/requirements.txt"
stamp="$VENV/.requirements.sha"
if [ ! -f "$stamp" ] || [ "$(sha256sum "$req" | cut -d' ' -f1)" != "$(cat "$stamp")" ]; then
  echo "setup: installing Python packages from tests/requirements.txt"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
  sha256sum "$req" | cut -d' ' -f1 > "$stamp"
fi
export RWSGI_VENV="$VENV"
