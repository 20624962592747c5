//! The Gay-Berne MLP example's pieces: model forces and torques against finite differences of
//! the model energy, training-time forces `−Jᵀ∇MLP` against autograd, the MLP's explicit
//! input gradient, GB torques, and the rigid-body integrator.
// Index loops over particles and components read like the formulas.
#![allow(clippy::needless_range_loop)]

#[path = "../examples/gay_berne/data.rs"]
mod data;
#[path = "../examples/gay_berne/mlp.rs"]
mod mlp;
#[path = "../examples/gay_berne/potential.rs"]
mod potential;
#[path = "../examples/gay_berne/rigid.rs"]
mod rigid;

use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use anisoap_candle::differentiable_batch::rotate_lab;
use anisoap_candle::Hypers;
use candle_core::{DType, Device, Tensor, Var};
use mlp::{Activation, Mlp, MlpPotential};
use potential::{GayBerne, Particle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const AXES: [f64; 3] = [0.5, 0.5, 1.5];

fn tensors(p: &[Particle]) -> FrameTensors {
    let d = Device::Cpu;
    let n = p.len();
    FrameTensors {
        positions: Tensor::from_vec(p.iter().flat_map(|p| p.position).collect(), (n, 3), &d)
            .unwrap(),
        quaternions: Tensor::from_vec(p.iter().flat_map(|p| p.quaternion).collect(), (n, 4), &d)
            .unwrap(),
        semi_axes: Tensor::from_vec(AXES.repeat(n), (n, 3), &d).unwrap(),
        types: vec![0; n],
        cell: [[0.0; 3]; 3],
        pbc: [false; 3],
    }
}

fn setup(seed: u64) -> (DifferentiableDescriptor, MlpPotential, Vec<Vec<Particle>>) {
    let gb = GayBerne::standard();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clusters: Vec<Vec<Particle>> = (0..3)
        .map(|_| data::insertion(&gb, 6, 3.2, &mut rng))
        .collect();
    let hypers = Hypers::from_toml_str(
        "max_angular = 3\ncutoff_radius = 4.0\nradial_gaussian_width = 0.7\nmax_radial = 2\n",
    )
    .unwrap();
    let d = DifferentiableDescriptor::new(&hypers, &Device::Cpu, DType::F64).unwrap();
    let frames: Vec<_> = clusters.iter().map(|c| tensors(c)).collect();
    let x = d
        .power_spectrum_batch(&frames, &SpeciesLayout::Fixed(vec![0]))
        .unwrap()
        .features;
    let model = MlpPotential::new(&x, &[16, 16], Activation::Silu, &mut rng).unwrap();
    (d, model, clusters)
}

/// Model energy, forces and lab torques by the descriptor's autograd.
fn autograd(
    d: &DifferentiableDescriptor,
    m: &MlpPotential,
    p: &[Particle],
) -> (f64, Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let t = tensors(p);
    let pos = Var::from_tensor(&t.positions).unwrap();
    let quat = Var::from_tensor(&t.quaternions).unwrap();
    let nl = d
        .neighbors(
            &pos,
            &t.types,
            &t.cell,
            t.pbc,
            &SpeciesLayout::Fixed(vec![0]),
        )
        .unwrap();
    let x = d.power_spectrum(&pos, &quat, &t.semi_axes, &nl).unwrap();
    let e = m.centre_energies(&x).unwrap().sum_all().unwrap();
    let g = e.backward().unwrap();
    let gx = g.get(&pos).unwrap().to_vec2::<f64>().unwrap();
    let gq = g.get(&quat).unwrap().to_vec2::<f64>().unwrap();
    (
        e.to_scalar::<f64>().unwrap(),
        gx.iter().map(|g| [-g[0], -g[1], -g[2]]).collect(),
        p.iter()
            .zip(&gq)
            .map(|(p, g)| rigid::lab_torque(p.quaternion, [g[0], g[1], g[2], g[3]]))
            .collect(),
    )
}

#[test]
fn model_forces_and_torques_equal_finite_differences_of_its_energy() {
    let (d, m, clusters) = setup(11);
    let p = &clusters[0];
    let (_, forces, torques) = autograd(&d, &m, p);
    let energy = |p: &[Particle]| autograd(&d, &m, p).0;
    let h = 1e-5;
    let mut worst: f64 = 0.0;
    let scale = forces
        .iter()
        .chain(&torques)
        .flatten()
        .fold(0.0f64, |a, v| a.max(v.abs()));
    assert!(scale > 1e-3, "forces vanish: {scale}");
    for i in 0..p.len() {
        for c in 0..3 {
            let (mut a, mut b) = (p.clone(), p.clone());
            a[i].position[c] += h;
            b[i].position[c] -= h;
            let fd = -(energy(&a) - energy(&b)) / (2.0 * h);
            worst = worst.max((fd - forces[i][c]).abs() / scale);
            let (mut a, mut b) = (p.clone(), p.clone());
            a[i].quaternion = rotate_lab(p[i].quaternion, c, h);
            b[i].quaternion = rotate_lab(p[i].quaternion, c, -h);
            let fd = -(energy(&a) - energy(&b)) / (2.0 * h);
            worst = worst.max((fd - torques[i][c]).abs() / scale);
        }
    }
    assert!(
        worst < 1e-6,
        "autograd vs FD of the model energy: {worst:e}"
    );
}

#[test]
fn training_time_forces_equal_autograd_forces() {
    let (d, m, clusters) = setup(12);
    let frames: Vec<_> = clusters.iter().map(|c| tensors(c)).collect();
    let species = SpeciesLayout::Fixed(vec![0]);
    let x = d.power_spectrum_batch(&frames, &species).unwrap().features;
    let jac = d.feature_jacobians(&frames, &species, 1e-5, 1000).unwrap();
    let (k, n, f) = (clusters.len(), 6, x.dim(1).unwrap());
    let flat: Vec<f64> = jac.into_iter().flatten().collect();
    let j = Tensor::from_vec(flat, (k, n * f, 6 * n), &Device::Cpu).unwrap();
    let (e, g) = m.predict_from_jacobians(&x, &j).unwrap();
    let e = e.to_vec1::<f64>().unwrap();
    let g = g.to_vec3::<f64>().unwrap();
    for (c, p) in clusters.iter().enumerate() {
        let (energy, forces, torques) = autograd(&d, &m, p);
        assert!((energy - e[c]).abs() < 1e-10 * energy.abs().max(1.0));
        let scale = g[c].iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
        for i in 0..n {
            for a in 0..3 {
                assert!(
                    (forces[i][a] - g[c][i][a]).abs() < 1e-7 * scale,
                    "force {c} {i} {a}: {} vs {}",
                    forces[i][a],
                    g[c][i][a]
                );
                assert!(
                    (torques[i][a] - g[c][i][3 + a]).abs() < 1e-7 * scale,
                    "torque {c} {i} {a}: {} vs {}",
                    torques[i][a],
                    g[c][i][3 + a]
                );
            }
        }
    }
}

#[test]
fn mlp_input_gradient_equals_finite_differences() {
    for act in [Activation::Tanh, Activation::Silu] {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mlp = Mlp::new(&[5, 7, 6], act, &mut rng, &Device::Cpu).unwrap();
        let x: Vec<f64> = (0..10).map(|_| rng.gen_range(-2.0..2.0)).collect();
        let xt = Tensor::from_vec(x.clone(), (2, 5), &Device::Cpu).unwrap();
        let (out, g) = mlp.forward_with_gradient(&xt).unwrap();
        let plain = mlp.forward(&xt).unwrap();
        let diff = (out - plain)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(diff < 1e-14, "{act:?}: {diff}");
        let g = g.to_vec2::<f64>().unwrap();
        let h = 1e-6;
        for r in 0..2 {
            for c in 0..5 {
                let at = |delta: f64| {
                    let mut v = x.clone();
                    v[r * 5 + c] += delta;
                    let t = Tensor::from_vec(v, (2, 5), &Device::Cpu).unwrap();
                    mlp.forward(&t).unwrap().to_vec1::<f64>().unwrap()[r]
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                assert!(
                    (fd - g[r][c]).abs() < 1e-8 * (1.0 + fd.abs()),
                    "{act:?} [{r},{c}]: {fd} vs {}",
                    g[r][c]
                );
            }
        }
    }
}

#[test]
fn gay_berne_torques_equal_finite_differences() {
    let gb = GayBerne::standard();
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let p = data::insertion(&gb, 5, 2.8, &mut rng);
    let (_, _, torques) = data::gb_field(&gb, &p);
    let scale = torques.iter().flatten().fold(0.0f64, |a, v| a.max(v.abs()));
    assert!(scale > 1e-3, "{scale}");
    let h = 1e-6;
    for i in 0..p.len() {
        for c in 0..3 {
            let (mut a, mut b) = (p.clone(), p.clone());
            a[i].quaternion = rotate_lab(p[i].quaternion, c, h);
            b[i].quaternion = rotate_lab(p[i].quaternion, c, -h);
            let fd = -(gb.energy_forces(&a).0 - gb.energy_forces(&b).0) / (2.0 * h);
            assert!(
                (fd - torques[i][c]).abs() < 1e-6 * scale,
                "particle {i} axis {c}: FD {fd} vs {}",
                torques[i][c]
            );
        }
    }
}

#[test]
fn free_rotor_keeps_its_lab_angular_momentum_and_bounds_its_energy_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let particle = Particle {
        position: [0.0; 3],
        quaternion: data::random_quaternion(&mut rng),
    };
    let mut state = data::thermal_state(&[particle], 1.0, [0.5, 0.7, 1.5], 1.0, &mut rng);
    let lab_l = |s: &rigid::RigidState| {
        let r = rigid::rotation(s.quaternions[0]);
        let l = s.body_angular_momentum(0);
        [0, 1, 2].map(|d| (0..3).map(|k| r[d][k] * l[k]).sum::<f64>())
    };
    let (k0, l0) = (state.kinetic(), lab_l(&state));
    let mut field = |x: &[[f64; 3]], _: &[[f64; 4]]| {
        Ok((0.0, vec![[0.0; 3]; x.len()], vec![[0.0; 3]; x.len()]))
    };
    let zero = vec![[0.0; 3]];
    for _ in 0..1000 {
        state.step(0.01, &zero, &zero, &mut field).unwrap();
    }
    let (k1, l1) = (state.kinetic(), lab_l(&state));
    // The splitting of an asymmetric top is not exact in the energy (seen 2e-6 relative
    // after 1000 steps of 0.01): bounded, not drifting.
    assert!((k1 - k0).abs() < 1e-4 * k0, "{k0} -> {k1}");
    assert!(
        (k1 - k0).abs() > 0.0 || k0 == 0.0,
        "energy exactly kept: is the top symmetric?"
    );
    for d in 0..3 {
        // NO_SQUISH conserves the lab angular momentum exactly for a free body.
        assert!((l1[d] - l0[d]).abs() < 1e-10, "{l0:?} -> {l1:?}");
    }
}

#[test]
fn gay_berne_nve_error_is_small_and_second_order() {
    let gb = GayBerne::standard();
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let p = data::insertion(&gb, 8, 3.6, &mut rng);
    let start = data::thermal_state(&p, 1.0, AXES, 0.3, &mut rng);
    let run = |dt: f64, steps: usize| {
        let mut s = start.clone();
        let mut field = |x: &[[f64; 3]], q: &[[f64; 4]]| {
            let p: Vec<Particle> = x
                .iter()
                .zip(q)
                .map(|(&position, &quaternion)| Particle {
                    position,
                    quaternion,
                })
                .collect();
            Ok(data::gb_field(&gb, &p))
        };
        let (e0, mut f, mut t) = field(&s.positions, &s.quaternions).unwrap();
        let total0 = e0 + s.kinetic();
        let mut worst: f64 = 0.0;
        for _ in 0..steps {
            let (e, f2, t2) = s.step(dt, &f, &t, &mut field).unwrap();
            (f, t) = (f2, t2);
            worst = worst.max((e + s.kinetic() - total0).abs());
        }
        worst
    };
    let coarse = run(0.002, 500);
    let fine = run(0.001, 1000);
    assert!(coarse < 5e-3, "energy error {coarse}");
    let ratio = coarse / fine;
    assert!(
        (2.5..6.0).contains(&ratio),
        "halving dt should divide the error by ~4: {coarse:e} / {fine:e} = {ratio}"
    );
}
