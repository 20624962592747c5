#!/usr/bin/env bash
# Session 12 GPU run (repo root on the H200 host): the new bundle against session 11's, side by
# side in one run. Carry dist/s12.tar.xz (new) and dist/s11.tar.xz (session 11's binary, the
# baseline), both made by scripts/cuda_h200/s11_bundle.sh [OUTPUT].
# Writes into $OUT: env.txt, tests_*.log, cuda_parity_h200.csv (the fixtures, through
# scripts/gpu-fused-suite.sh), bench.csv, chunks.csv, real_dataset.csv, traces.tar (the last
# repetition's --trace of each bench/chunks run), nsys_*.txt when Nsight Systems is installed.
# Env: STEPS (default "tests parity bench chunks real nsys"), REPS (2),
# CONFIGS ("6 f64;6 f32;4 f64;8 f64").
set -uo pipefail
OUT="${OUT:-/tmp/s12_out}"; mkdir -p "$OUT" /tmp/b12 /tmp/b11 /tmp/s12_traces
STEPS="${STEPS:-tests parity bench chunks real nsys}"
REPS="${REPS:-2}"
CONFIGS="${CONFIGS:-6 f64;6 f32;4 f64;8 f64}"
tar xJf dist/s12.tar.xz -C /tmp/b12
tar xJf dist/s11.tar.xz -C /tmp/b11
NEW=/tmp/b12/anisoap-candle-cuda
OLD=/tmp/b11/anisoap-candle-cuda
eval "$(BIN=$NEW bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
# Session 11's binary took the device counting pass only with this set (later ones ignore it).
export ANISOAP_CUDA_COUNTING=1
echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1); cores $(nproc); new $($NEW --version | tail -1); old $($OLD --version | tail -1)" | tee "$OUT/env.txt"

if [[ " $STEPS " == *" tests "* ]]; then
  # The GPU tests with the baked pair kernel (default) and the table kernel.
  for t in cuda_search cuda_fused cuda_fused:tables; do
    name="${t%%:*}"; kernel=baked; [ "$t" != "$name" ] && kernel=tables
    ANISOAP_CUDA_KERNEL=$kernel timeout 240 /tmp/b12/$name --test-threads 1 --nocapture > "$OUT/tests_${name}_$kernel.log" 2>&1
    echo "tests $name ($kernel kernel) rc=$?: $(grep -E '^test result' "$OUT/tests_${name}_$kernel.log")"
    grep -E "panicked|FAILED|SKIPPED" "$OUT/tests_${name}_$kernel.log" | head -5
  done
fi

if [[ " $STEPS " == *" parity "* ]]; then
  BIN=$NEW OUT="$OUT" SKIP_THROUGHPUT=1 COMMIT="${COMMIT:-s12}" bash scripts/gpu-fused-suite.sh 2>&1 | tail -3
fi

xyz=/tmp/benzene_1e6.xyz
$NEW generate --kind benzene --particles 1000000 --seed 1 -o "$xyz" > /dev/null 2>&1
# Warm-up: the first run on a fresh machine JIT-compiles the PTX (then cached).
$NEW generate --kind benzene --particles 2000 --seed 2 -o /tmp/warm.xyz > /dev/null 2>&1
for b in $NEW $OLD; do for d in f64 f32; do
  $b compute --quiet --device cuda:0 --dtype $d --max-angular 6 --cutoff 7.0 --width 1.5 /tmp/warm.xyz -o /tmp/warm.npy > /dev/null 2>&1
done; done

run() { # binary(new|tables|old) lmax dtype rep chunk_pairs -> one CSV line in $OUT/$csv
  # new: the pair kernel with the basis baked in; tables: the same binary with the table
  # kernel (ANISOAP_CUDA_KERNEL=tables); old: session 11's binary.
  # profile: the new binary with ANISOAP_CUDA_PROFILE=1 (a device sync inside each kernel's
  # trace span: per-kernel device times; not a throughput run).
  local bin=$NEW line t pairs rate peak base smi kernel=baked profile=0
  [ "$1" = old ] && bin=$OLD
  [ "$1" = tables ] && kernel=tables
  [ "$1" = profile ] && profile=1
  base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > /tmp/mem.log 2>/dev/null & smi=$!
  line="$(ANISOAP_CUDA_PROFILE=$profile ANISOAP_CUDA_KERNEL=$kernel timeout 60 $bin --trace /tmp/s12.json compute --device cuda:0 --dtype "$3" --chunk-pairs "$5" --max-angular "$2" --cutoff 7.0 --width 1.5 "$xyz" -o "/tmp/s12_$1_l$2_$3_$5.npy" 2>&1 | tail -1)"
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  peak="$(sort -n /tmp/mem.log | tail -1)"; peak=$((peak - base))
  t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
  pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
  [ -z "$t" ] && { echo "ERROR $1 l$2 $3 chunk $5: $line"; return; }
  read -r rd pr lp se ch st <<< "$(python3 scripts/trace_split.py /tmp/s12.json 2>/dev/null || echo nan nan nan nan nan nan)"
  rate="$(awk "BEGIN{printf \"%.4e\", $pairs / ($pr + $lp)}")"
  echo "$1,$2,$3,$4,$5,$t,$pairs,$rd,$pr,$lp,$ch,$rate,$peak" >> "$OUT/$csv"
  echo "$1 l$2 $3 rep$4 chunk $5: wall $t; read $rd prepare $pr loop $lp (chunk $ch); prepare+loop $rate pairs/s; peak GPU $peak MiB"
  [ "$4" = "$REPS" ] && xz -c /tmp/s12.json > "/tmp/s12_traces/trace_$1_l$2_$3_c$5.json.xz"
}
HEADER="binary,lmax,dtype,rep,chunk_pairs,wall_s,pairs,read_s,prepare_s,loop_s,chunk_s,prepare_loop_pairs_per_s,peak_gpu_mib"

