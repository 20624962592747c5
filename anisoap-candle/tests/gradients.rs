//! The differentiable descriptor (`anisoap_candle::differentiable`): forward pass against the
//! reference backend, autograd gradients against central finite differences of the reference
//! backend, and what happens when a neighbour crosses the cutoff.
//!
//! Scalar checked: `L = Σ_i Σ_f w_f X_if` with fixed random weights `w` over the per-centre
//! power spectrum `X` (f64). Finite differences: central, step `1e-5` (positions, quaternion
//! components, semi-axes), reference backend. Each gradient (positions, quaternions,
//! semi-axes) must agree to `max |g_ad - g_fd| ≤ 1e-6 · max |g_fd|`. Every system is checked
//! to have no pair within `1e-3` of the cutoff, so no finite-difference step changes the pair
//! list. Each gradient must also be non-trivial: its largest component at least
//! `GRADIENT_FLOOR` times `Σ_i Σ_f |w_f X_if|` (the size of `L` without cancellation), far
//! above the finite-difference rounding noise (~1e-11 of it), so a zero or vanishing gradient
//! cannot pass.
//!
//! The tests write nothing by default. `ANISOAP_WRITE_RESULTS=DIR` (opt-in) writes the measured
//! errors to `DIR/fd_verification.json` (`results/gradients/fd_verification.json` holds such a
//! run: `ANISOAP_WRITE_RESULTS=results/gradients cargo test --release -p anisoap-candle --test
//! gradients`; a relative DIR is taken from the repository root).

// Index loops over particles, components and columns read most clearly here.
#![allow(clippy::needless_range_loop)]

mod common;

