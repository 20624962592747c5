#!/usr/bin/env bash
# The default cutoff (the original's step) gives the same bits at two commits: every fixture
# (tests/fixtures/*) x backend (reference; Candle CPU fused f64, tensor-op f64, fused f64 with
# 50-pair chunks, fused f32, tensor-op f32) x quantity (mean, per-centre power spectrum,
# density), the library of each commit built into a small dump program, outputs compared
# byte for byte. Issue 13: adding the opt-in smooth cutoff must leave the default unchanged.
#
# Usage: scripts/check_step_bitwise.sh OLD_REV [NEW_REV (default HEAD)]
# Builds in a temporary directory with the shared target dir (only the dump binaries
# bitdump-old / bitdump-new are placed in target/release); writes nothing in the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD="${1:?usage: $0 OLD_REV [NEW_REV]}"
NEW="${2:-HEAD}"
REPO="$PWD"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
B="$(mktemp -d)"
trap 'rm -rf "$B"' EXIT
for v in old new; do
    rev="$OLD"; [[ $v == new ]] && rev="$NEW"
    mkdir -p "$B/$v/dump/src" "$B/out_$v"
    git archive "$rev" Cargo.toml Cargo.lock anisoap-candle | tar -x -C "$B/$v"
    sed -i 's/^members = .*/members = ["anisoap-candle", "dump"]/' "$B/$v/Cargo.toml"
    cat > "$B/$v/dump/Cargo.toml" <<EOF
[package]
name = "bitdump-$v"
version = "0.1.0"
edition = "2021"

[dependencies]
anisoap-candle = { path = "../anisoap-candle" }
candle-core = "0.11"
EOF
    cat > "$B/$v/dump/src/main.rs" <<'EOF'
//! Raw little-endian f64 bytes of every (fixture, backend, quantity) output, default hypers.
use anisoap_candle::{xyz, Backend, BatchedOptions, Calculator, Hypers, Quantity};
use candle_core::DType;
use std::io::Write;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (fixtures, out) = (std::path::Path::new(&args[1]), std::path::Path::new(&args[2]));
    let batched = |dtype, chunk_pairs, fused_cpu_moments| {
        Backend::Batched(BatchedOptions {
            device: candle_core::Device::Cpu,
            dtype,
            chunk_pairs,
            fused_cpu_moments,
        })
    };
    let backends = [
        ("reference", Backend::Reference),
        ("fused_f64", batched(DType::F64, 1 << 16, true)),
        ("tensorop_f64", batched(DType::F64, 1 << 16, false)),
        ("fused_f64_chunk50", batched(DType::F64, 50, true)),
        ("fused_f32", batched(DType::F32, 1 << 16, true)),
        ("tensorop_f32", batched(DType::F32, 1 << 16, false)),
    ];
    let mut dirs: Vec<_> = std::fs::read_dir(fixtures)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("hypers.json").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("hypers.json")).unwrap();
        let hypers = Hypers::from_json_str(&text).unwrap();
        let frames = xyz::read_xyz_file(&dir.join("input.xyz")).unwrap();
        for (name, backend) in &backends {
            for (qn, q) in [
                ("mean", Quantity::PowerSpectrumMean),
                ("per_center", Quantity::PowerSpectrumPerCenter),
                ("density", Quantity::Density),
            ] {
                let f = Calculator::new(&hypers, backend.clone())
                    .unwrap()
                    .compute(&frames, q, &mut |_, _| {})
                    .unwrap();
                let fixture = dir.file_name().unwrap().to_string_lossy().to_string();
                let path = out.join(format!("{fixture}_{name}_{qn}.bin"));
                let mut file = std::fs::File::create(path).unwrap();
                for v in &f.values.data {
                    file.write_all(&v.to_le_bytes()).unwrap();
                }
            }
        }
    }
}
EOF
    (cd "$B/$v" && CARGO_TARGET_DIR="$TARGET" cargo build --release --offline -q -p "bitdump-$v")
    cp "$TARGET/release/bitdump-$v" "$B/"
    "$B/bitdump-$v" "$REPO/tests/fixtures" "$B/out_$v"
done
echo "old $(git rev-parse --short "$OLD"), new $(git rev-parse --short "$NEW")"
n=0; bad=0; values=0
for f in "$B"/out_old/*.bin; do
    n=$((n + 1))
    size=$(stat -c %s "$f")
    values=$((values + size / 8))
    [[ $size -gt 0 ]] || { echo "EMPTY $(basename "$f")"; bad=$((bad + 1)); }
    cmp -s "$f" "$B/out_new/$(basename "$f")" || { echo "DIFFERS $(basename "$f")"; bad=$((bad + 1)); }
done
echo "$n outputs ($values f64 values): $bad differ"
[[ $bad -eq 0 ]]
