#!/usr/bin/env bash
# Runs ON the GPU machine from the repo root: the fused CUDA kernels (fused_cuda/) against the
# tensor-op path, with one binary (dist/anisoap-candle-cuda, built by scripts/build-cuda.sh):
#   1. fixtures parity, fused and tensor-op, f64 (rtol 1e-10 of the column scale) and f32 (1e-4);
#   2. throughput on benzene-like systems (cutoff 7, width 1.5), lmax 4/6/8, f64/f32,
#      fused vs tensor-op side by side (best of REPS whole `compute` runs);
#   3. --device cuda:0 vs cuda:0,0 (two host threads on one GPU): same .npy (cmp) and throughput;
#   4. a --trace of one large run per path.
# Env: BIN, OUT (default results/tables), COMMIT, GPU_TAG (h200), SIZES (1000000), REPS (2),
#   LMAXES (4 6 8), PARALLEL (parity jobs at once, 6), SKIP_PARITY=1, SKIP_THROUGHPUT=1.
# Writes $OUT/cuda_parity_$GPU_TAG.csv, $OUT/cuda_throughput_$GPU_TAG.csv,
#   $OUT/cuda_multiworker_$GPU_TAG.csv and $OUT/trace_*.json.
set -uo pipefail
BIN="${BIN:-dist/anisoap-candle-cuda}"
OUT="${OUT:-results/tables}"
TAG="${GPU_TAG:-h200}"
SIZES="${SIZES:-1000000}"
REPS="${REPS:-2}"
LMAXES="${LMAXES:-4 6 8}"
PARALLEL="${PARALLEL:-6}"
mkdir -p "$OUT"
BIN="$(realpath "$BIN")"

# Library path once (gpu-check.sh finds the CUDA 13 libraries), then the binary directly.
eval "$(BIN="$BIN" bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
version="$("$BIN" --version 2>&1 | tail -1)"
commit="${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
echo "gpu: $gpu; $version; commit $commit"
tmp="$(mktemp -d)"
export BIN tmp

