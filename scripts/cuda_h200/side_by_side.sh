#!/usr/bin/env bash
# GPU benchmark of several binaries and kernel settings side by side in one run, on the H200
# host from the repository root (the runs of session 15 on; earlier sessions' sNN_run.sh are
# the same idea with the variants written out).
#   BUNDLES   "NAME=TARBALL ..." bundles of scripts/cuda_h200/s11_bundle.sh, or tarballs holding
#             just anisoap-candle-cuda; the first is the one under test (its cuda_fused and
#             cuda_search are the GPU tests)
#   VARIANTS  "NAME[:SETTING] ..." runs of the bench, SETTING one of parts=N
#             (ANISOAP_CUDA_PARTS: warps per block of the baked pair kernel), tables
#             (ANISOAP_CUDA_KERNEL=tables), profile (ANISOAP_CUDA_PROFILE=1: a device sync in
#             every kernel's span, so scripts/trace_spans.py gives per-kernel device times; not
#             a throughput run); outputs are compared with the last variant's
#   CONFIGS   "LMAX DTYPE;..." (default "6 f64;6 f32;4 f64;8 f64"), REPS (3)
#   STEPS     "tests bench real" (default all), REAL: the original's notebooks/ellipsoids.xyz
# The system: 10^6 benzene-like particles (cutoff 7, width 1.5), parsed frames -> features.
# Writes $OUT/all.tar: env.txt, tests_*.log, bench.csv, compare.txt, spans_*.txt, real_dataset.csv.
set -uo pipefail
OUT="${OUT:-/tmp/sbs_out}"; mkdir -p "$OUT"
STEPS="${STEPS:-tests bench real}"
REPS="${REPS:-3}"
CONFIGS="${CONFIGS:-6 f64;6 f32;4 f64;8 f64}"
declare -A BIN
first=""
for b in $BUNDLES; do
  name="${b%%=*}"; tarball="${b#*=}"
  mkdir -p "/tmp/sbs_$name" && tar xJf "$tarball" -C "/tmp/sbs_$name"
  BIN[$name]="/tmp/sbs_$name/anisoap-candle-cuda"
  [ -z "$first" ] && first="$name"
done
NEW="${BIN[$first]}"
eval "$(BIN=$NEW bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
{
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1); cores $(nproc)"
  for n in "${!BIN[@]}"; do echo "$n: $(${BIN[$n]} --version | tail -1)"; done
} | tee "$OUT/env.txt"

if [[ " $STEPS " == *" tests "* ]]; then
  # Every GPU test with the defaults; the pair-kernel and calculator tests with the table
  # kernel and with 1 and 8 warps per block.
  for t in cuda_search: cuda_fused: cuda_fused:tables cuda_fused:parts=1 cuda_fused:parts=8; do
    exe="${t%%:*}"; setting="${t#*:}"; kernel=baked; parts=""; filter=()
    [ "$setting" = tables ] && kernel=tables
    [[ "$setting" == parts=* ]] && parts="${setting#parts=}"
    [ -n "$setting" ] && filter=(cuda_pair_coefficients_equal_tensor_ops cuda_fused_calculator_matches_reference)
    log="$OUT/tests_${exe}_${setting:-default}.log"
    ANISOAP_CUDA_KERNEL=$kernel ANISOAP_CUDA_PARTS=$parts timeout 240 "/tmp/sbs_$first/$exe" "${filter[@]}" --test-threads 1 --nocapture > "$log" 2>&1
    echo "tests $exe (${setting:-default}) rc=$?: $(grep -E '^test result' "$log")"
    grep -E "panicked|FAILED|SKIPPED" "$log" | head -5
  done
fi

