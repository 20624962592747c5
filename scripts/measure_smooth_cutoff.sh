#!/usr/bin/env bash
# Cost of the opt-in smooth cutoff (issue 13): the same binary, the same input, `compute` with
# the original's step and with `--cutoff-function shifted_cosine:W`, alternating run by run so
# that machine noise hits both alike. Reports the calculator's own time (the `in X s` of the
# summary line, XYZ reading excluded) per run, and checks that the smooth output differs from
# the step's (the factor is applied) while the step output is byte-identical run to run.
#
# Usage: scripts/measure_smooth_cutoff.sh [OUT.csv]   (default results/tables/smooth_cutoff_cost.csv)
# Environment:
#   BIN       the CLI binary (default target/release/anisoap-candle; built if missing)
#   DEVICE    cpu (default) or cuda:0 ...;  DTYPES "f64 f32" (default);  REPS 5 (default)
#   N         particles of the benzene-like frame (default 2048);  WIDTH 1.5 (default)
#   BACKENDS  "fused tensor-op reference" (default; reference only for f64, on the CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/tables/smooth_cutoff_cost.csv}"
BIN="${BIN:-target/release/anisoap-candle}"
DEVICE="${DEVICE:-cpu}"
DTYPES="${DTYPES:-f64 f32}"
REPS="${REPS:-5}"
N="${N:-2048}"
WIDTH="${WIDTH:-1.5}"
BACKENDS="${BACKENDS:-fused tensor-op reference}"
[[ -x "$BIN" ]] || cargo build --release -p anisoap-candle-cli
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$BIN" generate --kind benzene --particles "$N" --species 1 --frames 1 --seed 1 -o "$TMP/in.xyz"
HYPERS=(--max-angular 6 --cutoff 7.0 --width 1.5)
mkdir -p "$(dirname "$OUT")"
echo "device,dtype,backend,cutoff_function,rep,seconds,pairs,summary" > "$OUT"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "# commit $commit, $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "N = $N benzene-like, GTO lmax 6, cutoff 7.0, width 1.5, smooth width $WIDTH" >&2

run() { # dtype backend mode rep
    local flags=(--device "$DEVICE" --dtype "$1")
    case "$2" in
        tensor-op) flags+=(--tensor-op-moments) ;;
        reference) flags=(--reference) ;;
    esac
    local cf=step
    [[ "$3" == smooth ]] && cf="shifted_cosine:$WIDTH"
    local out="$TMP/$1_$2_$3.npy"
    local line
    line="$("$BIN" compute "${HYPERS[@]}" --cutoff-function "$cf" "${flags[@]}" "$TMP/in.xyz" \
        -o "$out" 2>&1 >/dev/null | grep ' in .* s' | tail -1)"
    local seconds pairs
    seconds="$(sed -E 's/.* in ([0-9.e+-]+) s.*/\1/' <<<"$line")"
    pairs="$(sed -E 's/.* ([0-9]+) pairs.*/\1/' <<<"$line")"
    echo "$DEVICE,$1,$2,$cf,$4,$seconds,$pairs,\"$line\"" >> "$OUT"
    echo "$1 $2 $cf rep $4: $seconds s ($pairs pairs)" >&2
    if [[ "$3" == step ]]; then
        if [[ -f "$TMP/$1_$2_step.first.npy" ]]; then
            cmp -s "$out" "$TMP/$1_$2_step.first.npy" || { echo "step output changed between runs" >&2; exit 1; }
        else
            cp "$out" "$TMP/$1_$2_step.first.npy"
        fi
    fi
}

for dtype in $DTYPES; do
    for backend in $BACKENDS; do
        if [[ "$backend" == reference && ( "$dtype" != f64 || "$DEVICE" != cpu ) ]]; then continue; fi
        for rep in $(seq 1 "$REPS"); do
            run "$dtype" "$backend" step "$rep"
            run "$dtype" "$backend" smooth "$rep"
        done
        if cmp -s "$TMP/${dtype}_${backend}_step.npy" "$TMP/${dtype}_${backend}_smooth.npy"; then
            echo "smooth output equals the step's: the factor is not applied" >&2
            exit 1
        fi
    done
done

# Medians per (dtype, backend, cutoff function), and the smooth/step ratio.
python3 - "$OUT" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
groups = {}
for r in rows:
    groups.setdefault((r["dtype"], r["backend"], r["cutoff_function"]), []).append(float(r["seconds"]))
for (dtype, backend, cf), t in sorted(groups.items()):
    if cf != "step":
        continue
    smooth = [v for (d, b, c), v in groups.items() if d == dtype and b == backend and c != "step"][0]
    a, b = statistics.median(t), statistics.median(smooth)
    print(f"{dtype} {backend}: step median {a:.4f} s, smooth median {b:.4f} s "
          f"(ratio {b / a:.3f}; n = {len(t)} each)", file=sys.stderr)
EOF
