//! Every backend against outputs of the original AniSOAP on inputs this project generated
//! (`tests/fixtures/<case>/`, made by `scripts/make_fixtures.sh`).
//!
//! f64: |Δ| ≤ 1e-10 × (largest magnitude of the column). Entries that cancel to ~0 are
//! exactly 0 in one code and ~1e-19 in the other, so a purely element-wise relative test is
//! meaningless for them (maths notes §12). f32: the documented 1e-4 of the column scale (worst seen 1.8e-5).

mod common;

use anisoap_candle::{xyz, Backend, BatchedOptions, Calculator, Features, Hypers, Quantity};
use candle_core::DType;
use common::{read_npy, NpyArray};
use std::path::{Path, PathBuf};

const F64_RTOL: f64 = 1e-10;
const F32_RTOL: f64 = 1e-4;

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("hypers.json").exists())
        .collect();
    dirs.sort();
    // The fixture set is part of the repository: its absence is a failure, not a skip.
    assert!(
        dirs.len() >= 8,
        "expected at least 8 fixture cases in {}",
        root.display()
    );
    dirs
}

fn assert_columns_close(label: &str, got: &[f64], expected: &NpyArray, rtol: f64) {
    let (rows, cols) = (expected.shape[0], expected.shape[1]);
    assert_eq!(
        got.len(),
        rows * cols,
        "{label}: {} values, expected {rows}x{cols}",
        got.len()
    );
    let mut worst: f64 = 0.0;
    for c in 0..cols {
        let scale = (0..rows)
            .map(|r| expected.data[r * cols + c].abs())
            .fold(0.0, f64::max);
        for r in 0..rows {
            let (a, b) = (got[r * cols + c], expected.data[r * cols + c]);
            let err = (a - b).abs();
            assert!(
                err <= rtol * scale,
                "{label}: row {r} col {c}: {a} vs {b} (column scale {scale:e})"
            );
            if scale > 0.0 {
                worst = worst.max(err / scale);
            }
        }
    }
    eprintln!("{label}: worst error / column scale = {worst:.2e}");
}

fn run(dir: &Path, backend: Backend, quantity: Quantity) -> Features {
    let hypers =
        Hypers::from_json_str(&std::fs::read_to_string(dir.join("hypers.json")).unwrap()).unwrap();
    let frames = xyz::read_xyz_file(&dir.join("input.xyz")).unwrap();
    Calculator::new(&hypers, backend)
        .unwrap()
        .compute(&frames, quantity, &mut |_, _| {})
        .unwrap()
}

fn backends() -> Vec<(&'static str, Backend, f64)> {
    let batched = |dtype, chunk_pairs, fused_cpu_moments| {
        Backend::Batched(BatchedOptions {
            device: candle_core::Device::Cpu,
            dtype,
            chunk_pairs,
            fused_cpu_moments,
        })
    };
    vec![
        ("reference", Backend::Reference, F64_RTOL),
        (
            "candle-cpu f64",
            batched(DType::F64, 1 << 16, true),
            F64_RTOL,
        ),
        (
            "candle-cpu f64 tensor-op moments",
            batched(DType::F64, 1 << 16, false),
            F64_RTOL,
        ),
        (
            "candle-cpu f64 chunk 50",
            batched(DType::F64, 50, true),
            F64_RTOL,
        ),
        (
            "candle-cpu f32",
            batched(DType::F32, 1 << 16, true),
            F32_RTOL,
        ),
        (
            "candle-cpu f32 tensor-op moments",
            batched(DType::F32, 1 << 16, false),
            F32_RTOL,
        ),
    ]
}

#[test]
fn power_spectrum_matches_original() {
    for dir in fixture_dirs() {
        let expected = read_npy(&dir.join("power_spectrum.npy"));
        for (name, backend, rtol) in backends() {
            let got = run(&dir, backend, Quantity::PowerSpectrumMean);
            let label = format!("{} {name}", dir.file_name().unwrap().to_string_lossy());
            assert_eq!(got.values.rows, expected.shape[0], "{label}: rows");
            assert_columns_close(&label, &got.values.data, &expected, rtol);
        }
    }
}

#[test]
fn per_center_power_spectrum_matches_original() {
    for dir in fixture_dirs() {
        let expected = read_npy(&dir.join("per_center.npy"));
        let index = read_npy(&dir.join("per_center_index.npy"));
        for (name, backend, rtol) in backends() {
            let got = run(&dir, backend, Quantity::PowerSpectrumPerCenter);
            let label = format!(
                "{} {name} per-centre",
                dir.file_name().unwrap().to_string_lossy()
            );
            let centers = got.center.as_ref().unwrap();
            let got_index: Vec<f64> = got
                .frame
                .iter()
                .zip(centers)
                .flat_map(|(&f, &c)| [f as f64, c as f64])
                .collect();
            assert_eq!(got_index, index.data, "{label}: (frame, centre) index");
            assert_columns_close(&label, &got.values.data, &expected, rtol);
        }
    }
}

#[test]
fn density_matches_original() {
    for dir in fixture_dirs() {
        let expected = read_npy(&dir.join("density.npy"));
        for (name, backend, rtol) in backends() {
            let got = run(&dir, backend, Quantity::Density);
            let label = format!(
                "{} {name} density",
                dir.file_name().unwrap().to_string_lossy()
            );
            assert_columns_close(&label, &got.values.data, &expected, rtol);
        }
    }
}
