#!/usr/bin/env bash
# Builds the Python package (python/, maturin) into a virtual environment and runs its pytest
# suite. Called by scripts/test.sh; writes nothing tracked (the environment lives in target/).
#
# Environment:
#   ANISOAP_PY_VENV  the environment (default: target/py-venv; created when missing)
#   PYTHON           interpreter that creates it (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ANISOAP_PY_VENV:-target/py-venv}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PYTHON="${PYTHON:-python3}"
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if ! "$VENV/bin/python" -c "import maturin, numpy, ase, pytest, metatensor, tqdm" 2>/dev/null; then
    echo "== creating $VENV (maturin, numpy, ase, pytest, metatensor-core, tqdm)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet maturin numpy ase pytest metatensor-core tqdm
fi
export PATH="$VENV/bin:$PATH"
echo "== building and installing the Python package (pip install ./python)"
# No build isolation: the environment's maturin builds it (no download per run).
"$VENV/bin/pip" install --quiet --no-build-isolation --force-reinstall --no-deps ./python
echo "== pytest python/tests"
# -rs prints the reason of every skip (the comparison with the original skips where the
# original is not installed, and says so).
"$VENV/bin/python" -m pytest python/tests -q -rs -p no:cacheprovider
