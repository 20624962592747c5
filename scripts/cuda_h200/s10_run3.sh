#!/usr/bin/env bash
# Session 10, GPU run 3 (repo root on the H200 host; carry dist/s10 and dist/roofline-bundle.tar.xz).
# dist/s10: old (session-9 CLI), new (this session's CLI, three-stage chunk pipeline), cuda_fused
# (GPU tests), xyz_before / xyz_new (examples/xyz_read_bench against the old / new reader),
# ellipsoids.xyz.xz (upstream notebooks/ellipsoids.xyz). Writes into $OUT:
#   tests_cuda_fused.log, host_split3.csv (+ traces), real_dataset_h200.csv,
#   xyz_read_h200.csv, roofline/ (peaks), threads/ (threads sweep of the CPU backend).
set -uo pipefail
OUT="${OUT:-/tmp/s10_out}"; mkdir -p "$OUT" /tmp/s10b
for b in old new cuda_fused xyz_before xyz_new; do xz -dc "dist/s10/$b.xz" > "/tmp/s10b/$b"; chmod +x "/tmp/s10b/$b"; done
xz -dc dist/s10/ellipsoids.xyz.xz > /tmp/ellipsoids.xyz
export BIN=/tmp/s10b/new
eval "$(BIN=$BIN bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1); cores $(nproc)" | tee "$OUT/env.txt"
( cd anisoap-candle && timeout 150 /tmp/s10b/cuda_fused --nocapture --test-threads 1 ) > "$OUT/tests_cuda_fused.log" 2>&1
echo "cuda_fused rc=$?"; grep -E "test result|FAILED|panicked" "$OUT/tests_cuda_fused.log" | head -5
# The original's dataset, its example 2 (whole command, best of 3 interleaved).
R="--max-angular 9 --max-radial 6 --cutoff 7.0 --width 1.5 --subtract-center-contribution --semi-axes 4,4,0.5 --basis-rcond 1e-8 --basis-tol 1e-3"
echo "binary,device,rep,wall_s,status" > "$OUT/real_dataset_h200.csv"
for rep in 1 2 3; do for b in old new; do for dev in cuda:0 cpu; do
  s=$(date +%s.%N); /tmp/s10b/$b compute --quiet --device $dev $R /tmp/ellipsoids.xyz -o /tmp/real_${b}_$dev.npy > /tmp/real.log 2>&1; rc=$?; e=$(date +%s.%N)
  echo "$b,$dev,$rep,$(awk "BEGIN{print $e-$s}"),$rc" >> "$OUT/real_dataset_h200.csv"
done; done; done
for dev in cuda:0 cpu; do cmp -s /tmp/real_old_$dev.npy /tmp/real_new_$dev.npy && echo "real $dev: old/new identical" || echo "real $dev: old/new DIFFER"; done
/tmp/s10b/new compare /tmp/real_new_cuda:0.npy /tmp/real_new_cpu.npy --rtol 1e-10 2>&1 | tail -1
cat "$OUT/real_dataset_h200.csv"
xyz=/tmp/benzene_1e6.xyz
/tmp/s10b/new generate --kind benzene --particles 1000000 --seed 1 -o "$xyz" > /dev/null 2>&1
echo "binary,devices,lmax,dtype,rep,wall_s,pairs,read_s,prepare_s,loop_s,search_s,chunk_s,prepare_loop_pairs_per_s" > "$OUT/host_split3.csv"
run() { # binary devices lmax dtype rep
  local line t pairs
  line="$(/tmp/s10b/$1 --trace /tmp/s10_run.json compute --device "$2" --dtype "$4" --max-angular "$3" --cutoff 7.0 --width 1.5 "$xyz" -o "/tmp/s10_$1_$2.npy" 2>&1 | tail -1)"
  t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
  pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
  read -r rd pr lp se ch <<< "$(python3 scripts/trace_split.py /tmp/s10_run.json 2>/dev/null || echo nan nan nan nan nan)"
  local rate; rate="$(awk "BEGIN{printf \"%.4e\", $pairs / ($pr + $lp)}")"
  echo "$1,\"$2\",$3,$4,$5,$t,$pairs,$rd,$pr,$lp,$se,$ch,$rate" >> "$OUT/host_split3.csv"
  echo "$1 $2 l$3 $4 rep$5: wall $t; read $rd prepare $pr loop $lp (search $se chunk $ch); prepare+loop $rate pairs/s"
  [ "$5" = 2 ] && [ "$2" = cuda:0 ] && [ "$1" = new ] && xz -c /tmp/s10_run.json > "$OUT/trace3_$1_l$3_$4.json.xz"
}
for rep in 1 2 3; do
  for cfg in "6 f64" "6 f32" "4 f64" "8 f64"; do
    set -- $cfg
    run old cuda:0 "$1" "$2" $rep
    run new cuda:0 "$1" "$2" $rep
    cmp -s /tmp/s10_old_cuda:0.npy /tmp/s10_new_cuda:0.npy && echo "identical l$1 $2" || echo "DIFFERENT l$1 $2"
  done
done
run new cuda:0,0 6 f64 1; run new cuda:0,0 6 f64 2
# XYZ reading speed, old vs new reader, on this host's cores.
BIN=/tmp/s10b/xyz_new BEFORE=/tmp/s10b/xyz_before timeout 150 bash scripts/measure_xyz_read.sh > "$OUT/xyz_read_h200.csv" 2> "$OUT/xyz_read_h200.log"; echo "xyz rc=$?"; cat "$OUT/xyz_read_h200.csv" | head -30
# Peaks for the roofline note.
OUT="$OUT/roofline" timeout 90 bash scripts/roofline_gpu.sh run 2>&1 | tail -8
# Threads sweep of the CPU backend on this 16-core host.
BIN=/tmp/s10b/new OUT="$OUT/threads" COMMIT=0959295 timeout 180 bash scripts/threads_sweep_gpu_host.sh 2>&1 | tail -8
