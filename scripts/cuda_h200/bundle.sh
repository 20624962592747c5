#!/usr/bin/env bash
# Builds what the H200 runs of issue 12 (GPU) carried: the CUDA CLI, the GPU test binary
# (tests/cuda_fused.rs) and examples/cuda_kernel_bench, stripped, in dist/gpu-bundle.tar.xz
# (~18 MB; the device tool carries at most 64 MiB). Then, on the GPU machine from the repo root:
#   bash scripts/cuda_h200/run1.sh   # GPU tests, kernel bench, parity + throughput suite
#   bash scripts/cuda_h200/run2.sh   # throughput, multi-worker and traces (REPS=3)
#   bash scripts/cuda_h200/run3.sh   # glibc malloc tunables vs plain (host noise)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
scripts/build-cuda.sh
eval "$(scripts/build-cuda.sh env)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target-cuda}"
test_bin="$(cargo test --release -p anisoap-candle --features cuda --test cuda_fused --no-run \
  --message-format=json 2>/dev/null | sed -n 's/.*"executable":"\([^"]*cuda_fused[^"]*\)".*/\1/p' | tail -1)"
cargo build --release -p anisoap-candle --features cuda --example cuda_kernel_bench
tmp="$(mktemp -d)"
cp dist/anisoap-candle-cuda "$tmp/"
cp "$test_bin" "$tmp/cuda_fused"
cp "$CARGO_TARGET_DIR/release/examples/cuda_kernel_bench" "$tmp/"
strip "$tmp"/*
(cd "$tmp" && tar cf - anisoap-candle-cuda cuda_fused cuda_kernel_bench) | xz -T2 -6 > dist/gpu-bundle.tar.xz
rm -rf "$tmp"
ls -la dist/gpu-bundle.tar.xz
