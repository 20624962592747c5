#!/usr/bin/env bash
# Peak RSS and wall time of `compute` against trajectory length (issue 11): 2-particle frames
# from 1e3 to 1e6 frames, and 10^4-particle frames from 10 to 1000 frames, default (per-frame
# mean) and --per-center outputs. Inputs are one generated block of frames repeated with `cat`
# (the frames' content does not matter for memory).
#
#   scripts/measure_streaming.sh [OUT_CSV]      (default results/tables/streaming_rss.csv)
#
# Env: BIN (default target/release/anisoap-candle), OLD_BIN (optional: a binary of the
# in-memory version, measured side by side on the smaller inputs), WORK (scratch dir,
# default a temp dir; needs ~3 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/tables/streaming_rss.csv}"
BIN="${BIN:-target/release/anisoap-candle}"
WORK="${WORK:-$(mktemp -d)}"
HYPERS=(--max-angular 4 --cutoff 3.0 --width 1.0)
mkdir -p "$(dirname "$OUT")" "$WORK"
echo "binary,input,frames,particles_per_frame,output,pairs,rows,peak_rss_mb,wall_s" > "$OUT"

repeat() { # repeat FILE TIMES OUT
  local f="$1" n="$2" out="$3"
  : > "$out"
  for _ in $(seq "$n"); do cat "$f" >> "$out"; done
}

measure() { # measure LABEL BIN INPUT FRAMES PARTICLES OUTPUT_KIND
  local label="$1" bin="$2" input="$3" frames="$4" particles="$5" kind="$6"
  local flag=() out="$WORK/out.npy"
  [ "$kind" = per-center ] && flag=(--per-center)
  local log="$WORK/time.log"
  /usr/bin/time -f "%M %e" -o "$log" "$bin" compute "${HYPERS[@]}" "${flag[@]}" "$input" \
    -o "$out" 2> "$WORK/stderr.log" || { cat "$WORK/stderr.log" >&2; return 1; }
  local rss wall pairs rows
  read -r rss wall < "$log"
  pairs="$(grep -o '[0-9]* pairs' "$WORK/stderr.log" | head -1 | cut -d' ' -f1)"
  rows="$(grep -o '[0-9]* rows' "$WORK/stderr.log" | head -1 | cut -d' ' -f1)"
  echo "$label,$(basename "$input"),$frames,$particles,$kind,$pairs,$rows,$(awk "BEGIN{printf \"%.1f\", $rss/1024}"),$wall" | tee -a "$OUT"
  rm -f "$out" "$out.json"
}

"$BIN" generate --kind liquid --particles 2 --species 1 --frames 1000 --open --density 0.05 \
  --seed 11 -o "$WORK/small_1e3.xyz" 2>/dev/null
"$BIN" generate --kind liquid --particles 10000 --species 1 --frames 10 --periodic \
  --density 0.05 --seed 12 -o "$WORK/large_10.xyz" 2>/dev/null
for k in 1 2 3; do
  n=$((10 ** k))
  repeat "$WORK/small_1e3.xyz" "$n" "$WORK/small_$((1000 * n)).xyz"
done
mv "$WORK/small_1e3.xyz" "$WORK/small_1000.xyz"
repeat "$WORK/large_10.xyz" 10 "$WORK/large_100.xyz"
repeat "$WORK/large_10.xyz" 100 "$WORK/large_1000.xyz"

for kind in mean per-center; do
  for frames in 1000 10000 100000 1000000; do
    measure streaming "$BIN" "$WORK/small_$frames.xyz" "$frames" 2 "$kind"
  done
  for frames in 10 100 1000; do
    measure streaming "$BIN" "$WORK/large_$frames.xyz" "$frames" 10000 "$kind"
  done
done
# One 10^6-particle periodic liquid (one frame = one batch; memory is the frame plus one chunk).
"$BIN" generate --kind liquid --particles 1000000 --species 1 --frames 1 --periodic \
  --density 0.3 --seed 13 -o "$WORK/huge_1.xyz" 2>/dev/null
measure streaming "$BIN" "$WORK/huge_1.xyz" 1 1000000 mean
if [ -n "${OLD_BIN:-}" ]; then
  for kind in mean per-center; do
    for frames in 1000 10000 100000; do
      measure in-memory "$OLD_BIN" "$WORK/small_$frames.xyz" "$frames" 2 "$kind"
    done
    for frames in 10 100; do
      measure in-memory "$OLD_BIN" "$WORK/large_$frames.xyz" "$frames" 10000 "$kind"
    done
  done
  measure in-memory "$OLD_BIN" "$WORK/huge_1.xyz" 1 1000000 mean
fi
echo "wrote $OUT"