use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use anisoap_candle::hypers::MaxRadial;
use anisoap_candle::{Features, Frame, Hypers, Quantity};
use candle_core::{DType, Device};
use common::fd::{
    central_differences, cutoff_margin, liquid, power_spectrum_autograd, reference_features,
    scale_quaternions, triclinic, weighted_sum, weights,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

#[path = "../examples/gay_berne/potential.rs"]
#[allow(dead_code)]
mod gay_berne;

const FD_STEP: f64 = 1e-5;
const FD_TOLERANCE: f64 = 1e-6;
/// Smallest accepted `max |g_fd|`, relative to `Σ |w_f X_if|`.
const GRADIENT_FLOOR: f64 = 1e-4;

/// Serialises writes of the FD report by the tests of this process.
static REPORT: Mutex<()> = Mutex::new(());

/// With `ANISOAP_WRITE_RESULTS=DIR` set, adds (or replaces) one system's entry in
/// `DIR/fd_verification.json`; otherwise does nothing (tests do not write into the repository).
fn record(entry: serde_json::Value) {
    let Some(dir) = std::env::var_os("ANISOAP_WRITE_RESULTS") else {
        return;
    };
    let _guard = REPORT.lock().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fd_verification.json");
    let mut systems: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["systems"].as_array().cloned())
        .unwrap_or_default();
    systems.retain(|s| s["system"] != entry["system"]);
    systems.push(entry);
    systems.sort_by_key(|s| s["system"].as_str().unwrap_or("").to_string());
    let report = serde_json::json!({
        "scalar": "L = sum_i sum_f w_f X_if (per-centre power spectrum), w ~ U(-1, 1) fixed",
        "finite_differences": format!("central, step {FD_STEP:e}, reference backend, f64"),
        "metric": "max|g_autograd - g_fd| / max|g_fd|, per gradient",
        "tolerance": FD_TOLERANCE,
        "gradient_floor": "max|g_fd| >= 1e-4 * sum_i sum_f |w_f X_if| (scale_ratio)",
        "systems": systems,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap() + "\n").unwrap();
}

fn reference(hypers: &Hypers, frame: &Frame, quantity: Quantity) -> Features {
    reference_features(hypers, std::slice::from_ref(frame), quantity)
}

/// Autograd gradients of `L` w.r.t. positions, quaternions and semi-axes (flattened).
fn autograd(hypers: &Hypers, frame: &Frame, w: &[f64]) -> (f64, [Vec<f64>; 3]) {
    let (loss, grads, _) = power_spectrum_autograd(hypers, frame, w);
    (loss, grads)
}

/// Central finite differences of `L` (reference backend) for the three inputs.
fn finite_differences(hypers: &Hypers, frame: &Frame, w: &[f64]) -> [Vec<f64>; 3] {
    central_differences(frame, FD_STEP, |f: &Frame| {
        weighted_sum(&reference(hypers, f, Quantity::PowerSpectrumPerCenter), w)
    })
}

fn check_gradients(label: &str, hypers: &Hypers, frame: &Frame, seed: u64) {
    let margin = cutoff_margin(frame, hypers.cutoff_radius);
    assert!(
        margin > 1e-3,
        "{label}: a pair lies {margin:e} from the cutoff; pick another configuration"
    );
    let expected = reference(hypers, frame, Quantity::PowerSpectrumPerCenter);
    let w = weights(expected.values.cols, seed);
    let (loss, ad) = autograd(hypers, frame, &w);
    let ref_loss = weighted_sum(&expected, &w);
    assert!(
        (loss - ref_loss).abs() <= 1e-12 * ref_loss.abs().max(1.0),
        "{label}: loss {loss} vs reference {ref_loss}"
    );
    // Size of L without cancellation: the gradients are compared with it.
    let magnitude: f64 = expected
        .values
        .data
        .chunks(expected.values.cols)
        .map(|row| row.iter().zip(&w).map(|(x, w)| (x * w).abs()).sum::<f64>())
        .sum();
    assert!(magnitude > 0.0, "{label}: all features are zero");
    let fd = finite_differences(hypers, frame, &w);
    let mut errors = Vec::new();
    for (name, (a, f)) in ["positions", "quaternions", "semi_axes"]
        .iter()
        .zip(ad.iter().zip(&fd))
    {
        assert_eq!(
            a.len(),
            f.len(),
            "{label}: d/d{name}: autograd vs FD lengths"
        );
        let scale = f.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(f)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let rel = worst / scale;
        let ad_scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let ratio = scale / magnitude;
        eprintln!(
            "{label}: d/d{name}: max|ad-fd| = {worst:.3e}, scale {scale:.3e} \
             ({ratio:.3e} of sum|wX| = {magnitude:.3e}), rel {rel:.3e}"
        );
        assert!(
            ratio >= GRADIENT_FLOOR && ad_scale >= GRADIENT_FLOOR * magnitude,
            "{label}: d/d{name} is trivial: max|g_fd| = {scale:e}, max|g_ad| = {ad_scale:e}, \
             sum|wX| = {magnitude:e}"
        );
        assert!(
            rel <= FD_TOLERANCE,
            "{label}: d/d{name} relative error {rel:e} > {FD_TOLERANCE:e}\nad {a:?}\nfd {f:?}"
        );
        errors.push((name.to_string(), rel, ratio));
    }
    let mut entry = serde_json::json!({
        "system": label,
        "particles": frame.len(),
        "features": expected.values.cols,
        "cutoff_margin": margin,
    });
    for (name, rel, ratio) in errors {
        entry[format!("{name}_scale_ratio")] = serde_json::json!(ratio);
        entry[name] = serde_json::json!(rel);
    }
    record(entry);
}

// ---------------------------------------------------------------------------------------------
// Forward pass

/// Column-scaled comparison of the differentiable per-centre rows with the reference backend.
fn check_forward(label: &str, hypers: &Hypers, frame: &Frame) {
    let device = Device::Cpu;
    let expected = reference(hypers, frame, Quantity::PowerSpectrumPerCenter);
    let descriptor = DifferentiableDescriptor::new(hypers, &device, DType::F64).unwrap();
    let inputs = FrameTensors::from_frame(frame, "c_q", &device, DType::F64).unwrap();
    let neighbors = descriptor
        .neighbors(
            &inputs.positions,
            &inputs.types,
            &inputs.cell,
            inputs.pbc,
            &SpeciesLayout::FromPairs,
        )
        .unwrap();
    assert_eq!(neighbors.layout, expected.layout, "{label}: layout");
    let x = descriptor
        .power_spectrum(
            &inputs.positions,
            &inputs.quaternions,
            &inputs.semi_axes,
            &neighbors,
        )
        .unwrap();
    let rows = x.to_vec2::<f64>().unwrap();
    let e = &expected.values;
    // The reference has one row per sample centre (all particles unless some has no pair).
    let samples = expected.center.as_ref().unwrap();
    assert_eq!(rows[0].len(), e.cols, "{label}: width");
    for i in 0..frame.len() {
        if !samples.contains(&i) {
            assert!(rows[i].iter().all(|&v| v == 0.0), "{label}: non-sample row");
        }
    }
    for c in 0..e.cols {
        let scale = (0..e.rows)
            .map(|r| e.data[r * e.cols + c].abs())
            .fold(0.0, f64::max);
        for (r, &i) in samples.iter().enumerate() {
            let (a, b) = (rows[i][c], e.data[r * e.cols + c]);
            assert!(
                (a - b).abs() <= 1e-12 * scale + 1e-300,
                "{label}: centre {i} col {c}: {a} vs {b} (column scale {scale})"
            );
        }
    }
    // Per-frame mean helper against the original's default output.
    let mean_expected = reference(hypers, frame, Quantity::PowerSpectrumMean);
    let mean = neighbors.frame_mean(&x).unwrap().to_vec2::<f64>().unwrap();
    for c in 0..e.cols {
        let b = mean_expected.values.data[c];
        let scale = b.abs().max(1e-300);
        assert!(
            (mean[0][c] - b).abs() <= 1e-12 * scale.max(1e-3 * column_max(e, c)),
            "{label}: mean col {c}: {} vs {b}",
            mean[0][c]
        );
    }
}

fn column_max(m: &anisoap_candle::Matrix, c: usize) -> f64 {
    (0..m.rows)
        .map(|r| m.data[r * m.cols + c].abs())
        .fold(0.0, f64::max)
}

fn gto_radial(max_angular: usize, cutoff: f64, width: f64, max_radial: MaxRadial) -> Hypers {
    let mut h = Hypers::gto(max_angular, cutoff, width);
    h.max_radial = max_radial;
    h
}

#[test]
fn forward_matches_reference_per_center() {
    let open = liquid(9, 1, false, 0.2, 11);
    check_forward("open gto", &Hypers::gto(4, 3.5, 1.0), &open);
    check_forward("open monomial", &Hypers::monomial(3, 3.0), &open);
    let periodic = scale_quaternions(liquid(10, 2, true, 0.25, 12));
    check_forward(
        "periodic gto 2 species",
        &Hypers::gto(5, 3.0, 0.8),
        &periodic,
    );
    let triclinic = triclinic(liquid(8, 3, true, 0.2, 13));
    check_forward(
        "triclinic gto 3 species max_radial 2",
        &gto_radial(3, 3.2, 0.9, MaxRadial::Uniform(2)),
        &triclinic,
    );
    // Small cell: images of the particle itself within the cutoff.
    let small = liquid(4, 2, true, 0.3, 14);
    assert!(small.cell[0][0] < 3.0);
    check_forward("small cell monomial", &Hypers::monomial(2, 3.0), &small);
    let mut subtract = Hypers::gto(3, 2.0, 1.0);
    subtract.subtract_center_contribution = true;
    check_forward(
        "subtract centre, open",
        &subtract,
        &liquid(7, 2, false, 0.05, 15),
    );
}

#[test]
fn fixed_layout_equals_pair_layout_when_all_pair_types_occur() {
    let frame = liquid(10, 2, true, 0.3, 21);
    let hypers = Hypers::gto(3, 3.0, 1.0);
    let device = Device::Cpu;
    let descriptor = DifferentiableDescriptor::new(&hypers, &device, DType::F64).unwrap();
    let inputs = FrameTensors::from_frame(&frame, "c_q", &device, DType::F64).unwrap();
    let compute = |species: SpeciesLayout| {
        let nl = descriptor
            .neighbors(
                &inputs.positions,
                &inputs.types,
                &inputs.cell,
                inputs.pbc,
                &species,
            )
            .unwrap();
        descriptor
            .power_spectrum(
                &inputs.positions,
                &inputs.quaternions,
                &inputs.semi_axes,
                &nl,
            )
            .unwrap()
            .to_vec2::<f64>()
            .unwrap()
    };
    let a = compute(SpeciesLayout::FromPairs);
    let b = compute(SpeciesLayout::Fixed(vec![6, 1]));
    assert_eq!(a, b);
    // A species list with an extra type widens every block; the values of the present
    // neighbour types keep their magnitude (checked through the l = 0, n = 0 diagonal).
    let c = compute(SpeciesLayout::Fixed(vec![1, 6, 8]));
    assert!(c[0].len() > a[0].len());
    // Row i lies in the block of its centre type; l = 0 comes first in a block, with
    // `N_0 E` columns p = n E + e, so the (n = 0, type e) diagonal sits at p * (N_0 E) + p.
    let n0 = hypers.n_radial()[0];
    let diagonal = |row: &[f64], species: &[i32], center: i32, e: usize| {
        let n_e = species.len();
        let width: usize = hypers
            .n_radial()
            .iter()
            .map(|n| (n * n_e) * (n * n_e))
            .sum();
        let b = species.iter().position(|&t| t == center).unwrap();
        let w0 = n0 * n_e;
        row[b * width + e * w0 + e]
    };
    assert_eq!(c.len(), a.len());
    let mut total = 0.0;
    for (i, (ra, rc)) in a.iter().zip(&c).enumerate() {
        let t = frame.numbers[i];
        for e in 0..2 {
            let (x, y) = (diagonal(ra, &[1, 6], t, e), diagonal(rc, &[1, 6, 8], t, e));
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1e-300),
                "row {i}, type {e}: {x} vs {y}"
            );
            total += x;
        }
        assert_eq!(
            diagonal(rc, &[1, 6, 8], t, 2),
            0.0,
            "row {i}: absent type 8"
        );
    }
    assert!(total > 0.0, "the l = 0, n = 0 diagonals are all zero");
    assert!(descriptor
        .neighbors(
            &inputs.positions,
            &inputs.types,
            &inputs.cell,
            inputs.pbc,
            &SpeciesLayout::Fixed(vec![1])
        )
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// Gradients against finite differences

#[test]
fn gradients_open_gto_one_species() {
    let frame = liquid(8, 1, false, 0.15, 31);
    check_gradients(
        "open, GTO lmax 4, 1 species",
        &Hypers::gto(4, 3.5, 1.0),
        &frame,
        1,
    );
}

#[test]
fn gradients_open_monomial_two_species() {
    let frame = scale_quaternions(liquid(7, 2, false, 0.15, 32));
    check_gradients(
        "open, monomial lmax 3, 2 species, non-unit quaternions",
        &Hypers::monomial(3, 3.0),
        &frame,
        2,
    );
}

#[test]
fn gradients_periodic_cubic_gto_two_species() {
    let frame = liquid(8, 2, true, 0.25, 33);
    check_gradients(
        "periodic cubic, GTO lmax 4 max_radial 2, 2 species",
        &gto_radial(4, 3.0, 0.8, MaxRadial::Uniform(2)),
        &frame,
        3,
    );
}

#[test]
fn gradients_periodic_triclinic_three_species() {
    let frame = triclinic(liquid(8, 3, true, 0.2, 34));
    check_gradients(
        "periodic triclinic, GTO lmax 3, 3 species",
        &Hypers::gto(3, 3.2, 0.9),
        &frame,
        4,
    );
    check_gradients(
        "periodic triclinic, monomial lmax 2, 3 species",
        &Hypers::monomial(2, 2.75),
        &frame,
        5,
    );
}

#[test]
fn gradients_small_cell_with_self_images() {
    let frame = liquid(4, 2, true, 0.3, 35);
    check_gradients(
        "small periodic cell (self images), GTO lmax 3, 2 species",
        &Hypers::gto(3, 3.0, 1.0),
        &frame,
        6,
    );
}

#[test]
fn gradients_subtract_center_contribution() {
    let mut hypers = Hypers::gto(3, 3.0, 1.0);
    hypers.subtract_center_contribution = true;
    let frame = liquid(7, 2, false, 0.15, 36);
    check_gradients("open, GTO lmax 3, subtract centre", &hypers, &frame, 7);
}

#[test]
fn gradient_symmetries() {
    // Periodic: the total force vanishes. Any system: quaternion gradients are orthogonal to
    // the quaternions (only their direction matters).
    let frame = scale_quaternions(liquid(12, 2, true, 0.3, 37));
    let hypers = Hypers::gto(4, 3.0, 1.0);
    let expected = reference(&hypers, &frame, Quantity::PowerSpectrumPerCenter);
    let w = weights(expected.values.cols, 8);
    let (_, [dx, dq, _]) = autograd(&hypers, &frame, &w);
    let scale = dx.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for d in 0..3 {
        let total: f64 = dx.iter().skip(d).step_by(3).sum();
        assert!(total.abs() < 1e-10 * scale, "total force {d}: {total}");
    }
    let q = &frame.arrays["c_q"].values;
    for i in 0..frame.len() {
        let dot: f64 = (0..4).map(|k| q[4 * i + k] * dq[4 * i + k]).sum();
        let norm: f64 = (0..4).map(|k| dq[4 * i + k].powi(2)).sum::<f64>().sqrt();
        assert!(dot.abs() < 1e-10 * norm.max(1e-30), "q·dq = {dot}");
    }
}

// ---------------------------------------------------------------------------------------------
// The cutoff

/// Centre 0 (type 1) at the origin, neighbour 1 (type 6) on the x axis at distance `d`,
/// particle 2 (type 6) well inside the cutoff of 0 and 1's partner for the pair types.
fn crossing_frame(d: f64, with_neighbor: bool) -> Frame {
    let mut positions = vec![[0.0, 0.0, 0.0], [0.3, 1.1, -0.4]];
    let mut numbers = vec![1, 6];
    let mut q = vec![0.9, 0.1, -0.3, 0.2, 0.5, 0.5, -0.5, 0.5];
    let mut axes = vec![[0.5, 0.6, 1.5], [0.5, 0.5, 1.4]];
    if with_neighbor {
        positions.push([d, 0.0, 0.0]);
        numbers.push(6);
        q.extend_from_slice(&[0.3, -0.7, 0.2, 0.6]);
        axes.push([0.45, 0.55, 1.5]);
    }
    common::ellipsoid_frame(positions, numbers, q, &axes)
}

#[test]
fn crossing_the_cutoff_jumps_by_exactly_the_pair_contribution() {
    for hypers in [Hypers::gto(4, 3.0, 1.0), Hypers::monomial(3, 3.0)] {
        let rc = hypers.cutoff_radius;
        let inside = crossing_frame(rc * (1.0 - 1e-12), true);
        let outside = crossing_frame(rc * (1.0 + 1e-12), true);
        let removed = crossing_frame(0.0, false);
        // Density of centre 0 (reference backend; both frames have the same pair types).
        let d_in = reference(&hypers, &inside, Quantity::Density);
        let d_out = reference(&hypers, &outside, Quantity::Density);
        assert_eq!(d_in.layout, d_out.layout);
        let row = |f: &Features, i: usize| f.values.row(i).to_vec();
        assert_eq!(d_in.values.cols, d_out.values.cols);
        let jump: Vec<f64> = row(&d_in, 0)
            .iter()
            .zip(row(&d_out, 0))
            .map(|(a, b)| a - b)
            .collect();
        // The isolated pair (0, 2) coefficient: the density of centre 0 in the two-particle
        // frame {0, 2} minus that of 0 alone (differentiable path, fixed species layout),
        // converted to the reference's (l, m, n E + e) column order.
        let device = Device::Cpu;
        let descriptor = DifferentiableDescriptor::new(&hypers, &device, DType::F64).unwrap();
        let centre_density = |frame: &Frame| {
            let t = FrameTensors::from_frame(frame, "c_q", &device, DType::F64).unwrap();
            let nl = descriptor
                .neighbors(
                    &t.positions,
                    &t.types,
                    &t.cell,
                    t.pbc,
                    &SpeciesLayout::Fixed(vec![1, 6]),
                )
                .unwrap();
            let d = descriptor
                .density(&t.positions, &t.quaternions, &t.semi_axes, &nl)
                .unwrap();
            d.get(0).unwrap().to_vec2::<f64>().unwrap()
        };
        let mut pair_only = crossing_frame(rc * (1.0 - 1e-12), true);
        pair_only.positions[1] = [0.0, -50.0, 0.0]; // particle 1 far away
        let mut alone = pair_only.clone();
        alone.positions[2] = [0.0, 50.0, 0.0];
        let (with, without) = (centre_density(&pair_only), centre_density(&alone));
        let basis = descriptor.basis();
        let mut pair = Vec::new();
        for (l, &n_l) in basis.n_radial.iter().enumerate() {
            for m in 0..2 * l + 1 {
                for n in 0..n_l {
                    for slot in 0..2 {
                        let k = basis.column(l, m, n);
                        pair.push(with[slot][k] - without[slot][k]);
                    }
                }
            }
        }
        let scale = pair.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(
            scale > 1e-6,
            "the pair contribution at r_c is not negligible here"
        );
        // Centre 0's row is filled in its own centre type's block (type 1) and zero elsewhere:
        // compare that block with the pair, and the rest of the jump must be zero.
        let layout = &d_in.layout;
        let b = layout.center_block(inside.numbers[0]).unwrap();
        let (offsets, total) = layout.block_offsets(|b| layout.density_width(b));
        assert_eq!(total, jump.len());
        let block = offsets[b]..offsets[b] + layout.density_width(b);
        assert_eq!(
            block.len(),
            pair.len(),
            "density block vs pair coefficients"
        );
        for (k, j) in jump.iter().enumerate() {
            assert!(
                block.contains(&k) || *j == 0.0,
                "column {k} outside the block: {j}"
            );
        }
        let jump = &jump[block];
        for (k, (j, p)) in jump.iter().zip(&pair).enumerate() {
            assert!(
                (j - p).abs() <= 1e-10 * scale,
                "{:?}: coefficient {k}: jump {j} vs pair contribution {p}",
                hypers.radial_basis
            );
        }
        // Nothing more: with the neighbour just outside, every feature equals that of the
        // frame without it (other rows), and the jump of the power spectrum is the change
        // of its quadratic form by that pair's coefficients only.
        let ps_out = reference(&hypers, &outside, Quantity::PowerSpectrumPerCenter);
        let ps_removed = reference(&hypers, &removed, Quantity::PowerSpectrumPerCenter);
        let ps_in = reference(&hypers, &inside, Quantity::PowerSpectrumPerCenter);
        let e_scale = ps_in.values.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_eq!(ps_in.values.cols, ps_out.values.cols);
        assert_eq!(ps_out.values.cols, ps_removed.values.cols);
        assert_eq!(
            ps_out.layout.neighbor_slots,
            ps_removed.layout.neighbor_slots
        );
        for c in 0..ps_out.values.cols {
            let (a, b) = (ps_out.values.row(0)[c], ps_removed.values.row(0)[c]);
            assert!(
                (a - b).abs() <= 1e-13 * e_scale,
                "outside vs removed: {a} {b}"
            );
        }
        let ps_jump = ps_in
            .values
            .row(0)
            .iter()
            .zip(ps_out.values.row(0))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{:?}: density jump at r_c: max {scale:.3e}; power-spectrum jump of the centre: \
             {ps_jump:.3e} (largest feature {e_scale:.3e})",
            hypers.radial_basis
        );
        assert!(ps_jump > 0.0);
        // Autograd just inside the cutoff is the derivative of the smooth piece: finite,
        // and equal to finite differences that do not cross.
        let inside_margin = crossing_frame(rc * (1.0 - 1e-3), true);
        let expected = reference(&hypers, &inside_margin, Quantity::PowerSpectrumPerCenter);
        let w = weights(expected.values.cols, 9);
        let (_, ad) = autograd(&hypers, &inside_margin, &w);
        let fd = finite_differences(&hypers, &inside_margin, &w);
        let scale = fd[0].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert_eq!(ad[0].len(), fd[0].len());
        for (a, f) in ad[0].iter().zip(&fd[0]) {
            assert!((a - f).abs() <= FD_TOLERANCE * scale, "{a} vs {f}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gay-Berne potential of the example: analytic forces and torques against finite differences

#[test]
fn gay_berne_forces_match_finite_differences() {
    use gay_berne::{GayBerne, Particle};
    let gb = GayBerne::standard();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let particles: Vec<Particle> = (0..6)
        .map(|i| {
            let q: [f64; 4] = [0, 1, 2, 3].map(|_| rng.gen_range(-1.0..1.0));
            Particle {
                position: [
                    i as f64 * 1.7,
                    rng.gen_range(-0.5..0.5),
                    rng.gen_range(0.0..2.5),
                ],
                quaternion: q,
            }
        })
        .collect();
    let (_, forces, dq) = gb.energy_forces(&particles);
    let h = 1e-6;
    let energy = |p: &[Particle]| gb.energy_forces(p).0;
    let mut worst = (0.0f64, 0.0f64);
    let mut scale = (0.0f64, 0.0f64);
    for i in 0..particles.len() {
        for d in 0..3 {
            let (mut a, mut b) = (particles.clone(), particles.clone());
            a[i].position[d] += h;
            b[i].position[d] -= h;
            let fd = -(energy(&a) - energy(&b)) / (2.0 * h);
            worst.0 = worst.0.max((fd - forces[i][d]).abs());
            scale.0 = scale.0.max(fd.abs());
        }
        for k in 0..4 {
            let (mut a, mut b) = (particles.clone(), particles.clone());
            a[i].quaternion[k] += h;
            b[i].quaternion[k] -= h;
            let fd = (energy(&a) - energy(&b)) / (2.0 * h);
            worst.1 = worst.1.max((fd - dq[i][k]).abs());
            scale.1 = scale.1.max(fd.abs());
        }
    }
    eprintln!("Gay-Berne: force error {worst:?} of scale {scale:?}");
    assert!(worst.0 <= 1e-6 * scale.0, "forces {worst:?} {scale:?}");
    assert!(
        worst.1 <= 1e-6 * scale.1,
        "quaternion gradient {worst:?} {scale:?}"
    );
}
