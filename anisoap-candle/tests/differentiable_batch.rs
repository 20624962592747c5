//! Batches of frames through the differentiable descriptor and the feature Jacobians:
//! batched values and gradients equal the one-frame path, the finite-difference Jacobians
//! equal autograd.

mod common;

use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use anisoap_candle::differentiable_batch::rotate_lab;
use anisoap_candle::Hypers;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn unit_quaternion(rng: &mut ChaCha8Rng) -> [f64; 4] {
    let q: [f64; 4] = [0, 1, 2, 3].map(|_| rng.gen_range(-1.0..1.0));
    let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    q.map(|v| v / n)
}

/// A random frame of `n` ellipsoids of two types in a cube of side `side`.
fn frame(n: usize, side: f64, periodic: bool, rng: &mut ChaCha8Rng) -> FrameTensors {
    let d = Device::Cpu;
    let pos: Vec<f64> = (0..3 * n).map(|_| rng.gen_range(0.0..side)).collect();
    let quat: Vec<f64> = (0..n).flat_map(|_| unit_quaternion(rng)).collect();
    let axes: Vec<f64> = (0..n)
        .flat_map(|_| [0.5, 0.6, 1.2].map(|a: f64| a * rng.gen_range(0.9..1.1)))
        .collect();
    FrameTensors {
        positions: Tensor::from_vec(pos, (n, 3), &d).unwrap(),
        quaternions: Tensor::from_vec(quat, (n, 4), &d).unwrap(),
        semi_axes: Tensor::from_vec(axes, (n, 3), &d).unwrap(),
        types: (0..n).map(|i| if i % 3 == 0 { 6 } else { 1 }).collect(),
        cell: [[side, 0.0, 0.0], [0.0, side, 0.0], [0.0, 0.0, side]],
        pbc: [periodic; 3],
    }
}

fn descriptor() -> DifferentiableDescriptor {
    let mut hypers = Hypers::gto(3, 3.0, 0.8);
    hypers.max_radial = anisoap_candle::hypers::MaxRadial::Uniform(1);
    DifferentiableDescriptor::new(&hypers, &Device::Cpu, DType::F64).unwrap()
}

fn species() -> SpeciesLayout {
    SpeciesLayout::Fixed(vec![1, 6])
}

fn relative(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "reference is all zero");
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Features of one frame and the gradient of `Σ w·X` with respect to its positions and
/// quaternions, by the one-frame path.
fn single(
    d: &DifferentiableDescriptor,
    f: &FrameTensors,
    w: &Tensor,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let p = Var::from_tensor(&f.positions).unwrap();
    let q = Var::from_tensor(&f.quaternions).unwrap();
    let nl = d
        .neighbors(&p, &f.types, &f.cell, f.pbc, &species())
        .unwrap();
    let x = d.power_spectrum(&p, &q, &f.semi_axes, &nl).unwrap();
    let grads = x.matmul(w).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    (
        flat(&x),
        flat(grads.get(&p).unwrap()),
        flat(grads.get(&q).unwrap()),
    )
}

#[test]
fn a_batch_equals_frame_by_frame_in_values_and_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let d = descriptor();
    // Three open frames of different sizes and one periodic frame.
    let frames = [
        frame(5, 3.0, false, &mut rng),
        frame(8, 4.0, false, &mut rng),
        frame(6, 5.0, true, &mut rng),
        frame(3, 2.0, false, &mut rng),
    ];
    let vars: Vec<(Var, Var)> = frames
        .iter()
        .map(|f| {
            (
                Var::from_tensor(&f.positions).unwrap(),
                Var::from_tensor(&f.quaternions).unwrap(),
            )
        })
        .collect();
    let tracked: Vec<FrameTensors> = frames
        .iter()
        .zip(&vars)
        .map(|(f, (p, q))| FrameTensors {
            positions: p.as_tensor().clone(),
            quaternions: q.as_tensor().clone(),
            ..f.clone()
        })
        .collect();
    let batch = d.power_spectrum_batch(&tracked, &species()).unwrap();
    let n_features = batch.features.dim(1).unwrap();
    let weights: Vec<f64> = (0..n_features).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let w = Tensor::from_vec(weights, (n_features, 1), &Device::Cpu).unwrap();
    let grads = batch
        .features
        .matmul(&w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(batch.rows, vec![0..5, 5..13, 13..19, 19..22]);
    for (k, f) in frames.iter().enumerate() {
        let (x, gp, gq) = single(&d, f, &w);
        let rows = batch.rows[k].clone();
        let got = batch
            .features
            .narrow(0, rows.start, rows.len())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let flat = |v: &Var| common::fd::gradient(&grads, v);
        let (ex, ep, eq) = (
            relative(&got, &x),
            relative(&flat(&vars[k].0), &gp),
            relative(&flat(&vars[k].1), &gq),
        );
        assert!(
            ex < 1e-12 && ep < 1e-10 && eq < 1e-10,
            "frame {k}: {ex:e} {ep:e} {eq:e}"
        );
    }
    // Per-frame sums of the per-centre values.
    let sums = batch.frame_sums(&batch.features).unwrap();
    assert_eq!(sums.dims(), &[4, n_features]);
    let first = batch.features.narrow(0, 0, 5).unwrap().sum(0).unwrap();
    let diff = (sums.get(0).unwrap() - first)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-12, "{diff}");
}

