#!/usr/bin/env bash
# Install PtychoPINN's Python dependencies (CPU) into target/ptychopinn-venv, and point
# target/ptychopinn-checkout at a PtychoPINN checkout, for bench/ptychopinn/Studyfile.
#
#   bash bench/ptychopinn/setup.sh PTYCHOPINN_CHECKOUT      # or PTYCHOPINN=DIR bash bench/ptychopinn/setup.sh
#
# PTYCHOPINN_CHECKOUT is a directory holding PtychoPINN's `ptycho/` (with its `ptycho/FRC`
# submodule) and `scripts/`; bench/README.md says how to make one of the study-era commit.
# Nothing of PtychoPINN is copied into this repository: the checkout stays where it is, and
# everything this script makes lives under target/ (ignored by git).
#
# Environment: PYTHON (default python3.11, else python3), VENV (default target/ptychopinn-venv).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
checkout="${1:-${PTYCHOPINN:-}}"
if [ -z "$checkout" ]; then
    echo "usage: bash bench/ptychopinn/setup.sh PTYCHOPINN_CHECKOUT  (or PTYCHOPINN=DIR)" >&2
    exit 2
fi
checkout="$(cd "$checkout" && pwd)"
for f in ptycho/__init__.py ptycho/model.py ptycho/workflows/components.py \
         scripts/training/train.py ptycho/FRC/fourier_ring_corr.py; do
    if [ ! -f "$checkout/$f" ]; then
        echo "setup.sh: $checkout/$f is missing: not a PtychoPINN checkout (with its ptycho/FRC submodule)" >&2
        exit 2
    fi
done
case "$checkout/" in
    "$root"/*)
        echo "setup.sh: the checkout must live outside this repository ($root)" >&2
        exit 2 ;;
esac

py="${PYTHON:-}"
if [ -z "$py" ]; then
    if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
fi
ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$ver" in
    3.10|3.11|3.12|3.13) ;;
    *) echo "setup.sh: $py is Python $ver; tensorflow-cpu 2.21 needs 3.10-3.13 (set PYTHON)" >&2; exit 2 ;;
esac

venv="${VENV:-$root/target/ptychopinn-venv}"
mkdir -p "$root/target"
if [ ! -x "$venv/bin/python" ]; then
    echo "setup.sh: creating $venv with $py (Python $ver)"
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"

# The Studyfile finds the checkout through this link (commands run in a cleared environment).
ln -sfn "$checkout" "$root/target/ptychopinn-checkout"

# Smoke test: the modules the recipe uses import, with the checkout on the path.
PYTHONPATH="$checkout" TF_CPP_MIN_LOG_LEVEL=2 "$venv/bin/python" - <<'EOF'
import importlib, sys
import numpy, scipy, skimage, sklearn, yaml, cv2, pandas, dill, matplotlib
import tensorflow as tf, tensorflow_probability as tfp, keras
for m in ["ptycho.params", "ptycho.workflows.components", "ptycho.tf_helper",
          "ptycho.image.cropping", "ptycho.model_manager", "ptycho.FRC.fourier_ring_corr"]:
    importlib.import_module(m)
print("setup.sh: ok: python %s, tensorflow %s, tensorflow-probability %s, keras %s, numpy %s"
      % (sys.version.split()[0], tf.__version__, tfp.__version__, keras.__version__, numpy.__version__))
EOF
echo "setup.sh: venv $venv; checkout $checkout (linked from target/ptychopinn-checkout)"
