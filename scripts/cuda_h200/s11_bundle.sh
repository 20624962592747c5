#!/usr/bin/env bash
# Builds a GPU bundle (usage: s11_bundle.sh [OUTPUT], default dist/s11.tar.xz; session 12's
# runs carry dist/s12.tar.xz) for scripts/cuda_h200/s11_run.sh and s12_run.sh: the CUDA CLI,
# the GPU test binaries (tests/cuda_fused.rs, tests/cuda_search.rs),
# examples/forces_cost and examples/cuda_kernel_bench, stripped, and the
# original's notebooks/ellipsoids.xyz (from the mirror of cersonsky-lab/AniSOAP, or
# $ELLIPSOIDS).
set -euo pipefail
out="$(realpath -m "${1:-dist/s11.tar.xz}")"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target-cuda}"
scripts/build-cuda.sh build
eval "$(scripts/build-cuda.sh env)"
tmp="$(mktemp -d)"
cargo test --release -p anisoap-candle --features cuda --test cuda_fused --test cuda_search \
  --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | while read -r exe; do
      name="$(basename "$exe")"; cp "$exe" "$tmp/${name%-*}"; done
cargo build --release -p anisoap-candle --features cuda --example forces_cost --example cuda_kernel_bench
cp "$CARGO_TARGET_DIR/release/examples/forces_cost" "$CARGO_TARGET_DIR/release/examples/cuda_kernel_bench" "$tmp/"
cp dist/anisoap-candle-cuda "$tmp/"
if [ -n "${ELLIPSOIDS:-}" ]; then cp "$ELLIPSOIDS" "$tmp/ellipsoids.xyz"
else git -C /work/.mirror/cersonsky-lab+AniSOAP/repo show HEAD:notebooks/ellipsoids.xyz > "$tmp/ellipsoids.xyz"; fi
strip "$tmp"/anisoap-candle-cuda "$tmp"/cuda_fused "$tmp"/cuda_search "$tmp"/forces_cost "$tmp"/cuda_kernel_bench
(cd "$tmp" && tar cf - .) | xz -T2 -6 > "$out"
rm -rf "$tmp"
ls -la "$out"
