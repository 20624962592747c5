//! Every backend against outputs of the original AniSOAP on inputs this project generated
//! (`tests/fixtures/<case>/`, made by `scripts/make_fixtures.sh`).
//!
//! f64: |Δ| ≤ 1e-10 × (largest magnitude of the column). Entries that cancel to ~0 are
//! exactly 0 in one code and ~1e-19 in the other, so a purely element-wise relative test is
//! meaningless for them (maths notes §12). f32: the documented 1e-4 of the column scale
//! (worst seen 1.95e-5: gto_l2_maxradial3_three_species_periodic, mean, tensor-op moments).

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
        dirs.len() >= 13,
        "expected at least 13 fixture cases in {}",
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
            cuda_neighbor_search: true,
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

fn meta(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap()
}

/// Our layout (centre types and the neighbour types of each) is the original's, as recorded in
/// `meta.json`: this is what fixes the column layout where a centre type sees only a subset
/// of the types (`gto_l3_subset_neighbor_types_open`).
#[test]
fn layout_matches_original() {
    let mut subsets = 0;
    for dir in fixture_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let meta = meta(&dir);
        let got = run(&dir, Backend::Reference, Quantity::PowerSpectrumMean);
        let layout = &got.layout;
        let types: Vec<i64> = layout.types.iter().map(|&t| t as i64).collect();
        let expected_types: Vec<i64> = meta["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(types, expected_types, "{name}: types");
        let expected = meta["neighbor_types"].as_object().unwrap();
        assert_eq!(
            layout.center_types.len(),
            expected.len(),
            "{name}: centre types"
        );
        for (b, &t) in layout.center_types.iter().enumerate() {
            let ours: Vec<i64> = layout.neighbor_slots[b]
                .iter()
                .map(|&slot| layout.types[slot] as i64)
                .collect();
            let theirs: Vec<i64> = expected[&t.to_string()]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no neighbour types for centre type {t}"))
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            assert_eq!(ours, theirs, "{name}: neighbour types of centre type {t}");
            if ours.len() < types.len() {
                subsets += 1;
            }
        }
    }
    assert!(
        subsets >= 3,
        "no fixture has a centre type with a strict subset of neighbours"
    );
}

/// Where a frame lacks a centre type, that block of its mean is exactly zero, in our output and
/// in the fixture (`gto_l4_missing_center_type_periodic`; the original's own mean raises).
#[test]
fn missing_center_type_gives_an_exact_zero_block() {
    let mut checked = 0;
    for dir in fixture_dirs() {
        let meta = meta(&dir);
        let Some(missing) = meta.get("missing_center_types") else {
            continue;
        };
        let expected = read_npy(&dir.join("power_spectrum.npy"));
        let cols = expected.shape[1];
        for (name, backend, _) in backends() {
            let got = run(&dir, backend, Quantity::PowerSpectrumMean);
            for (frame, types) in missing.as_object().unwrap() {
                let f: usize = frame.parse().unwrap();
                for t in types.as_array().unwrap() {
                    let t = t.as_i64().unwrap().to_string();
                    let span = meta["power_spectrum_type_offsets"][&t].as_array().unwrap();
                    let (offset, width) = (
                        span[0].as_u64().unwrap() as usize,
                        span[1].as_u64().unwrap() as usize,
                    );
                    let block = f * cols + offset..f * cols + offset + width;
                    assert!(expected.data[block.clone()].iter().all(|&v| v == 0.0));
                    assert!(
                        got.values.data[block].iter().all(|&v| v == 0.0),
                        "{name}: frame {f}, centre type {t}: block not zero"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 0,
        "no fixture has a frame without some centre type"
    );
}

/// The rotation-matrix fixture is the quaternion fixture's geometry with the orientations as
/// matrices: both the original's outputs and ours agree between the two to rounding.
#[test]
fn rotation_matrix_fixture_equals_quaternion_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let quaternion = root.join("gto_l4_two_species_periodic");
    let matrix = root.join("gto_l4_two_species_periodic_rotation_matrix");
    for file in ["power_spectrum.npy", "per_center.npy", "density.npy"] {
        let a = read_npy(&quaternion.join(file));
        let b = read_npy(&matrix.join(file));
        assert_eq!(a.shape, b.shape, "{file}");
        assert_columns_close(
            &format!("original, matrix vs quaternion {file}"),
            &b.data,
            &a,
            1e-13,
        );
    }
    for quantity in [
        Quantity::PowerSpectrumMean,
        Quantity::PowerSpectrumPerCenter,
        Quantity::Density,
    ] {
        let a = run(&quaternion, Backend::Reference, quantity);
        let b = run(&matrix, Backend::Reference, quantity);
        assert_eq!(
            (a.values.rows, a.values.cols),
            (b.values.rows, b.values.cols)
        );
        let scale = a.values.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (x, y) in a.values.data.iter().zip(&b.values.data) {
            assert!((x - y).abs() <= 1e-13 * scale, "{quantity:?}: {x} vs {y}");
        }
    }
}
