//! Helpers shared by the integration tests: NPY reading and comparison, synthetic frames, the
//! CUDA device of the GPU tests.

#![allow(dead_code)]

use std::path::Path;

pub mod fd;

pub use anisoap_candle::npy::NpyArray;

/// Reads an NPY file (fixtures are `<f8` or `<i8`), panicking with the path on failure.
pub fn read_npy(path: &Path) -> NpyArray {
    anisoap_candle::npy::read_npy(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Largest |got - expected| / (atol + rtol |expected|) over all entries; ≤ 1 means they match.
pub fn worst_ratio(got: &[f64], expected: &[f64], rtol: f64, atol: f64) -> f64 {
    assert_eq!(got.len(), expected.len(), "length mismatch");
    got.iter()
        .zip(expected)
        .map(|(g, e)| (g - e).abs() / (atol + rtol * e.abs()))
        .fold(0.0, f64::max)
}

/// Asserts element-wise closeness with a message naming the worst entry.
pub fn assert_close(label: &str, got: &[f64], expected: &[f64], rtol: f64, atol: f64) {
    assert_eq!(
        got.len(),
        expected.len(),
        "{label}: length {} vs {}",
        got.len(),
        expected.len()
    );
    let mut worst = (0.0, 0usize);
    for (k, (g, e)) in got.iter().zip(expected).enumerate() {
        let ratio = (g - e).abs() / (atol + rtol * e.abs());
        if ratio.is_nan() || ratio > worst.0 {
            worst = (ratio, k);
        }
    }
    assert!(
        worst.0 <= 1.0,
        "{label}: entry {} differs: got {} expected {} (|Δ|/(atol+rtol|e|) = {:.3})",
        worst.1,
        got[worst.1],
        expected[worst.1],
        worst.0
    );
}

/// Two frames of a synthetic system (`generate(spec, 2)`) with `n` particles each.
pub fn synthetic_frames(
    kind: anisoap_candle::synthetic::SystemKind,
    n: usize,
    species: usize,
    periodic: bool,
    seed: u64,
) -> Vec<anisoap_candle::Frame> {
    let mut spec = anisoap_candle::synthetic::SyntheticSpec::new(kind, n);
    spec.n_species = species;
    spec.periodic = periodic;
    spec.seed = seed;
    anisoap_candle::synthetic::generate(&spec, 2)
}

/// The first CUDA device, or `None` after printing `SKIPPED: <reason>` (no `cuda` feature, no
/// GPU): the GPU tests return early then.
pub fn cuda_device() -> Option<candle_core::Device> {
    match anisoap_candle::device::open_device("cuda:0") {
        Ok(device) => Some(device),
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

/// A frame of ellipsoids: `positions`, `numbers`, unit quaternions `c_q` (4 per particle,
/// flattened) and semi-axes (written as the full diameters `c_diameter[1..3]`).
pub fn ellipsoid_frame(
    positions: Vec<[f64; 3]>,
    numbers: Vec<i32>,
    quaternions: Vec<f64>,
    semi_axes: &[[f64; 3]],
) -> anisoap_candle::Frame {
    use anisoap_candle::{Frame, PerParticle};
    let mut frame = Frame {
        positions,
        numbers,
        ..Frame::default()
    };
    frame.arrays.insert(
        "c_q".into(),
        PerParticle {
            ncols: 4,
            values: quaternions,
        },
    );
    for k in 0..3 {
        frame.arrays.insert(
            format!("c_diameter[{}]", k + 1),
            PerParticle {
                ncols: 1,
                values: semi_axes.iter().map(|a| 2.0 * a[k]).collect(),
            },
        );
    }
    frame
}