#[test]
fn groups_cover_every_frame_with_bounded_size_and_equal_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let d = descriptor();
    let frames: Vec<_> = (0..7).map(|_| frame(6, 3.5, false, &mut rng)).collect();
    let whole = d.power_spectrum_batch(&frames, &species()).unwrap();
    let mut seen = Vec::new();
    d.power_spectrum_groups(&frames, &species(), 13, |range, batch| {
        assert!(range.len() <= 2, "{range:?} holds more than 13 particles");
        let rows = range.start * 6..range.end * 6;
        let expected = whole.features.narrow(0, rows.start, rows.len())?;
        let diff = (batch.features - expected)?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(diff < 1e-12, "{range:?}: {diff}");
        seen.extend(range);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, (0..7).collect::<Vec<_>>());
}

#[test]
fn a_batch_needs_a_fixed_layout() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let frames = vec![frame(4, 3.0, false, &mut rng)];
    let err = descriptor()
        .power_spectrum_batch(&frames, &SpeciesLayout::FromPairs)
        .unwrap_err()
        .to_string();
    assert!(err.contains("SpeciesLayout::Fixed"), "{err}");
    let err = descriptor()
        .feature_jacobians(&[frame(4, 3.0, true, &mut rng)], &species(), 1e-5, 100)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("frame 0") && err.contains("open frames"),
        "{err}"
    );
}

#[test]
fn finite_difference_jacobians_equal_autograd() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let d = descriptor();
    // Two frames in one group (perturbed together), a third in its own group.
    let frames = [
        frame(4, 2.5, false, &mut rng),
        frame(5, 2.5, false, &mut rng),
        frame(3, 2.0, false, &mut rng),
    ];
    let jac = d.feature_jacobians(&frames, &species(), 1e-5, 9).unwrap();
    let mut worst: f64 = 0.0;
    for (k, f) in frames.iter().enumerate() {
        let n = f.types.len();
        let p = Var::from_tensor(&f.positions).unwrap();
        let q = Var::from_tensor(&f.quaternions).unwrap();
        let nl = d
            .neighbors(&p, &f.types, &f.cell, f.pbc, &species())
            .unwrap();
        let x = d.power_spectrum(&p, &q, &f.semi_axes, &nl).unwrap();
        let n_features = x.dim(1).unwrap();
        assert_eq!(jac[k].len(), n * n_features * n * 6);
        let quats = f.quaternions.to_vec2::<f64>().unwrap();
        let scale = jac[k].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..n {
            for feat in 0..n_features {
                let grads = x.get(i).unwrap().get(feat).unwrap().backward().unwrap();
                let gp = grads.get(&p).map(|g| g.to_vec2::<f64>().unwrap());
                let gq = grads.get(&q).map(|g| g.to_vec2::<f64>().unwrap());
                for j in 0..n {
                    let mut auto = [0.0; 6];
                    if let (Some(gp), Some(gq)) = (&gp, &gq) {
                        auto[..3].copy_from_slice(&gp[j]);
                        // ∂X/∂θ = ½ (−g_w u + w g_u + u × g_u) for q = (w, u).
                        let (w, u) = (quats[j][0], [quats[j][1], quats[j][2], quats[j][3]]);
                        let g = &gq[j];
                        let gu = [g[1], g[2], g[3]];
                        let c = [
                            u[1] * gu[2] - u[2] * gu[1],
                            u[2] * gu[0] - u[0] * gu[2],
                            u[0] * gu[1] - u[1] * gu[0],
                        ];
                        for a in 0..3 {
                            auto[3 + a] = 0.5 * (-g[0] * u[a] + w * gu[a] + c[a]);
                        }
                    }
                    for c in 0..6 {
                        let fd = jac[k][((i * n_features + feat) * n + j) * 6 + c];
                        worst = worst.max((fd - auto[c]).abs() / scale);
                    }
                }
            }
        }
    }
    assert!(worst < 1e-7, "FD Jacobian vs autograd: {worst:e}");
}

#[test]
fn rotate_lab_composes_like_a_rotation() {
    // Two half turns about the same lab axis are one full turn: q → −q.
    let q = [0.5, 0.5, -0.5, 0.5];
    let r = rotate_lab(
        rotate_lab(q, 1, std::f64::consts::PI),
        1,
        std::f64::consts::PI,
    );
    for (a, b) in r.iter().zip(q) {
        assert!((a + b).abs() < 1e-15, "{r:?}");
    }
}
