#!/usr/bin/env bash
# Issue 12, roofline note (results/roofline.md), GPU side: the peaks measured on the GPU host
# (examples/peak_flops: candle matmul 2048^3 / 8192^3, f64 and f32, on cuda:0 and on the
# host's cores) and, when Nsight Compute (ncu) is installed, the fused pair kernel's achieved
# occupancy, issue slots, L1/shared and DRAM throughput for lmax 4/6/8
# (examples/cuda_kernel_bench on 2^18 pairs).
#
#   bash scripts/roofline_gpu.sh bundle   # here (no GPU): dist/roofline-bundle.tar.xz (carry dist/)
#   bash scripts/roofline_gpu.sh run      # on the GPU host, repo root; writes $OUT (default /tmp/roofline_out)
#
# Outputs: $OUT/peak_flops_gpu.csv, $OUT/peak_flops_host.csv, $OUT/ncu_pair_kernel.csv (or a
# line saying ncu is absent), $OUT/env.txt. Put the measured peaks into
# results/tables/peak_flops.csv (replacing the datasheet rows) and the fractions into
# results/roofline.md.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODE="${1:-run}"

if [ "$MODE" = bundle ]; then
  set -e
  scripts/build-cuda.sh toolkit
  eval "$(scripts/build-cuda.sh env)"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target-cuda}"
  nice -n 19 cargo build --release -p anisoap-candle --features cuda \
    --example peak_flops --example cuda_kernel_bench
  tmp="$(mktemp -d)"
  cp "$CARGO_TARGET_DIR/release/examples/peak_flops" "$CARGO_TARGET_DIR/release/examples/cuda_kernel_bench" "$tmp/"
  strip "$tmp"/*
  mkdir -p dist
  (cd "$tmp" && tar cf - peak_flops cuda_kernel_bench) | xz -T2 -6 > dist/roofline-bundle.tar.xz
  rm -rf "$tmp"
  ls -la dist/roofline-bundle.tar.xz
  exit 0
fi

[ "$MODE" = run ] || { echo "usage: $0 bundle|run" >&2; exit 2; }
OUT="${OUT:-/tmp/roofline_out}"; mkdir -p "$OUT" /tmp/roofline_b
python3 -c "import lzma,tarfile; tarfile.open('dist/roofline-bundle.tar.xz').extractall('/tmp/roofline_b')" \
  || { echo "dist/roofline-bundle.tar.xz missing: run '$0 bundle' first and carry dist/" >&2; exit 2; }
# The CUDA 13 libraries the binaries link, as scripts/gpu-check.sh finds them.
export BIN=/tmp/roofline_b/peak_flops
eval "$(bash scripts/gpu-check.sh --version 2>/dev/null | sed -n 's/^LD_LIBRARY_PATH=\(.*\)/export LD_LIBRARY_PATH="\1"/p')"
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv; echo "cores $(nproc)"; lscpu | grep 'Model name'; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== peaks on cuda:0 (2048^3 and 8192^3)"
{ /tmp/roofline_b/peak_flops --device cuda:0 --size 2048 --reps 9
  /tmp/roofline_b/peak_flops --device cuda:0 --size 8192 --reps 5 | tail -n +2; } | tee "$OUT/peak_flops_gpu.csv"
echo "== peaks on the host's cores"
/tmp/roofline_b/peak_flops --device cpu --size 2048 --reps 5 | tee "$OUT/peak_flops_host.csv"

if command -v ncu >/dev/null; then
  echo "== Nsight Compute: pair_coefficients_f64/f32, lmax 4/6/8"
  timeout 400 ncu --kernel-name regex:pair_coefficients --csv \
    --metrics sm__warps_active.avg.pct_of_peak_sustained_active,sm__inst_issued.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__throughput.avg.pct_of_peak_sustained_active,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__pipe_fp64_cycles_active.avg.pct_of_peak_sustained_active,smsp__average_warp_latency_issue_stalled_short_scoreboard,smsp__average_warp_latency_issue_stalled_long_scoreboard,launch__registers_per_thread,launch__occupancy_limit_shared_mem \
    /tmp/roofline_b/cuda_kernel_bench 262144 > "$OUT/ncu_pair_kernel.csv" 2> "$OUT/ncu.log"
  echo "ncu rc=$?"; head -5 "$OUT/ncu_pair_kernel.csv"
else
  echo "ncu not installed: no kernel counters (the note keeps its counted ceilings)" | tee "$OUT/ncu_pair_kernel.csv"
fi
