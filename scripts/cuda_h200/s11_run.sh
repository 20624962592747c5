#!/usr/bin/env bash
# Session 11 GPU run (repo root on the H200 host; carry dist/s11.tar.xz, made by
# scripts/cuda_h200/s11_bundle.sh): the CUDA neighbour search (cuda_search.rs) against the host
# search, side by side in one run. dist/s11.tar.xz holds the CUDA CLI (anisoap-candle-cuda), the
# GPU test binaries (cuda_fused, cuda_search) and the original's notebooks/ellipsoids.xyz.
# Writes into $OUT: tests.log, search_split.csv (+ traces), real_dataset_h200.csv.
# Env: STEPS (default "tests bench real"), REPS (2), CONFIGS ("6 f64;6 f32;4 f64;8 f64").
# The measured binary (544d034) took the device counting pass only with ANISOAP_CUDA_COUNTING=1
# ("count" rows); from the next commit on it is the default with the device search, so later
# binaries run "count" for both "device" and "count" (and --host-neighbor-search turns both off).
set -uo pipefail
OUT="${OUT:-/tmp/s11_out}"; mkdir -p "$OUT" /tmp/s11b
STEPS="${STEPS:-tests bench real}"
REPS="${REPS:-2}"
CONFIGS="${CONFIGS:-6 f64;6 f32;4 f64;8 f64}"
tar xJf dist/s11.tar.xz -C /tmp/s11b
BIN=/tmp/s11b/anisoap-candle-cuda
eval "$(BIN=$BIN bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1); cores $(nproc); $($BIN --version | tail -1)" | tee "$OUT/env.txt"

if [[ " $STEPS " == *" tests "* ]]; then
  for t in cuda_search cuda_fused; do
    timeout 150 /tmp/s11b/$t --test-threads 1 > "$OUT/tests_$t.log" 2>&1
    echo "tests $t rc=$?: $(grep -E '^test result' "$OUT/tests_$t.log")"
    grep -E "panicked|FAILED|SKIPPED" "$OUT/tests_$t.log" | head -5
  done
fi

if [[ " $STEPS " == *" bench "* ]]; then
  xyz=/tmp/benzene_1e6.xyz
  $BIN generate --kind benzene --particles 1000000 --seed 1 -o "$xyz" > /dev/null 2>&1
  # Warm-up: the first run on a fresh machine JIT-compiles the NVRTC PTX (~10 s, then cached).
  $BIN generate --kind benzene --particles 2000 --seed 2 -o /tmp/warm.xyz > /dev/null 2>&1
  for c in 0 1; do ANISOAP_CUDA_COUNTING=$c $BIN compute --quiet --device cuda:0 --max-angular 4 --cutoff 7.0 --width 1.5 /tmp/warm.xyz -o /tmp/warm.npy > /dev/null 2>&1; done
  echo "search,lmax,dtype,rep,wall_s,pairs,read_s,prepare_s,loop_s,host_search_s,chunk_s,stage_s,prepare_loop_pairs_per_s" > "$OUT/search_split.csv"
  run() { # search(device|host|count: device search and counting pass) lmax dtype rep
    local flag="" line t pairs rate counting=0
    [ "$1" = host ] && flag="--host-neighbor-search"
    [ "$1" = count ] && counting=1
    line="$(ANISOAP_CUDA_COUNTING=$counting timeout 60 $BIN --trace /tmp/s11_run.json compute --device cuda:0 --dtype "$3" --max-angular "$2" --cutoff 7.0 --width 1.5 $flag "$xyz" -o "/tmp/s11_$1.npy" 2>&1 | tail -1)"
    t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
    pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
    [ -z "$t" ] && { echo "ERROR $1 l$2 $3: $line"; return; }
    read -r rd pr lp se ch st <<< "$(python3 scripts/trace_split.py /tmp/s11_run.json 2>/dev/null || echo nan nan nan nan nan nan)"
    rate="$(awk "BEGIN{printf \"%.4e\", $pairs / ($pr + $lp)}")"
    echo "$1,$2,$3,$4,$t,$pairs,$rd,$pr,$lp,$se,$ch,$st,$rate" >> "$OUT/search_split.csv"
    echo "$1 l$2 $3 rep$4: wall $t; read $rd prepare $pr loop $lp (host search $se chunk $ch stage $st); prepare+loop $rate pairs/s"
    [ "$4" = "$REPS" ] && xz -c /tmp/s11_run.json > "$OUT/trace_$1_l$2_$3.json.xz"
  }
  IFS=';' read -ra cfgs <<< "$CONFIGS"
  for rep in $(seq "$REPS"); do
    for cfg in "${cfgs[@]}"; do
      set -- $cfg
      run device "$1" "$2" "$rep"
      run host "$1" "$2" "$rep"
      run count "$1" "$2" "$rep"
      cmp -s /tmp/s11_device.npy /tmp/s11_host.npy && echo "identical l$1 $2" || echo "DIFFERENT l$1 $2"
      cmp -s /tmp/s11_count.npy /tmp/s11_host.npy && echo "identical (counting) l$1 $2" || echo "DIFFERENT (counting) l$1 $2"
    done
  done
fi

if [[ " $STEPS " == *" real "* ]]; then
  # The original's dataset, its example 2 (whole command, best of 3 interleaved).
  R="--max-angular 9 --max-radial 6 --cutoff 7.0 --width 1.5 --subtract-center-contribution --semi-axes 4,4,0.5 --basis-rcond 1e-8 --basis-tol 1e-3"
  echo "search,device,rep,wall_s,status" > "$OUT/real_dataset_h200.csv"
  for rep in 1 2 3; do for s in device host count; do
    flag=""; [ "$s" = host ] && flag="--host-neighbor-search"
    c=0; [ "$s" = count ] && c=1
    b=$(date +%s.%N); ANISOAP_CUDA_COUNTING=$c timeout 60 $BIN compute --quiet --device cuda:0 $R $flag /tmp/s11b/ellipsoids.xyz -o /tmp/real_$s.npy > /tmp/real.log 2>&1; rc=$?; e=$(date +%s.%N)
    echo "$s,cuda:0,$rep,$(awk "BEGIN{print $e-$b}"),$rc" >> "$OUT/real_dataset_h200.csv"
  done; done
  cmp -s /tmp/real_device.npy /tmp/real_host.npy && echo "real: device/host search identical" || echo "real: device/host search DIFFER"
  cmp -s /tmp/real_count.npy /tmp/real_host.npy && echo "real: counting/host identical" || echo "real: counting/host DIFFER"
  cat "$OUT/real_dataset_h200.csv"
fi
