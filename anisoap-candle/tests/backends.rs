//! The batched Candle path against the reference backend on generated systems: f64 to
//! 1e-10 relative (scaled by each column's magnitude), f32 to a documented bound, every
//! quantity, several chunk sizes.

mod common;

use anisoap_candle::hypers::MaxRadial;
use anisoap_candle::synthetic::{generate, SyntheticSpec, SystemKind};
use anisoap_candle::{Backend, BatchedOptions, Calculator, Features, Frame, Hypers, Quantity};
use candle_core::DType;

fn frames(kind: SystemKind, n: usize, species: usize, periodic: bool, seed: u64) -> Vec<Frame> {
    let mut spec = SyntheticSpec::new(kind, n);
    spec.n_species = species;
    spec.periodic = periodic;
    spec.seed = seed;
    generate(&spec, 2)
}

fn compute(hypers: &Hypers, backend: Backend, frames: &[Frame], q: Quantity) -> Features {
    Calculator::new(hypers, backend)
        .unwrap()
        .compute(frames, q, &mut |_, _| {})
        .unwrap()
}

fn batched(dtype: DType, chunk_pairs: usize) -> Backend {
    Backend::Batched(BatchedOptions {
        device: candle_core::Device::Cpu,
        dtype,
        chunk_pairs,
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
            let got = compute(hypers, batched(DType::F64, chunk), frames, q);
            assert_columns_close(
                &format!("{label} {q:?} f64 chunk {chunk}"),
                &got,
                &expected,
                1e-10,
            );
        }
        let got = compute(hypers, batched(DType::F32, 1 << 16), frames, q);
        assert_columns_close(&format!("{label} {q:?} f32"), &got, &expected, F32_RTOL);
    }
}

/// Documented float32 bound (README): error relative to each column's largest magnitude.
const F32_RTOL: f64 = 1e-4;

#[test]
fn gto_periodic_two_species() {
    let hypers = Hypers::gto(4, 4.0, 1.2);
    check_all(
        "gto l4",
        &hypers,
        &frames(SystemKind::EllipsoidLiquid, 12, 2, true, 3),
    );
}

#[test]
fn monomial_open_three_species() {
    let mut hypers = Hypers::monomial(3, 3.5);
    hypers.max_radial = MaxRadial::Uniform(1);
    check_all(
        "monomial l3",
        &hypers,
        &frames(SystemKind::EllipsoidLiquid, 10, 3, false, 5),
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
        &frames(SystemKind::BenzeneLike, 8, 4, true, 11),
    );
}
