#!/usr/bin/env bash
# Runs ON the GPU machine from the repo root (see README, "CUDA"): parity of candle-cuda
# against the original AniSOAP fixtures, then throughput (pairs/s, wall time, peak GPU memory)
# for benzene-like systems of 1e4..1e6+ pairs at lmax 4, 6, 8 in f64 and f32.
# COMMIT=<sha> labels the rows when .git is not on the GPU machine.
# Writes results/tables/cuda_parity.csv and results/tables/cuda_throughput.csv (or under $OUT).
set -uo pipefail
OUT="${OUT:-results/tables}"
SIZES="${SIZES:-500 5000 50000 200000}"
LMAXES="${LMAXES:-4 6 8}"
mkdir -p "$OUT"
run() { bash scripts/gpu-check.sh "$@" 2>&1 | grep -v '^==\|^   \|^LD_LIBRARY_PATH\|lib.*=>' ; }
gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
version="$(run --version | tail -1)"
commit="${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
echo "gpu: $gpu; $version; commit $commit"

echo "case,quantity,dtype,rtol,status,detail" > "$OUT/cuda_parity.csv"
tmp="$(mktemp -d)"
for case in tests/fixtures/*/; do
  name="$(basename "$case")"
  for dtype in f64 f32; do
    rtol=1e-10; [ "$dtype" = f32 ] && rtol=1e-4
    for q in mean per-center density; do
      flag=""; expected=power_spectrum.npy
      [ "$q" = per-center ] && flag="--per-center" && expected=per_center.npy
      [ "$q" = density ] && flag="--density" && expected=density.npy
      out="$tmp/$name-$dtype-$q.npy"
      msg="$(cd "$case" && BIN="$OLDPWD/dist/anisoap-candle-cuda" bash "$OLDPWD/scripts/gpu-check.sh" compute --quiet --device cuda --dtype "$dtype" $flag --config hypers.json input.xyz -o "$out" 2>&1 | tail -1)"
      if [ -f "$out" ] && cmp="$(run compare "$out" "$case/$expected" --rtol "$rtol" --atol 0 | tail -1)" && [[ "$cmp" != error* ]]; then
        status=PASS
      else
        status=FAIL; cmp="${cmp:-$msg}"
      fi
      echo "$name,$q,$dtype,$rtol,$status,\"$(echo "$cmp" | sed 's/.*: \([0-9]*x[0-9]*\)/\1/' | tr -d '"')\"" >> "$OUT/cuda_parity.csv"
      echo "$status $name $q $dtype"
    done
  done
done

echo "system,particles,pairs,lmax,dtype,device,gpu,chunk_pairs,wall_s,pairs_per_s,peak_gpu_mib,commit" > "$OUT/cuda_throughput.csv"
for n in $SIZES; do
  xyz="$tmp/benzene_$n.xyz"
  run generate --kind benzene --particles "$n" --seed 1 -o "$xyz" > /dev/null
  for lmax in $LMAXES; do
    for dtype in f64 f32; do
      base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
      nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > "$tmp/mem.log" 2>/dev/null &
      smi=$!
      best=""
      for rep in 1 2 3; do
        line="$(run compute --device cuda --dtype "$dtype" --max-angular "$lmax" --cutoff 7.0 --width 1.5 "$xyz" -o "$tmp/out.npy" | tail -1)"
        t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
        pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best="$t"; fi
      done
      kill $smi 2>/dev/null; wait $smi 2>/dev/null
      peak="$(sort -n "$tmp/mem.log" | tail -1)"
      rate="$(awk "BEGIN{printf \"%.4e\", $pairs / $best}")"
      echo "benzene,$n,$pairs,$lmax,$dtype,cuda:0,\"$gpu\",1048576,$best,$rate,$((peak - base)),$commit" >> "$OUT/cuda_throughput.csv"
      echo "N=$n pairs=$pairs lmax=$lmax $dtype: $best s, $rate pairs/s, peak +$((peak - base)) MiB"
    done
  done
done
rm -rf "$tmp"
