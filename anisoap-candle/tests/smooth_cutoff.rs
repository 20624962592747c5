//! The opt-in smooth cutoff (`cutoff_function = { shifted_cosine = { width = w } }`, issue 13).
//!
//! * Every CPU backend (fused chunk kernel, tensor ops, f64 and f32, several chunk sizes) equals
//!   the reference backend with the smooth cutoff on (f64 1e-10 of each column's scale, f32
//!   1e-4), on systems with many pairs inside the smoothing zone.
//! * The reference itself against an independent evaluation: the density is linear in the pair
//!   contributions, so it must equal the self term plus `f(r_ij)` times each neighbour's
//!   contribution isolated in a two-particle frame with the step cutoff.
//! * Continuity: a neighbour crossing `r_c` changes the features by `O(δ²)` (the step cutoff
//!   jumps), and the one-sided slopes agree at `r_c - w` and `r_c`.
//! * The differentiable path: forward equal to the reference, autograd gradients equal to
//!   central finite differences (≤ 1e-6 relative, as `tests/gradients.rs`) with pairs inside
//!   the smoothing zone.

#![allow(clippy::needless_range_loop)]

mod common;

use anisoap_candle::cutoff::CutoffFunction;
use anisoap_candle::differentiable::DifferentiableDescriptor;
use anisoap_candle::hypers::MaxRadial;
use anisoap_candle::neighbors::neighbor_list;
use anisoap_candle::synthetic::{generate, SyntheticSpec, SystemKind};
use anisoap_candle::{Backend, BatchedOptions, Calculator, Features, Frame, Hypers, Quantity};
use candle_core::{DType, Device};
use common::fd::{central_differences, power_spectrum_autograd, weighted_sum, weights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const F32_RTOL: f64 = 1e-4;

fn smooth(mut hypers: Hypers, width: f64) -> Hypers {
    hypers.cutoff_function = CutoffFunction::ShiftedCosine { width };
    hypers
}

fn compute(hypers: &Hypers, backend: Backend, frames: &[Frame], q: Quantity) -> Features {
    Calculator::new(hypers, backend)
        .unwrap()
        .compute(frames, q, &mut |_, _| {})
        .unwrap()
}

fn reference(hypers: &Hypers, frames: &[Frame], q: Quantity) -> Features {
    compute(hypers, Backend::Reference, frames, q)
}

fn batched(dtype: DType, chunk_pairs: usize, fused_cpu_moments: bool) -> Backend {
    Backend::Batched(BatchedOptions {
        device: Device::Cpu,
        dtype,
        chunk_pairs,
        fused_cpu_moments,
        cuda_neighbor_search: true,
    })
}

/// Largest `|got - expected|` relative to each column's largest magnitude.
fn column_scaled_error(got: &Features, expected: &Features) -> f64 {
    let (g, e) = (&got.values, &expected.values);
    assert_eq!((g.rows, g.cols), (e.rows, e.cols), "shape");
    assert_eq!(got.center, expected.center, "centre index");
    let mut worst = 0.0f64;
    for c in 0..e.cols {
        let scale = (0..e.rows)
            .map(|r| e.data[r * e.cols + c].abs())
            .fold(0.0, f64::max);
        for r in 0..e.rows {
            let d = (g.data[r * g.cols + c] - e.data[r * e.cols + c]).abs();
            if d > 0.0 {
                worst = worst.max(d / scale.max(1e-300));
            }
        }
    }
    worst
}

/// Pairs (without self pairs) with `r_c - w < r < r_c`, and the smallest `| r - r_c |`.
fn zone_pairs(frame: &Frame, cutoff: f64, width: f64) -> (usize, f64) {
    let (cell, pbc) = if frame.is_periodic() {
        (frame.cell, frame.pbc)
    } else {
        ([[0.0; 3]; 3], [false; 3])
    };
    let list = neighbor_list(&frame.positions, &cell, pbc, cutoff + 0.01, false).unwrap();
    let mut count = 0;
    let mut margin = f64::INFINITY;
    for r in &list.vectors {
        let d = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        if d > cutoff - width && d < cutoff {
            count += 1;
        }
        margin = margin.min((d - cutoff).abs());
    }
    (count, margin)
}

/// An open cluster of `n` particles of one type: positions uniform in `[0, side)³`, random
/// orientations and semi-axes in `[0.4, 1.2)`.
fn cluster(n: usize, side: f64, seed: u64) -> Frame {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let positions = (0..n)
        .map(|_| [0, 1, 2].map(|_| rng.gen_range(0.0..side)))
        .collect();
    let q: Vec<f64> = (0..4 * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let axes: Vec<[f64; 3]> = (0..n)
        .map(|_| [0, 1, 2].map(|_| rng.gen_range(0.4..1.2)))
        .collect();
    common::ellipsoid_frame(positions, vec![1; n], q, &axes)
}

/// The sub-frame of `frame` holding the particles `keep`, in that order.
fn subframe(frame: &Frame, keep: &[usize]) -> Frame {
    let q = &frame.arrays["c_q"].values;
    let axis = |i: usize, k: usize| frame.arrays[&format!("c_diameter[{}]", k + 1)].values[i] / 2.0;
    common::ellipsoid_frame(
        keep.iter().map(|&i| frame.positions[i]).collect(),
        keep.iter().map(|&i| frame.numbers[i]).collect(),
        keep.iter()
            .flat_map(|&i| q[4 * i..4 * i + 4].to_vec())
            .collect(),
        &keep
            .iter()
            .map(|&i| [0, 1, 2].map(|k| axis(i, k)))
            .collect::<Vec<_>>(),
    )
}

fn backends_equal_reference(label: &str, hypers: &Hypers, frames: &[Frame]) {
    let width = hypers.cutoff_function.width();
    let in_zone: usize = frames
        .iter()
        .map(|f| zone_pairs(f, hypers.cutoff_radius, width).0)
        .sum();
    assert!(
        in_zone >= 20,
        "{label}: only {in_zone} pairs in the smoothing zone"
    );
    let mut step = hypers.clone();
    step.cutoff_function = CutoffFunction::Step;
    for q in [
        Quantity::PowerSpectrumMean,
        Quantity::PowerSpectrumPerCenter,
        Quantity::Density,
    ] {
        let expected = reference(hypers, frames, q);
        // The factor is applied: the smooth features differ from the step's.
        let departure = column_scaled_error(&reference(&step, frames, q), &expected);
        assert!(
            departure > 1e-3,
            "{label} {q:?}: smooth = step ({departure:e})"
        );
        let mut worst = (0.0f64, 0.0f64);
        for chunk in [1, 97, 1 << 16] {
            for fused in [true, false] {
                let got = compute(hypers, batched(DType::F64, chunk, fused), frames, q);
                let e = column_scaled_error(&got, &expected);
                assert!(
                    e <= 1e-10,
                    "{label} {q:?} f64 chunk {chunk} fused {fused}: {e:e}"
                );
                worst.0 = worst.0.max(e);
            }
        }
        for fused in [true, false] {
            let got = compute(hypers, batched(DType::F32, 1 << 16, fused), frames, q);
            let e = column_scaled_error(&got, &expected);
            assert!(e <= F32_RTOL, "{label} {q:?} f32 fused {fused}: {e:e}");
            worst.1 = worst.1.max(e);
        }
        eprintln!(
            "{label} {q:?}: {in_zone} pairs in the zone; smooth vs step {departure:.3e}; \
             worst f64 {:.3e}, f32 {:.3e} of the column scale",
            worst.0, worst.1
        );
    }
}

#[test]
fn every_cpu_backend_equals_the_reference() {
    let mut spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 14);
    spec.n_species = 2;
    spec.periodic = true;
    spec.seed = 31;
    let liquid = generate(&spec, 2);
    backends_equal_reference(
        "gto periodic",
        &smooth(Hypers::gto(4, 4.0, 1.2), 1.5),
        &liquid,
    );
    // width = cutoff: the whole sphere is the smoothing zone.
    backends_equal_reference(
        "gto width = cutoff",
        &smooth(Hypers::gto(3, 3.0, 1.0), 3.0),
        &liquid,
    );
    let mut mono = Hypers::monomial(3, 3.5);
    mono.max_radial = MaxRadial::Uniform(1);
    mono.subtract_center_contribution = true;
    spec.n_species = 3;
    spec.periodic = false;
    spec.seed = 32;
    spec.n_particles = 12;
    backends_equal_reference(
        "monomial open subtract",
        &smooth(mono, 1.0),
        &generate(&spec, 2),
    );
}

/// The density is linear in the pair contributions: with the smooth cutoff it must be the
/// centre's own term plus `f(r_ij)` times each neighbour's contribution, each computed with the
/// step cutoff in a frame holding only that pair (or the centre alone).
#[test]
fn reference_equals_isolated_pairs_weighted_by_hand() {
    let (rc, w) = (3.0, 1.4);
    let frame = cluster(7, 3.2, 41);
    let (in_zone, _) = zone_pairs(&frame, rc, w);
    assert!(in_zone >= 8, "only {in_zone} pairs in the zone");
    for base in [Hypers::gto(3, rc, 0.9), Hypers::monomial(2, rc)] {
        let hypers = smooth(base.clone(), w);
        let got = reference(&hypers, std::slice::from_ref(&frame), Quantity::Density);
        assert_eq!(got.values.rows, frame.len());
        let mut isolated = base.clone();
        isolated.subtract_center_contribution = true;
        let k = got.values.cols;
        let mut worst = 0.0f64;
        let mut scale = 0.0f64;
        let mut weights_used = Vec::new();
        for i in 0..frame.len() {
            let own = reference(&base, &[subframe(&frame, &[i])], Quantity::Density);
            let mut expected = own.values.row(0).to_vec();
            for j in 0..frame.len() {
                if j == i {
                    continue;
                }
                let r = (0..3)
                    .map(|d| (frame.positions[j][d] - frame.positions[i][d]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                if r >= rc {
                    continue;
                }
                let f = hypers.cutoff_function.value(r, rc);
                weights_used.push(f);
                let pair = reference(&isolated, &[subframe(&frame, &[i, j])], Quantity::Density);
                for c in 0..k {
                    expected[c] += f * pair.values.row(0)[c];
                }
            }
            for c in 0..k {
                worst = worst.max((got.values.row(i)[c] - expected[c]).abs());
                scale = scale.max(expected[c].abs());
            }
        }
        let partial = weights_used
            .iter()
            .filter(|f| **f > 0.0 && **f < 1.0)
            .count();
        assert!(partial >= 8, "{partial} pairs with 0 < f < 1");
        eprintln!(
            "{:?}: reference vs isolated pairs by hand: {worst:.3e} of {scale:.3e} \
             ({partial} weighted pairs)",
            base.radial_basis
        );
        assert!(worst <= 1e-13 * scale, "{worst:e} of {scale:e}");
    }
}

/// Centre at the origin, one neighbour at distance `d` along a fixed direction.
fn dimer(d: f64) -> Frame {
    let u = [0.48, 0.6, 0.64];
    common::ellipsoid_frame(
        vec![[0.0; 3], [u[0] * d, u[1] * d, u[2] * d]],
        vec![1, 1],
        vec![0.9, 0.1, -0.3, 0.2, 0.3, -0.7, 0.2, 0.6],
        &[[0.5, 0.6, 1.3], [0.45, 0.55, 1.2]],
    )
}

/// Per-centre power spectrum of the dimer's centre 0 (reference backend).
fn centre_features(hypers: &Hypers, d: f64) -> Vec<f64> {
    reference(hypers, &[dimer(d)], Quantity::PowerSpectrumPerCenter)
        .values
        .row(0)
        .to_vec()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn features_and_slopes_are_continuous_at_both_ends_of_the_zone() {
    for base in [Hypers::gto(4, 3.0, 1.0), Hypers::monomial(3, 3.0)] {
        let (rc, w) = (base.cutoff_radius, 0.8);
        let hypers = smooth(base.clone(), w);
        let scale = centre_features(&hypers, rc - w)
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        // Crossing r_c: the step jumps by the pair's whole contribution, the smooth cutoff
        // changes by O(δ²).
        let step_jump = max_diff(
            &centre_features(&base, rc * (1.0 - 1e-12)),
            &centre_features(&base, rc * (1.0 + 1e-12)),
        );
        assert!(step_jump > 1e-4 * scale, "step jump {step_jump:e}");
        let mut previous = f64::INFINITY;
        for delta in [1e-2, 1e-3, 1e-4] {
            let jump = max_diff(
                &centre_features(&hypers, rc - delta),
                &centre_features(&hypers, rc + delta),
            );
            eprintln!(
                "{:?}: crossing r_c ± {delta:e}: smooth {jump:.3e}, step jump {step_jump:.3e} \
                 (feature scale {scale:.3e})",
                base.radial_basis
            );
            assert!(
                jump <= 0.02 * previous,
                "not O(δ²): {jump:e} after {previous:e}"
            );
            previous = jump;
        }
        assert!(previous <= 1e-7 * scale);
        // One-sided slopes on either side of each end of the zone agree to O(h).
        let slope = |a: f64, b: f64| -> Vec<f64> {
            let (fa, fb) = (centre_features(&hypers, a), centre_features(&hypers, b));
            fa.iter().zip(&fb).map(|(x, y)| (y - x) / (b - a)).collect()
        };
        let mid = slope(rc - 0.5 * w - 1e-5, rc - 0.5 * w + 1e-5)
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(mid > 1e-3 * scale, "slope in the zone {mid:e}");
        for edge in [rc - w, rc] {
            let mut previous = f64::INFINITY;
            for h in [1e-3, 1e-4] {
                let kink = max_diff(&slope(edge - h, edge), &slope(edge, edge + h));
                eprintln!(
                    "{:?}: slopes at {edge} ± {h:e} differ by {kink:.3e} (slope scale {mid:.3e})",
                    base.radial_basis
                );
                assert!(kink <= 2e-2 * mid, "kink {kink:e} at {edge}");
                assert!(
                    kink <= 0.2 * previous,
                    "not O(h): {kink:e} after {previous:e}"
                );
                previous = kink;
            }
        }
    }
}

/// Default hypers: no `cutoff_function` key, and an explicit `"step"` gives the same bits.
#[test]
fn explicit_step_is_the_default() {
    let text = r#"{"max_angular":3,"cutoff_radius":3.0,"radial_gaussian_width":1.0}"#;
    let default = Hypers::from_json_str(text).unwrap();
    let explicit = Hypers::from_json_str(
        r#"{"max_angular":3,"cutoff_radius":3.0,"radial_gaussian_width":1.0,"cutoff_function":"step"}"#,
    )
    .unwrap();
    assert_eq!(default, explicit);
    let frame = cluster(6, 3.0, 43);
    for backend in [
        Backend::Reference,
        batched(DType::F64, 1 << 16, true),
        batched(DType::F64, 50, false),
    ] {
        let a = compute(
            &default,
            backend.clone(),
            std::slice::from_ref(&frame),
            Quantity::Density,
        );
        let b = compute(
            &explicit,
            backend,
            std::slice::from_ref(&frame),
            Quantity::Density,
        );
        assert_eq!(a.values.data, b.values.data);
    }
}

/// Hypers built in code (bypassing the parser) are validated when a calculator or a
/// differentiable descriptor is built: the error names the field.
#[test]
fn bad_width_in_code_is_refused_by_every_constructor() {
    for width in [-1.0, 0.0, f64::INFINITY, 3.5] {
        let hypers = smooth(Hypers::gto(2, 3.0, 1.0), width);
        let e = Calculator::new(&hypers, Backend::Reference)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("cutoff_function.shifted_cosine.width"), "{e}");
        let e = Calculator::new(&hypers, batched(DType::F32, 100, true))
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("cutoff_function.shifted_cosine.width"), "{e}");
        let e = DifferentiableDescriptor::new(&hypers, &Device::Cpu, DType::F64)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("cutoff_function.shifted_cosine.width"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The differentiable path

const FD_STEP: f64 = 1e-5;
const FD_TOLERANCE: f64 = 1e-6;

/// `L = Σ w X`, its autograd gradients (positions, quaternions, semi-axes) and the rows.
fn autograd(hypers: &Hypers, frame: &Frame, w: &[f64]) -> (f64, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let (loss, grads, rows) = power_spectrum_autograd(hypers, frame, w);
    (loss, grads.into(), rows)
}

/// Central finite differences of `L` (reference backend): positions, quaternions, semi-axes.
fn finite_differences(hypers: &Hypers, frame: &Frame, w: &[f64]) -> Vec<Vec<f64>> {
    let value = |f: &Frame| {
        let x = reference(
            hypers,
            std::slice::from_ref(f),
            Quantity::PowerSpectrumPerCenter,
        );
        weighted_sum(&x, w)
    };
    central_differences(frame, FD_STEP, value).into()
}

fn check_gradients(label: &str, hypers: &Hypers, frame: &Frame, seed: u64) {
    let (in_zone, margin) = zone_pairs(frame, hypers.cutoff_radius, hypers.cutoff_function.width());
    assert!(in_zone >= 6, "{label}: only {in_zone} pairs in the zone");
    assert!(
        margin > 1e-3,
        "{label}: a pair lies {margin:e} from the cutoff"
    );
    let expected = reference(
        hypers,
        std::slice::from_ref(frame),
        Quantity::PowerSpectrumPerCenter,
    );
    let w = weights(expected.values.cols, seed);
    let (loss, ad, rows) = autograd(hypers, frame, &w);
    // Forward: the differentiable rows equal the reference's (every particle is a sample).
    assert_eq!(rows.len(), expected.values.rows);
    let mut forward = 0.0f64;
    for c in 0..expected.values.cols {
        let scale = (0..rows.len())
            .map(|r| expected.values.row(r)[c].abs())
            .fold(0.0, f64::max);
        for r in 0..rows.len() {
            let d = (rows[r][c] - expected.values.row(r)[c]).abs();
            if d > 0.0 {
                forward = forward.max(d / scale);
            }
        }
    }
    assert!(forward <= 1e-12, "{label}: forward {forward:e}");
    let ref_loss = weighted_sum(&expected, &w);
    assert!((loss - ref_loss).abs() <= 1e-12 * ref_loss.abs().max(1.0));
    let fd = finite_differences(hypers, frame, &w);
    for (name, (a, f)) in ["positions", "quaternions", "semi_axes"]
        .iter()
        .zip(ad.iter().zip(&fd))
    {
        assert_eq!(a.len(), f.len());
        let scale = f.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 1e-6, "{label}: d/d{name} is trivial ({scale:e})");
        let worst = a
            .iter()
            .zip(f)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let rel = worst / scale;
        eprintln!(
            "{label}: d/d{name}: max|ad-fd| = {worst:.3e}, scale {scale:.3e}, rel {rel:.3e} \
             ({in_zone} pairs in the zone, forward {forward:.1e})"
        );
        assert!(rel <= FD_TOLERANCE, "{label}: d/d{name}: {rel:e}");
    }
    // The smooth cutoff's share of the position gradient is not negligible: the step
    // cutoff's gradient differs.
    let mut step = hypers.clone();
    step.cutoff_function = CutoffFunction::Step;
    let (_, ad_step, _) = autograd(&step, frame, &w);
    let scale = fd[0].iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let change = max_diff(&ad_step[0], &ad[0]);
    assert!(
        change > 1e-3 * scale,
        "{label}: smooth and step gradients agree"
    );
}

#[test]
fn differentiable_gradients_match_finite_differences_in_the_zone() {
    let frame = cluster(6, 2.8, 51);
    check_gradients(
        "open gto",
        &smooth(Hypers::gto(3, 3.0, 1.0), 1.2),
        &frame,
        1,
    );
    check_gradients(
        "open monomial",
        &smooth(Hypers::monomial(2, 3.0), 1.5),
        &frame,
        2,
    );
    check_gradients(
        "width = cutoff",
        &smooth(Hypers::gto(2, 2.6, 0.9), 2.6),
        &frame,
        3,
    );
    let mut spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 8);
    spec.n_species = 2;
    spec.periodic = true;
    spec.seed = 52;
    let periodic = generate(&spec, 1).remove(0);
    check_gradients(
        "periodic gto 2 species",
        &smooth(Hypers::gto(3, 3.0, 0.8), 1.0),
        &periodic,
        4,
    );
}

/// The autograd force of a neighbour approaching `r_c` from inside vanishes (the step cutoff's
/// does not): forces are continuous across the crossing.
#[test]
fn differentiable_force_vanishes_at_the_cutoff() {
    let base = Hypers::gto(3, 3.0, 1.0);
    let hypers = smooth(base.clone(), 0.8);
    let w: Vec<f64> = {
        let n = reference(&hypers, &[dimer(2.0)], Quantity::PowerSpectrumPerCenter)
            .values
            .cols;
        weights(n, 7)
    };
    let force = |h: &Hypers, d: f64| {
        let g = autograd(h, &dimer(d), &w).1.remove(0);
        g[3..6].iter().fold(0.0f64, |m, v| m.max(v.abs()))
    };
    let inside = force(&hypers, 2.6);
    assert!(inside > 0.0);
    let mut previous = f64::INFINITY;
    for delta in [1e-2, 1e-3, 1e-4] {
        let f = force(&hypers, 3.0 - delta);
        assert!(f <= 0.2 * previous, "force {f:e} at r_c - {delta:e}");
        previous = f;
    }
    assert!(previous <= 1e-3 * inside, "{previous:e} vs {inside:e}");
    let step = force(&base, 3.0 - 1e-4);
    assert!(step > 1e-2 * inside, "step force {step:e}");
}