if [ -z "${SKIP_PARITY:-}" ]; then
  parity_one() { # case dtype quantity path
    local case="$1" dtype="$2" q="$3" path="$4" name rtol flag expected out msg cmp status
    name="$(basename "$case")"
    rtol=1e-10; [ "$dtype" = f32 ] && rtol=1e-4
    flag=""; expected=power_spectrum.npy
    [ "$q" = per-center ] && flag="--per-center" && expected=per_center.npy
    [ "$q" = density ] && flag="--density" && expected=density.npy
    local pflag=""; [ "$path" = tensor-op ] && pflag="--tensor-op-moments"
    out="$tmp/$name-$dtype-$q-$path.npy"
    msg="$(cd "$case" && "$BIN" compute --quiet --device cuda --dtype "$dtype" $flag $pflag --config hypers.json input.xyz -o "$out" 2>&1 | tail -1)"
    if [ -f "$out" ] && cmp="$("$BIN" compare "$out" "$case/$expected" --rtol "$rtol" --atol 0 2>&1 | tail -1)" && [[ "$cmp" != error* ]]; then
      status=PASS
    else
      status=FAIL; cmp="${cmp:-$msg}"
    fi
    echo "$name,$q,$dtype,$path,$rtol,$status,\"$(echo "$cmp" | sed 's/^.* vs [^ ]*: //' | tr -d '"')\""
  }
  export -f parity_one
  echo "case,quantity,dtype,path,rtol,status,detail" > "$OUT/cuda_parity_$TAG.csv"
  start=$(date +%s)
  for case in tests/fixtures/*/; do
    for dtype in f64 f32; do for q in mean per-center density; do for path in fused tensor-op; do
      echo "$case $dtype $q $path"
    done; done; done
  done | xargs -P "$PARALLEL" -n 4 bash -c 'parity_one "$@"' _ | sort >> "$OUT/cuda_parity_$TAG.csv"
  echo "parity: $(grep -c ',PASS,' "$OUT/cuda_parity_$TAG.csv") PASS, $(grep -c ',FAIL,' "$OUT/cuda_parity_$TAG.csv") FAIL in $(( $(date +%s) - start )) s"
  grep ',FAIL,' "$OUT/cuda_parity_$TAG.csv" | head -5
fi

# Runs `compute` with a trace and prints "wall_s pairs read_s prepare_s loop_s search_s chunk_s"
# (wall_s: the command's own timer, reading included; the rest: scripts/trace_split.py).
timed() {
  local line t pairs split
  line="$("$BIN" --trace "$tmp/run.json" compute "$@" 2>&1 | tail -1)"
  t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
  pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
  if [ -z "$t" ]; then echo "ERROR: $line" >&2; echo "nan 0 nan nan nan nan nan nan"; return; fi
  split="$(python3 scripts/trace_split.py "$tmp/run.json" 2>/dev/null || echo nan nan nan nan nan nan)"
  echo "$t $pairs $split"
}
# Best of REPS runs (by wall_s) of `timed ARGS`: sets best_line.
best_of() {
  local rep line best=""
  best_line=""
  for rep in $(seq "$REPS"); do
    line="$(timed "$@")"
    local t="${line%% *}"
    if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best="$t"; best_line="$line"; fi
  done
}

if [ -z "${SKIP_THROUGHPUT:-}" ]; then
  echo "system,particles,pairs,lmax,dtype,path,device,gpu,chunk_pairs,wall_s,pairs_per_s,read_s,prepare_s,loop_s,loop_pairs_per_s,search_s,chunk_s,peak_gpu_mib,reps,commit" > "$OUT/cuda_throughput_$TAG.csv"
  echo "system,particles,pairs,lmax,dtype,devices,output,wall_s,pairs_per_s,read_s,prepare_s,loop_s,loop_pairs_per_s,chunk_s,identical_to_cuda0,commit" > "$OUT/cuda_multiworker_$TAG.csv"
  for n in $SIZES; do
    xyz="$tmp/benzene_$n.xyz"
    "$BIN" generate --kind benzene --particles "$n" --seed 1 -o "$xyz" > /dev/null 2>&1
    for lmax in $LMAXES; do
      for dtype in f64 f32; do
        for path in fused tensor-op; do
          pflag=""; [ "$path" = tensor-op ] && pflag="--tensor-op-moments"
          base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
          nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > "$tmp/mem.log" 2>/dev/null &
          smi=$!
          best_of --device cuda:0 --dtype "$dtype" $pflag --max-angular "$lmax" --cutoff 7.0 --width 1.5 "$xyz" -o "$tmp/out.npy"
          read -r best pairs rd pr lp se ch _stage <<< "$best_line"
          kill $smi 2>/dev/null; wait $smi 2>/dev/null
          peak="$(sort -n "$tmp/mem.log" | tail -1)"
          rate="$(awk "BEGIN{printf \"%.4e\", $pairs / $best}")"
          lrate="$(awk "BEGIN{printf \"%.4e\", $pairs / $lp}")"
          echo "benzene,$n,$pairs,$lmax,$dtype,$path,cuda:0,\"$gpu\",1048576,$best,$rate,$rd,$pr,$lp,$lrate,$se,$ch,$((peak - base)),$REPS,$commit" >> "$OUT/cuda_throughput_$TAG.csv"
          echo "N=$n lmax=$lmax $dtype $path: $best s, $rate pairs/s; read $rd prepare $pr loop $lp s ($lrate pairs/s; search $se chunk $ch); peak +$((peak - base)) MiB"
        done
      done
    done
    # One GPU, one vs two host threads (fused, lmax 6): identical output and throughput.
    for dtype in f64 f32; do
      for out_kind in mean per-center; do
        oflag=""; [ "$out_kind" = per-center ] && oflag="--per-center"
        for devices in cuda:0 cuda:0,0 cuda:0,0,0,0; do
          best_of --device "$devices" --dtype "$dtype" $oflag --max-angular 6 --cutoff 7.0 --width 1.5 "$xyz" -o "$tmp/multi_$devices.npy"
          read -r best pairs rd pr lp se ch _stage <<< "$best_line"
          same=yes; cmp -s "$tmp/multi_$devices.npy" "$tmp/multi_cuda:0.npy" || same=no
          rate="$(awk "BEGIN{printf \"%.4e\", $pairs / $best}")"
          lrate="$(awk "BEGIN{printf \"%.4e\", $pairs / $lp}")"
          echo "benzene,$n,$pairs,6,$dtype,\"$devices\",$out_kind,$best,$rate,$rd,$pr,$lp,$lrate,$ch,$same,$commit" >> "$OUT/cuda_multiworker_$TAG.csv"
          echo "N=$n lmax=6 $dtype $out_kind $devices: $best s, $rate pairs/s; loop $lp s ($lrate pairs/s); identical: $same"
        done
        rm -f "$tmp"/multi_*.npy
      done
    done
    # Traces of one large run per path (lmax 6 f64) and of the two-thread run.
    "$BIN" --trace "$OUT/trace_fused_l6_f64.json" compute --quiet --device cuda:0 --max-angular 6 --cutoff 7.0 --width 1.5 "$xyz" -o "$tmp/t.npy" 2>&1 | tail -1
    "$BIN" --trace "$OUT/trace_tensorop_l6_f64.json" compute --quiet --device cuda:0 --tensor-op-moments --max-angular 6 --cutoff 7.0 --width 1.5 "$xyz" -o "$tmp/t.npy" 2>&1 | tail -1
    "$BIN" --trace "$OUT/trace_fused_l6_f64_2threads.json" compute --quiet --device cuda:0,0 --max-angular 6 --cutoff 7.0 --width 1.5 "$xyz" -o "$tmp/t.npy" 2>&1 | tail -1
  done
fi
rm -rf "$tmp"
