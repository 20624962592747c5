#!/usr/bin/env bash
# The Python package against the original AniSOAP, in the original's environment:
#   1. python/tests (test_original.py compares the same ASE frames through both);
#   2. the original's own unit tests run against anisoap_candle by import substitution
#      -> results/python/upstream_unit_tests.md;
#   3. speed side by side, and the Python call vs the CLI -> results/python/speed.json.
#
# Environment:
#   ANISOAP_VENV     environment holding the original (default as scripts/make_fixtures.sh:
#                    ${XDG_CACHE_HOME:-$HOME/.cache}/anisoap-candle/venv-anisoap-6b28869)
#   ANISOAP_SRC      a checkout/export of upstream commit 6b288697 (for its unit tests and
#                    notebooks/ellipsoids.xyz), or
#   ANISOAP_MIRROR   a git dir holding that commit (read with git show)
#   ELLIPSOIDS_XYZ   path of notebooks/ellipsoids.xyz (overrides the two above for it)
#   CLI              the anisoap-candle binary to time (default: built here)
#   REPEATS          timed repeats of our runs (default 5); ORIGINAL_FRAMES limits the
#                    original's ellipsoids run to the first N frames (default: all 6826)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
COMMIT=6b288697ffd01a96f2b46c8afcfd3a05ab2c398c
ANISOAP_VENV="${ANISOAP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/anisoap-candle/venv-anisoap-6b28869}"
ORIGINAL="$ANISOAP_VENV/bin/python"
"$ORIGINAL" -c "import anisoap, ase, metatensor" || {
    echo "no original AniSOAP in $ANISOAP_VENV (scripts/make_fixtures.sh creates it)"; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

upstream_file() {  # upstream_file PATH DEST
    if [ -n "${ANISOAP_SRC:-}" ] && [ -f "$ANISOAP_SRC/$1" ]; then cp "$ANISOAP_SRC/$1" "$2"
    elif [ -n "${ANISOAP_MIRROR:-}" ]; then git --git-dir="$ANISOAP_MIRROR" show "$COMMIT:$1" > "$2"
    else echo "set ANISOAP_SRC or ANISOAP_MIRROR to read $1 of upstream $COMMIT"; exit 1; fi
}

echo "== building the wheel and the CLI"
bash scripts/test_python.sh >/dev/null  # makes target/py-venv with maturin
VENV="$REPO/target/py-venv"
PATH="$VENV/bin:$PATH" maturin build --release -q -m python/Cargo.toml -o "$WORK/wheels"
"$VENV/bin/pip" install -q --no-deps --target "$WORK/site" "$WORK"/wheels/*.whl
CLI="${CLI:-}"
if [ -z "$CLI" ]; then cargo build --release -q -p anisoap-candle-cli; CLI=target/release/anisoap-candle; fi
export PYTHONPATH="$WORK/site" PYTHONDONTWRITEBYTECODE=1

echo "== python/tests with the original importable"
"$ORIGINAL" -m pytest python/tests -q -rs -p no:cacheprovider

echo "== the original's unit tests by import substitution"
upstream_file tests/unit-tests/test_ellipsoidal_density_projection.py "$WORK/test_ellipsoidal_density_projection.py"
mkdir -p results/python
PYTHONPATH= "$ORIGINAL" scripts/python_upstream_tests.py \
    --tests "$WORK/test_ellipsoidal_density_projection.py" \
    --candle-python "$ORIGINAL" --candle-path "$WORK/site" --original-python "$ORIGINAL" \
    --output results/python/upstream_unit_tests.md

echo "== speed"
if [ -z "${ELLIPSOIDS_XYZ:-}" ]; then
    ELLIPSOIDS_XYZ="$WORK/ellipsoids.xyz"
    upstream_file notebooks/ellipsoids.xyz "$ELLIPSOIDS_XYZ"
fi
"$ORIGINAL" scripts/python_bench.py --ellipsoids "$ELLIPSOIDS_XYZ" \
    --benzene results/data/benzene_n2048_s1_f1.xyz --cli "$CLI" \
    --repeats "${REPEATS:-5}" ${ORIGINAL_FRAMES:+--original-frames "$ORIGINAL_FRAMES"} \
    --original-warmup --output results/python/speed.json
