#!/usr/bin/env bash
# Session 10, GPU run 2 (from the repo root on the H200 host): dist/s10/{old,new,cuda_fused}.xz
# (session-9 CLI, this session's CLI, this session's GPU test binary) and the upstream
# ellipsoids.xyz (dist/s10/ellipsoids.xyz.xz). Writes into $OUT:
#   tests_cuda_fused.log    tests/cuda_fused.rs on the GPU (smooth-cutoff case included)
#   cuda_parity_h200.csv    every fixture x quantity x dtype x path vs the original's output
#   host_split2.csv         old vs new (cuda:0 and cuda:0,0,0,0), 1e6 benzene, read/prepare/loop
#   real_dataset_h200.csv   the original's dataset, example 2, whole command, best of 3
set -uo pipefail
OUT="${OUT:-/tmp/s10_out}"; mkdir -p "$OUT" /tmp/s10b
for b in old new cuda_fused; do xz -dc "dist/s10/$b.xz" > "/tmp/s10b/$b"; chmod +x "/tmp/s10b/$b"; done
xz -dc dist/s10/ellipsoids.xyz.xz > /tmp/ellipsoids.xyz
export BIN=/tmp/s10b/new
eval "$(BIN=$BIN bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
echo "gpu: $gpu; cores $(nproc)" | tee "$OUT/env.txt"
( cd anisoap-candle && timeout 150 /tmp/s10b/cuda_fused --nocapture --test-threads 1 ) > "$OUT/tests_cuda_fused.log" 2>&1
echo "cuda_fused rc=$?"; grep -E "test result|FAILED|panicked" "$OUT/tests_cuda_fused.log" | head
OUT_SUITE=/tmp/s10_suite; mkdir -p $OUT_SUITE
OUT=$OUT_SUITE GPU_TAG=h200 COMMIT="${COMMIT:-unknown}" SKIP_THROUGHPUT=1 timeout 200 bash scripts/gpu-fused-suite.sh 2>&1 | tail -4
cp $OUT_SUITE/cuda_parity_h200.csv "$OUT/"
# The original's dataset, example 2 (whole command, best of 3) on cuda:0, f64.
echo "system,implementation,device,threads,rep,wall_s" > "$OUT/real_dataset_h200.csv"
for rep in 1 2 3; do
  for b in old new; do
    s=$(date +%s.%N)
    /tmp/s10b/$b compute --quiet --device cuda:0 --max-angular 9 --max-radial 6 --cutoff 7.0 --width 1.5 --subtract-center-contribution --semi-axes 4,4,0.5 /tmp/ellipsoids.xyz -o /tmp/real_$b.npy > /dev/null 2>&1
    e=$(date +%s.%N)
    echo "ellipsoids.xyz example 2,anisoap-candle-$b,cuda:0 H200,$(nproc),$rep,$(awk "BEGIN{print $e-$s}")" >> "$OUT/real_dataset_h200.csv"
  done
done
cmp -s /tmp/real_old.npy /tmp/real_new.npy && echo "real dataset: old/new identical" || echo "real dataset: old/new DIFFER"
cat "$OUT/real_dataset_h200.csv"
xyz=/tmp/benzene_1e6.xyz
/tmp/s10b/new generate --kind benzene --particles 1000000 --seed 1 -o "$xyz" > /dev/null 2>&1
echo "binary,devices,lmax,dtype,rep,wall_s,pairs,read_s,prepare_s,loop_s,search_s,chunk_s,prepare_loop_pairs_per_s" > "$OUT/host_split2.csv"
run() { # binary devices lmax dtype rep
  local line t pairs split
  line="$(/tmp/s10b/$1 --trace /tmp/s10_run.json compute --device "$2" --dtype "$4" --max-angular "$3" --cutoff 7.0 --width 1.5 "$xyz" -o "/tmp/s10_$1_$2.npy" 2>&1 | tail -1)"
  t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
  pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
  read -r rd pr lp se ch <<< "$(python3 scripts/trace_split.py /tmp/s10_run.json 2>/dev/null || echo nan nan nan nan nan)"
  local rate; rate="$(awk "BEGIN{printf \"%.4e\", $pairs / ($pr + $lp)}")"
  echo "$1,\"$2\",$3,$4,$5,$t,$pairs,$rd,$pr,$lp,$se,$ch,$rate" >> "$OUT/host_split2.csv"
  echo "$1 $2 l$3 $4 rep$5: wall $t; read $rd prepare $pr loop $lp (search $se chunk $ch); prepare+loop $rate pairs/s"
  [ "$5" = 2 ] && cp /tmp/s10_run.json "$OUT/trace2_$1_$(echo $2 | tr ',:' '__')_l$3_$4.json"
}
for rep in 1 2; do
  for cfg in "6 f64" "6 f32" "4 f64" "8 f64"; do
    set -- $cfg
    run old cuda:0 "$1" "$2" $rep
    run new cuda:0 "$1" "$2" $rep
    run new cuda:0,0,0,0 "$1" "$2" $rep
    cmp -s /tmp/s10_old_cuda:0.npy /tmp/s10_new_cuda:0.npy && cmp -s /tmp/s10_new_cuda:0.npy "/tmp/s10_new_cuda:0,0,0,0.npy" && echo "identical l$1 $2" || echo "DIFFERENT l$1 $2"
  done
done
# Smooth-cutoff cost on the GPU (issue 13), fused and tensor-op, N = 1e5, alternating runs.
DEVICE=cuda:0 BIN=/tmp/s10b/new BACKENDS="fused tensor-op" N=100000 REPS=3 timeout 90 bash scripts/measure_smooth_cutoff.sh "$OUT/smooth_cutoff_cost_h200.csv" 2>&1 | tail -3
