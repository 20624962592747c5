#!/usr/bin/env bash
# Threads sweep on a many-core host (issue 12): candle-cpu f64, benzene-like, GTO lmax 6,
# cutoff 7.0, width 1.5, N = 2048, 16384 and 100000 particles, at 1, 2, 4, 8, 16 threads, each
# thread count in its own child process (RAYON_NUM_THREADS / CANDLE_NUM_THREADS), 1 warm-up +
# 5 timed calls + 1 span-recorded call per point. Needs only a prebuilt binary: no Python, no
# network, no checkout (the config is written here). About a minute on 16 cores; killed at
# 170 s so it always finishes within 3 minutes.
#
#   BIN=/path/to/anisoap-candle OUT=/path/to/out [COMMIT=<sha the binary was built from>] \
#     [THREADS=1,2,4,8,16] scripts/threads_sweep_gpu_host.sh
#
# Writes $OUT/logs/threads_gpu_host_*_t<N>.metrics.json, $OUT/tables/threads_sweep.csv (and
# $OUT/tables/combined_from_metrics.csv), $OUT/threads_sweep.log. To put the host on the
# committed figure: copy $OUT/logs/*.metrics.json to results/logs/threads_sweep/ and run
# `anisoap-candle aggregate --results results`.
set -euo pipefail
: "${BIN:?set BIN to a prebuilt anisoap-candle binary}"
: "${OUT:?set OUT to the output directory}"
THREADS=${THREADS:-1,2,4,8,16}
export ANISOAP_BENCH_COMMIT=${COMMIT:-${ANISOAP_BENCH_COMMIT:-unknown}}
mkdir -p "$OUT"
cat > "$OUT/threads_gpu_host.toml" <<'EOF'
name = "threads_gpu_host"
description = "benzene-like, lmax 6, candle-cpu f64: threads sweep at N = 2048, 16384, 100000"
warmup = 1
repeats = 5
stage_repeats = 1
backends = ["candle-cpu"]
dtypes = ["f64"]
chunk_pairs = 65536
check_max_pairs = 500000

[hypers]
max_angular = 6
radial_basis_name = "gto"
cutoff_radius = 7.0
radial_gaussian_width = 1.5
rotation_key = "c_q"
rotation_type = "quaternion"

[system]
kind = "benzene"
particles = 2048
species = 1
frames = 1
seed = 0

[sweep]
default = ["threads"]
threads = [1, 2, 4, 8, 16]
threads_sizes = [2048, 16384, 100000]
EOF
exec > >(tee "$OUT/threads_sweep.log") 2>&1
echo "host $(hostname), $(nproc) logical CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "binary $BIN, commit $ANISOAP_BENCH_COMMIT, threads $THREADS"
status=0
timeout 170 "$BIN" bench --config "$OUT/threads_gpu_host.toml" --threads "$THREADS" --out "$OUT" \
  || status=$?
if [ "$status" -ne 0 ]; then
  echo "bench stopped with status $status (124: the 170 s limit); aggregating what finished"
fi
"$BIN" aggregate --results "$OUT"
echo "threads sweep: $OUT/tables/threads_sweep.csv"
exit "$status"
