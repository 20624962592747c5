#!/usr/bin/env bash
# Session 12, issue 13 on the H200 (repo root; carry dist/s12.tar.xz from
# scripts/cuda_h200/s11_bundle.sh): the GPU tests (tests/cuda_fused.rs, with the differentiable
# CUDA op against tensor-op autograd), then examples/forces_cost on cuda:0 — 1000 particles
# with both paths (the fused CUDA op with its analytic backward, and the tensor-op oracle side
# by side), then FORCES_COST_PARTICLES (default "10000 100000") with the fused path only.
# Writes into $OUT: tests_cuda_fused.log, forces_cost_cuda0*.json, forces.log.
set -uo pipefail
OUT="${OUT:-/tmp/s12_forces}"; mkdir -p "$OUT" /tmp/b12
SIZES="${SIZES:-10000 100000}"
tar xJf dist/s12.tar.xz -C /tmp/b12
eval "$(BIN=/tmp/b12/anisoap-candle-cuda bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
if [ -z "${SKIP_TESTS:-}" ]; then
  timeout 200 /tmp/b12/cuda_fused --test-threads 1 --nocapture > "$OUT/tests_cuda_fused.log" 2>&1
  echo "tests cuda_fused rc=$?: $(grep -E '^test result' "$OUT/tests_cuda_fused.log")"
  grep -E "panicked|FAILED|largest entry" "$OUT/tests_cuda_fused.log" | head -20
fi
{
  FORCES_COST_DIR="$OUT" timeout 200 /tmp/b12/forces_cost cuda:0
  for n in $SIZES; do
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > /tmp/mem_$n.log 2>/dev/null & smi=$!
    FORCES_COST_PARTICLES=$n FORCES_COST_PATH=fused FORCES_COST_DIR="$OUT" timeout 240 /tmp/b12/forces_cost cuda:0
    echo "rc=$? particles $n; peak GPU memory $(sort -n /tmp/mem_$n.log | tail -1) MiB"
    kill $smi 2>/dev/null; wait $smi 2>/dev/null
  done
} 2>&1 | tee "$OUT/forces.log"
