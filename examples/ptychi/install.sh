#!/usr/bin/env bash
# Install pty-chi (PyPI package `ptychi`) for examples/ptychi/recipe.py into $REPO/target/ptychi-venv.
#
# Torch comes from the CPU-only wheel index when that index can be reached; otherwise from PyPI, whose
# Linux torch wheel pulls in the CUDA libraries (a venv of about 6 GB; CPU use is unaffected).
# Every package is pinned by constraints.txt beside this script. Idempotent: a venv already installed
# from the same install.sh and constraints.txt is left as it is.
# Environment: PYTHON, the interpreter to build the venv from (default python3; 3.11 or newer).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="$REPO/target/ptychi-venv"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$HERE/constraints.txt"
STAMP="$VENV/.installed-from"
PINS=(ptychi==2.2.0 torch==2.15.0 torchvision==0.29.2)
CPU_INDEX=https://download.pytorch.org/whl/cpu

want="$(cat "$HERE/install.sh" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && "$VENV/bin/python" -c "import ptychi, torch" 2>/dev/null; then
  echo "install.sh: $VENV is up to date"
  exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "install.sh: $PYTHON is $("$PYTHON" --version 2>&1); ptychi needs Python 3.11 or newer" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip_install() {
  "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off "$@"
}

if ! pip_install --retries 1 --timeout 20 --index-url "$CPU_INDEX" torch==2.15.0 torchvision==0.29.2; then
  echo "install.sh: $CPU_INDEX unreachable; torch comes from PyPI (CUDA build)" >&2
fi
pip_install -c "$CONSTRAINTS" "${PINS[@]}"
"$VENV/bin/python" -c "import ptychi, torch; print('install.sh: torch', torch.__version__, 'ptychi ok')"
echo "$want" > "$STAMP"
