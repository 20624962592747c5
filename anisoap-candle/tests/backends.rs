//! The batched Candle path against the reference backend on generated systems: f64 to
//! 1e-10 relative (scaled by each column's magnitude), f32 to a documented bound, every
//! quantity, several chunk sizes.

mod common;

use anisoap_candle::hypers::MaxRadial;
use anisoap_candle::synthetic::SystemKind;
use anisoap_candle::{Backend, BatchedOptions, Calculator, Features, Frame, Hypers, Quantity};
use candle_core::DType;

/// A `[shape]` f64 tensor of uniform values in `[lo, hi)` from a fixed-seed ChaCha stream, so
/// every run tests the same numbers.
fn uniform(seed: u64, lo: f64, hi: f64, shape: &[usize]) -> candle_core::Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    candle_core::Tensor::from_vec(values, shape, &candle_core::Device::Cpu).unwrap()
}

fn compute(hypers: &Hypers, backend: Backend, frames: &[Frame], q: Quantity) -> Features {
    Calculator::new(hypers, backend)
        .unwrap()
        .compute(frames, q, &mut |_, _| {})
        .unwrap()
}

fn batched(dtype: DType, chunk_pairs: usize, fused_cpu_moments: bool) -> Backend {
    Backend::Batched(BatchedOptions {
        device: candle_core::Device::Cpu,
        dtype,
        chunk_pairs,
        fused_cpu_moments,
        cuda_neighbor_search: true,
    })
}

/// Compares with a tolerance scaled by the largest magnitude of each column (§12 of the spec).
fn assert_columns_close(label: &str, got: &Features, expected: &Features, rtol: f64) {
    let (g, e) = (&got.values, &expected.values);
    assert_eq!((g.rows, g.cols), (e.rows, e.cols), "{label}: shape");
    assert_eq!(got.frame, expected.frame, "{label}: frame index");
    assert_eq!(got.center, expected.center, "{label}: centre index");
    for c in 0..e.cols {
        let scale = (0..e.rows)
            .map(|r| e.data[r * e.cols + c].abs())
            .fold(0.0, f64::max);
        for r in 0..e.rows {
            let (a, b) = (g.data[r * g.cols + c], e.data[r * e.cols + c]);
            assert!(
                (a - b).abs() <= rtol * scale + 1e-300,
                "{label}: row {r} col {c}: {a} vs {b} (column scale {scale})"
            );
        }
    }
}

fn check_all(label: &str, hypers: &Hypers, frames: &[Frame]) {
    for q in [
        Quantity::PowerSpectrumMean,
        Quantity::PowerSpectrumPerCenter,
        Quantity::Density,
    ] {
        let expected = compute(hypers, Backend::Reference, frames, q);
        assert!(
            expected.values.data.iter().any(|v| *v != 0.0),
            "{label}: all zero"
        );
        for chunk in [1, 97, 1 << 16] {
            for fused in [true, false] {
                let got = compute(hypers, batched(DType::F64, chunk, fused), frames, q);
                let what = format!("{label} {q:?} f64 chunk {chunk} fused {fused}");
                assert_columns_close(&what, &got, &expected, 1e-10);
            }
        }
        let got = compute(hypers, batched(DType::F32, 1 << 16, true), frames, q);
        assert_columns_close(&format!("{label} {q:?} f32"), &got, &expected, F32_RTOL);
    }
}

/// Documented float32 bound (README): error relative to each column's largest magnitude.
const F32_RTOL: f64 = 1e-4;

/// The GPU neighbour sum (padded batched matmul) equals the CPU one (index_add).
#[test]
fn padded_neighbor_sum_equals_index_add() {
    use anisoap_candle::basis::Basis;
    use anisoap_candle::batched::{index_add_neighbor_sum, padded_neighbor_sum};
    use anisoap_candle::system::System;
    let frames = common::synthetic_frames(SystemKind::EllipsoidLiquid, 20, 3, true, 8);
    let basis = Basis::new(&Hypers::gto(2, 4.0, 1.2)).unwrap();
    let system = System::new(&frames, &basis).unwrap();
    let n_types = system.layout.types.len();
    for (index, chunk) in system.center_chunks(300).into_iter().enumerate() {
        let pairs = system.pairs(chunk.clone()).unwrap();
        let slots: Vec<usize> = pairs
            .neighbors
            .iter()
            .map(|&j| system.layout.type_slot(system.particles.types[j]))
            .collect();
        let coefficients = uniform(100 + index as u64, -1.0, 1.0, &[pairs.len(), 7]);
        let a = index_add_neighbor_sum(&coefficients, &pairs, &slots, chunk.clone(), n_types)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let b = padded_neighbor_sum(&coefficients, &pairs, &slots, chunk.clone(), n_types)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-13, "{x} vs {y}");
        }
    }
}

#[test]
fn gto_periodic_two_species() {
    let hypers = Hypers::gto(4, 4.0, 1.2);
    check_all(
        "gto l4",
        &hypers,
        &common::synthetic_frames(SystemKind::EllipsoidLiquid, 12, 2, true, 3),
    );
}

#[test]
fn monomial_open_three_species() {
    let mut hypers = Hypers::monomial(3, 3.5);
    hypers.max_radial = MaxRadial::Uniform(1);
    check_all(
        "monomial l3",
        &hypers,
        &common::synthetic_frames(SystemKind::EllipsoidLiquid, 10, 3, false, 5),
    );
}

#[test]
fn gto_list_radial_subtract_center_benzene() {
    let mut hypers = Hypers::gto(3, 7.0, 1.5);
    hypers.max_radial = MaxRadial::PerChannel(vec![2, 1, 1, 0]);
    hypers.subtract_center_contribution = true;
    check_all(
        "gto list",
        &hypers,
        &common::synthetic_frames(SystemKind::BenzeneLike, 8, 4, true, 11),
    );
}
