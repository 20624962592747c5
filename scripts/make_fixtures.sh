#!/usr/bin/env bash
# Regenerates tests/fixtures/<case>/ from the original (Python) AniSOAP.
#
#   scripts/make_fixtures.sh              # all cases
#   scripts/make_fixtures.sh case_a ...   # only the named cases
#
# Steps: build the CLI, create the Python environment if missing, write each case's input.xyz
# (anisoap-candle generate) and hypers.json, then run scripts/make_fixtures.py on the cases.
#
# Environment:
#   ANISOAP_VENV  virtual environment holding the original AniSOAP
#                 (default: ${XDG_CACHE_HOME:-$HOME/.cache}/anisoap-candle/venv-anisoap-6b28869)
#   ANISOAP_SRC   what pip installs as AniSOAP when the environment is created: a local checkout
#                 or a pip URL (default: upstream at commit 6b288697, see below)
#   PYTHON        interpreter used to create the environment (default: python3)
#
# Why upstream commit 6b288697 and not PyPI's anisoap 0.1.1: 0.1.1 orthonormalises the summed
# density using its (mislabelled, type-major) property labels, so with several neighbour types
# and N_l > 1 its transform()/power_spectrum() values are wrong (errors of order 1-100 relative
# were measured); its power_spectrum(mean_over_samples=True) also fails with several centre
# types (TensorMap.block()), and it needs metatensor-core < 0.2 (blocks_matching). Commit
# 6b288697 orthonormalises per pair, hstacks the blocks, and is the version that
# docs/ANISOAP_MATH.md describes. The dependency pins below follow its requirements.txt.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

ANISOAP_COMMIT=6b288697ffd01a96f2b46c8afcfd3a05ab2c398c
ANISOAP_SRC="${ANISOAP_SRC:-git+https://github.com/cersonsky-lab/AniSOAP@${ANISOAP_COMMIT}}"
ANISOAP_VENV="${ANISOAP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/anisoap-candle/venv-anisoap-6b28869}"
PYTHON="${PYTHON:-python3}"
FIXTURES="$REPO/tests/fixtures"
BIN="$REPO/target/release/anisoap-candle"

echo "== building the CLI"
cargo build --release -p anisoap-candle-cli

if ! "$ANISOAP_VENV/bin/python" -c "import anisoap, featomic, metatensor, ase" 2>/dev/null; then
    echo "== creating $ANISOAP_VENV (AniSOAP from $ANISOAP_SRC; needs Rust for its extension)"
    "$PYTHON" -m venv "$ANISOAP_VENV"
    "$ANISOAP_VENV/bin/pip" install --quiet \
        "metatensor==0.2.0" "metatensor-core==0.1.20" "metatensor-operations==0.3.4" \
        "featomic==0.6.1" "wigners==0.3.0" "ase==3.25.0" "scipy==1.17.1" "numpy==2.4.*" \
        "$ANISOAP_SRC"
fi