run() { # variant lmax dtype rep -> one line of bench.csv
  local v="$1" name="${1%%:*}" setting="" kernel=baked parts="" profile=0 line t pairs peak base smi
  [[ "$v" == *:* ]] && setting="${v#*:}"
  [ "$setting" = tables ] && kernel=tables
  [ "$setting" = profile ] && profile=1
  [[ "$setting" == parts=* ]] && parts="${setting#parts=}"
  local tag="${v//[:=]/_}" npy="/tmp/sbs_${1//[:=]/_}_l$2_$3.npy"
  base="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 20 > /tmp/sbs_mem.log 2>/dev/null & smi=$!
  line="$(ANISOAP_CUDA_PROFILE=$profile ANISOAP_CUDA_KERNEL=$kernel ANISOAP_CUDA_PARTS=$parts timeout 60 "${BIN[$name]}" --trace /tmp/sbs.json compute --device cuda:0 --dtype "$3" --max-angular "$2" --cutoff 7.0 --width 1.5 "$xyz" -o "$npy" 2>&1 | tail -1)"
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  peak="$(sort -n /tmp/sbs_mem.log | tail -1)"; peak=$((peak - base))
  t="$(echo "$line" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')"
  pairs="$(echo "$line" | sed -n 's/.* frames, \([0-9]*\) pairs.*/\1/p')"
  [ -z "$t" ] && { echo "ERROR $v l$2 $3: $line"; return; }
  read -r rd pr lp se ch st <<< "$(python3 scripts/trace_split.py /tmp/sbs.json 2>/dev/null || echo nan nan nan nan nan nan)"
  rate="$(awk "BEGIN{printf \"%.4e\", $pairs / ($pr + $lp)}")"
  echo "$v,$2,$3,$4,$t,$pairs,$rd,$pr,$lp,$ch,$rate,$peak" >> "$OUT/bench.csv"
  echo "$v l$2 $3 rep$4: wall $t; read $rd prepare $pr loop $lp; prepare+loop $rate pairs/s; peak GPU $peak MiB"
  if [ "$profile" = 1 ] || [ "$4" = "$REPS" ]; then
    python3 scripts/trace_spans.py /tmp/sbs.json > "$OUT/spans_${tag}_l$2_$3.txt" 2>&1
  fi
}

if [[ " $STEPS " == *" bench "* ]]; then
  xyz=/tmp/benzene_1e6.xyz
  $NEW generate --kind benzene --particles 1000000 --seed 1 -o "$xyz" > /dev/null 2>&1
  # Warm-up: the first run on a fresh machine JIT-compiles the PTX (then cached).
  $NEW generate --kind benzene --particles 2000 --seed 2 -o /tmp/warm.xyz > /dev/null 2>&1
  for n in "${!BIN[@]}"; do for d in f64 f32; do
    ${BIN[$n]} compute --quiet --device cuda:0 --dtype $d --max-angular 6 --cutoff 7.0 --width 1.5 /tmp/warm.xyz -o /tmp/warm.npy > /dev/null 2>&1
  done; done
  echo "variant,lmax,dtype,rep,wall_s,pairs,read_s,prepare_s,loop_s,chunk_s,prepare_loop_pairs_per_s,peak_gpu_mib" > "$OUT/bench.csv"
  IFS=';' read -ra cfgs <<< "$CONFIGS"
  read -ra variants <<< "$VARIANTS"
  last="${variants[-1]}"
  for rep in $(seq "$REPS"); do for cfg in "${cfgs[@]}"; do
    set -- $cfg
    for v in "${variants[@]}"; do
      [[ "$v" == *:profile ]] && [ "$rep" != "$REPS" ] && continue
      run "$v" "$1" "$2" "$rep"
    done
    if [ "$rep" = "$REPS" ]; then
      tol=1e-10; [ "$2" = f32 ] && tol=1e-4
      for v in "${variants[@]}"; do
        [ "$v" = "$last" ] && continue
        echo "l$1 $2 $v vs $last: $($NEW compare --rtol $tol /tmp/sbs_${v//[:=]/_}_l$1_$2.npy /tmp/sbs_${last//[:=]/_}_l$1_$2.npy 2>&1 | tail -1)" | tee -a "$OUT/compare.txt"
      done
    fi
  done; done
fi

if [[ " $STEPS " == *" real "* ]] && [ -s "${REAL:-}" ]; then
  # The original's dataset as its example 2 sets it up (whole command, best of 3 interleaved).
  R="--max-angular 9 --max-radial 6 --cutoff 7.0 --width 1.5 --subtract-center-contribution --semi-axes 4,4,0.5 --basis-rcond 1e-8 --basis-tol 1e-3"
  echo "binary,rep,wall_s,status" > "$OUT/real_dataset.csv"
  for rep in 1 2 3; do for n in "${!BIN[@]}"; do
    s=$(date +%s.%N); timeout 60 ${BIN[$n]} compute --quiet --device cuda:0 $R "$REAL" -o "/tmp/real_$n.npy" > /tmp/real.log 2>&1; rc=$?; e=$(date +%s.%N)
    echo "$n,$rep,$(awk "BEGIN{print $e-$s}"),$rc" >> "$OUT/real_dataset.csv"
  done; done
  for n in "${!BIN[@]}"; do
    [ "$n" = "$first" ] || echo "real $first vs $n: $($NEW compare /tmp/real_$first.npy /tmp/real_$n.npy 2>&1 | tail -1)" | tee -a "$OUT/compare.txt"
  done
  cat "$OUT/real_dataset.csv"
fi
# One archive back from the device (it returns a limited number of files).
(cd "$OUT" && tar cf all.tar --exclude all.tar . && find . -type f ! -name all.tar -delete)
