#!/usr/bin/env bash
# Builds the Python package (python/: PyO3 + maturin, release) and runs its
# pytest suite (python/tests), in a virtual environment under target/ that
# is created on the first run and reused after. Works on a fresh machine
# with a Rust toolchain and python3 (3.11+, with venv and pip); PyPI must be
# reachable the first time.
#
# The package is built into the engine's target/ (CARGO_TARGET_DIR), so a
# machine that has built the engine compiles only the binding and the
# dependencies whose features differ. Set LMECH_TORCH=0 to skip installing
# PyTorch (the bridge tests then say they are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
VENV="$ROOT/target/venv-py"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
export PATH="$VENV/bin:$PATH"
python -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
if [ "${LMECH_TORCH:-1}" != 0 ] && ! python -c "import torch" 2>/dev/null; then
    # PyPI's Linux wheel of torch comes with CUDA libraries it loads at
    # import (a few GB); there is no CPU-only wheel on PyPI.
    python -m pip install --quiet --disable-pip-version-check torch==2.15.0
fi
CARGO_TARGET_DIR="$ROOT/target" python -m pip install --quiet --disable-pip-version-check \
    --no-build-isolation --no-deps --force-reinstall ./python
python -m pytest python/tests -q -rs