# case name | generate arguments | hypers.json
# Floats are written with a decimal point: the original rejects an int cutoff or width.
CASES=(
"gto_l4_two_species_periodic|--kind liquid --particles 12 --species 2 --frames 2 --periodic --density 0.05 --seed 101|{\"max_angular\": 4, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 4.0, \"radial_gaussian_width\": 1.2, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
"gto_l6_one_species_open|--kind benzene --particles 10 --species 1 --frames 2 --open --density 0.02 --seed 102|{\"max_angular\": 6, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 7.0, \"radial_gaussian_width\": 1.5, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
"monomial_l3_one_species_open|--kind liquid --particles 8 --species 1 --frames 1 --open --density 0.05 --seed 103|{\"max_angular\": 3, \"radial_basis_name\": \"monomial\", \"cutoff_radius\": 5.0, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
"gto_l2_maxradial3_three_species_periodic|--kind benzene --particles 12 --species 3 --frames 2 --periodic --density 0.02 --seed 104|{\"max_angular\": 2, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 5.0, \"radial_gaussian_width\": 1.0, \"max_radial\": 3, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
"gto_l3_maxradial_list_four_species_open|--kind liquid --particles 12 --species 4 --frames 2 --open --density 0.05 --seed 105|{\"max_angular\": 3, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 4.5, \"radial_gaussian_width\": 1.3, \"max_radial\": [2, 1, 1, 0], \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
"monomial_l2_maxradial2_small_cell|--kind liquid --particles 6 --species 2 --frames 2 --periodic --density 0.2222222222222222 --seed 106|{\"max_angular\": 2, \"radial_basis_name\": \"monomial\", \"cutoff_radius\": 3.5, \"max_radial\": 2, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
"gto_l4_subtract_center_two_species_periodic|--kind benzene --particles 10 --species 2 --frames 2 --periodic --density 0.02 --seed 107|{\"max_angular\": 4, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 5.0, \"radial_gaussian_width\": 1.2, \"subtract_center_contribution\": true, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
"gto_l8_one_species_periodic|--kind liquid --particles 8 --species 1 --frames 1 --periodic --density 0.04 --seed 108|{\"max_angular\": 8, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 4.0, \"radial_gaussian_width\": 1.0, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
# C moved 40 away from H and N: C sees only C, H and N see only H and N (strict,
# non-contiguous subsets of the three types).
"gto_l3_subset_neighbor_types_open|--kind liquid --particles 12 --species 3 --frames 2 --open --density 0.1 --seed 109 --shift-species C:40,0,0|{\"max_angular\": 3, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 4.0, \"radial_gaussian_width\": 1.0, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
# Frame 1 has no C: the C block of its mean is zero (the original's own mean raises, see
# make_fixtures.py).
"gto_l4_missing_center_type_periodic|--kind liquid --particles 12 --species 2 --frames 3 --periodic --density 0.05 --seed 110 --relabel 1:C:H|{\"max_angular\": 4, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 4.0, \"radial_gaussian_width\": 1.2, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
# The geometry of gto_l4_two_species_periodic, orientations as 3x3 matrices (9 columns).
"gto_l4_two_species_periodic_rotation_matrix|--kind liquid --particles 12 --species 2 --frames 2 --periodic --density 0.05 --seed 101 --orientation matrix|{\"max_angular\": 4, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 4.0, \"radial_gaussian_width\": 1.2, \"rotation_key\": \"c_q\", \"rotation_type\": \"matrix\"}"
# Triclinic cell periodic along a and b only (the original is run on the equivalent stretched
# cell, see make_fixtures.py).
"gto_l3_triclinic_mixed_pbc_two_species|--kind liquid --particles 12 --species 2 --frames 2 --periodic --density 0.05 --seed 112 --tilt 0.3,-0.2,0.25 --pbc T,T,F|{\"max_angular\": 3, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 4.0, \"radial_gaussian_width\": 1.0, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
# Triclinic, fully periodic, cell heights below the cutoff (self images).
"gto_l3_triclinic_small_cell|--kind liquid --particles 6 --species 2 --frames 2 --periodic --density 0.2222222222222222 --seed 113 --tilt 0.4,0.1,-0.3|{\"max_angular\": 3, \"radial_basis_name\": \"gto\", \"cutoff_radius\": 3.5, \"radial_gaussian_width\": 1.0, \"rotation_key\": \"c_q\", \"rotation_type\": \"quaternion\"}"
)

selected=("$@")
dirs=()
for entry in "${CASES[@]}"; do
    IFS='|' read -r name gen_args hypers <<<"$entry"
    if [ ${#selected[@]} -gt 0 ] && [[ ! " ${selected[*]} " == *" $name "* ]]; then
        continue
    fi
    dir="$FIXTURES/$name"
    mkdir -p "$dir"
    echo "== $name: generate $gen_args"
    # shellcheck disable=SC2086  # word splitting of the argument list is intended
    "$BIN" generate $gen_args --output "$dir/input.xyz"
    printf '%s\n' "$hypers" >"$dir/hypers.json.tmp"
    mv "$dir/hypers.json.tmp" "$dir/hypers.json"
    printf '%s\n' "$gen_args" >"$dir/generate_args.txt"
    dirs+=("$dir")
done

if [ ${#dirs[@]} -eq 0 ]; then
    echo "no case matched: $*" >&2
    exit 1
fi

# The same numbers on every x86-64 machine: the committed fixtures were made with OpenBLAS's
# Haswell (AVX2) kernels and numpy's dispatch without AVX-512. Both choose faster AVX-512 code
# paths where the CPU has them, and those round differently (1 ulp in most entries), so the
# script pins them unless the caller chose otherwise.
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-Haswell}"
export NPY_DISABLE_CPU_FEATURES="${NPY_DISABLE_CPU_FEATURES-X86_V4 AVX512_ICL AVX512_SPR}"

echo "== running the original AniSOAP"
"$ANISOAP_VENV/bin/python" "$REPO/scripts/make_fixtures.py" "${dirs[@]}"

{
    echo "# pip freeze of $ANISOAP_VENV (selected packages); AniSOAP source when this script"
    echo "# creates the environment: $ANISOAP_SRC (commit $ANISOAP_COMMIT)"
    echo "# numeric kernels: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE NPY_DISABLE_CPU_FEATURES=$NPY_DISABLE_CPU_FEATURES"
    "$ANISOAP_VENV/bin/python" --version
    "$ANISOAP_VENV/bin/pip" freeze 2>/dev/null \
    | grep -iE '^(anisoap|featomic|metatensor|metatensor-core|metatensor-operations|numpy|scipy|ase|wigners)( @|==)' \
    || true
} >"$FIXTURES/versions.txt"
echo "== done; versions in tests/fixtures/versions.txt"
