#!/usr/bin/env bash
# Session 11: chunk size of the device pipeline (device search + device counting:
# ANISOAP_CUDA_COUNTING=1 with the 544d034 bundle, the default since 995c544), lmax 6 f64/f32,
# 10^6 benzene-like particles, with the peak GPU memory of each run (nvidia-smi every 20 ms).
# Carry dist/s11.tar.xz (scripts/cuda_h200/s11_bundle.sh). Writes $OUT/chunks.csv.
set -uo pipefail
OUT="${OUT:-/tmp/s11_chunks}"; mkdir -p "$OUT" /tmp/s11b
tar xJf dist/s11.tar.xz -C /tmp/s11b
BIN=/tmp/s11b/anisoap-candle-cuda
eval "$(BIN=$BIN bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
export ANISOAP_CUDA_COUNTING=1
xyz=/tmp/benzene_1e6.xyz
$BIN generate --kind benzene --particles 1000000 --seed 1 -o "$xyz" > /dev/null 2>&1
$BIN compute --quiet --device cuda:0 --max-angular 4 --cutoff 7.0 --width 1.5 "$xyz" -o /tmp/warm.npy > /dev/null 2>&1
echo "chunk_pairs,dtype,rep,wall_s,read_s,prepare_s,loop_s,chunk_s,prepare_loop_pairs_per_s,peak_gpu_mib" > "$OUT/chunks.csv"
for rep in 1 2; do for chunk in 1048576 4194304 16777216; do for dtype in f64 f32; do
  base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > /tmp/mem.log 2>/dev/null & smi=$!
  line="$(timeout 60 $BIN --trace /tmp/c.json compute --device cuda:0 --dtype $dtype --chunk-pairs $chunk --max-angular 6 --cutoff 7.0 --width 1.5 "$xyz" -o /tmp/c_${chunk}_${dtype}.npy 2>&1 | tail -1)"
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  peak="$(sort -n /tmp/mem.log | tail -1)"; peak=$((peak - base))
  t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"; pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
  read -r rd pr lp se ch st <<< "$(python3 scripts/trace_split.py /tmp/c.json 2>/dev/null || echo nan nan nan nan nan nan)"
  rate="$(awk "BEGIN{printf \"%.4e\", $pairs / ($pr + $lp)}")"
  echo "$chunk,$dtype,$rep,$t,$rd,$pr,$lp,$ch,$rate,$peak" | tee -a "$OUT/chunks.csv"
done; done; done
for dtype in f64 f32; do cmp -s /tmp/c_1048576_$dtype.npy /tmp/c_16777216_$dtype.npy && echo "$dtype: chunk sizes identical" || echo "$dtype: chunk sizes DIFFER (summation order)"; done
