#!/usr/bin/env bash
# Installs what the project needs on a Debian/Ubuntu machine: Python venv support, the
# pinned Python packages (constraints.txt) and the project itself, editable.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  command -v python3 >/dev/null || apt_install python3
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "Python 3.11 or newer is needed (found $(python3 --version 2>&1))" >&2; exit 1; }
fi
if [ ! -x "$PY" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
say "installing pinned dependencies"
"$PY" -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