if [[ " $STEPS " == *" bench "* ]]; then
  csv=bench.csv; echo "$HEADER" > "$OUT/$csv"
  IFS=';' read -ra cfgs <<< "$CONFIGS"
  for rep in $(seq "$REPS"); do for cfg in "${cfgs[@]}"; do
    set -- $cfg
    run new "$1" "$2" "$rep" 1048576
    run tables "$1" "$2" "$rep" 1048576
    run old "$1" "$2" "$rep" 1048576
    [ "$rep" = "$REPS" ] && run profile "$1" "$2" "$rep" 1048576
    # New vs old: the power spectrum is summed in another order (tolerance: f64 1e-10, f32 1e-4).
    tol=1e-10; [ "$2" = f32 ] && tol=1e-4
    echo "compare l$1 $2 new vs old: $($NEW compare --rtol $tol /tmp/s12_new_l$1_$2_1048576.npy /tmp/s12_old_l$1_$2_1048576.npy 2>&1 | tail -1)"
    echo "compare l$1 $2 baked vs tables: $($NEW compare --rtol $tol /tmp/s12_new_l$1_$2_1048576.npy /tmp/s12_tables_l$1_$2_1048576.npy 2>&1 | tail -1)"
  done; done
fi

if [[ " $STEPS " == *" chunks "* ]]; then
  csv=chunks.csv; echo "$HEADER" > "$OUT/$csv"
  for rep in $(seq "$REPS"); do for chunk in 1048576 4194304 16777216; do for d in f64 f32; do
    run new 6 $d "$rep" $chunk
  done; done; done
fi

if [[ " $STEPS " == *" real "* ]]; then
  # The original's dataset, its example 2 (whole command, best of 3 interleaved).
  R="--max-angular 9 --max-radial 6 --cutoff 7.0 --width 1.5 --subtract-center-contribution --semi-axes 4,4,0.5 --basis-rcond 1e-8 --basis-tol 1e-3"
  echo "binary,rep,wall_s,status" > "$OUT/real_dataset.csv"
  for rep in 1 2 3; do for b in new old; do
    bin=$NEW; [ $b = old ] && bin=$OLD
    s=$(date +%s.%N); timeout 60 $bin compute --quiet --device cuda:0 $R /tmp/b12/ellipsoids.xyz -o /tmp/real_$b.npy > /tmp/real.log 2>&1; rc=$?; e=$(date +%s.%N)
    echo "$b,$rep,$(awk "BEGIN{print $e-$s}"),$rc" >> "$OUT/real_dataset.csv"
  done; done
  echo "real new vs old: $($NEW compare /tmp/real_new.npy /tmp/real_old.npy 2>&1 | tail -1)"
  cat "$OUT/real_dataset.csv"
fi

if [[ " $STEPS " == *" nsys "* ]]; then
  if command -v nsys > /dev/null; then
    for d in f64 f32; do
      timeout 120 nsys profile -o /tmp/nsys_$d --force-overwrite true $NEW compute --quiet --device cuda:0 --dtype $d --max-angular 6 --cutoff 7.0 --width 1.5 "$xyz" -o /tmp/nsys.npy > /dev/null 2>&1
      timeout 60 nsys stats --report cuda_gpu_kern_sum,cuda_gpu_mem_time_sum /tmp/nsys_$d.nsys-rep > "$OUT/nsys_$d.txt" 2>&1
      head -30 "$OUT/nsys_$d.txt"
    done
  else
    echo "nsys not installed: no kernel-time breakdown" | tee "$OUT/nsys_missing.txt"
  fi
fi
tar cf "$OUT/traces.tar" -C /tmp/s12_traces .
