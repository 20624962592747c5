//! A machine-learned Gay-Berne potential on AniSOAP features, with forces by autograd.
//!
//! ```text
//! cargo run --release -p anisoap-candle --example gay_berne_potential
//! ```
//!
//! 1. Seeded open clusters of 12 Gay-Berne ellipsoids (σ0 = 1, κ = 3, κ' = 5, μ = 2, ν = 1;
//!    AniSOAP semi-axes 0.5, 0.5, 1.5 along the body x, y, z axes), energies and forces from
//!    the analytic Gay-Berne derivatives (checked against finite differences here and in
//!    `tests/gradients.rs`).
//! 2. Per-centre AniSOAP power spectrum from [`DifferentiableDescriptor`]; energy model
//!    `E = Σ_i w · X_i + b` (a linear model whose weights are a Candle tensor), fitted by
//!    ridge regression to energies **and** forces. The force rows need `∂(Σ_i X_if)/∂x` for
//!    every feature `f`: all training clusters are placed far apart in one open "frame", so
//!    one backward pass per feature gives that column for every cluster at once.
//! 3. Energy and force errors on held-out clusters.
//! 4. A short relaxation (gradient descent on positions and orientations) with the learned
//!    forces and quaternion gradients, tracking the true Gay-Berne energy.
//!
//! Writes `results/gradients/gay_berne_fit.json` (numbers and the test-set parity data).

#[path = "gay_berne/potential.rs"]
mod potential;

use anisoap_candle::differentiable::{DifferentiableDescriptor, SpeciesLayout, TensorNeighbors};
use anisoap_candle::hypers::MaxRadial;
use anisoap_candle::Hypers;
use candle_core::{DType, Device, Tensor, Var};
use nalgebra::{DMatrix, DVector};
use potential::{GayBerne, Particle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const N_PARTICLES: usize = 12;
const N_TRAIN: usize = 120;
const N_TEST: usize = 40;
const BOX_SIDE: f64 = 4.6;
const SEMI_AXES: [f64; 3] = [0.5, 0.5, 1.5];
/// Spacing between clusters stacked in one frame (far beyond the cutoff).
const STACK_OFFSET: f64 = 100.0;
/// Weight of an energy-per-particle row in the fit.
const ENERGY_WEIGHT: f64 = 6.0;
/// Weight of a force-component row in the fit.
const FORCE_WEIGHT: f64 = 1.0;
const RIDGE: f64 = 1e-8;

fn random_quaternion(rng: &mut ChaCha8Rng) -> [f64; 4] {
    let (u1, u2, u3): (f64, f64, f64) = (rng.gen(), rng.gen(), rng.gen());
    let tau = std::f64::consts::TAU;
    let (a, b) = ((1.0 - u1).sqrt(), u1.sqrt());
    [
        b * (tau * u3).cos(),
        a * (tau * u2).sin(),
        a * (tau * u2).cos(),
        b * (tau * u3).sin(),
    ]
}

/// Random sequential insertion in a cube: a particle is accepted when its Gay-Berne energy
/// with every particle already placed is below `0.5 ε0` (no hard overlaps).
fn cluster(gb: &GayBerne, rng: &mut ChaCha8Rng) -> Vec<Particle> {
    'restart: loop {
        let mut particles: Vec<Particle> = Vec::with_capacity(N_PARTICLES);
        while particles.len() < N_PARTICLES {
            let mut placed = false;
            for _ in 0..2000 {
                let p = Particle {
                    position: [0, 1, 2].map(|_| rng.gen_range(0.0..BOX_SIDE)),
                    quaternion: random_quaternion(rng),
                };
                let ok = particles
                    .iter()
                    .all(|q| gb.energy_forces(&[*q, p]).0 < 0.5 * gb.eps0);
                if ok {
                    particles.push(p);
                    placed = true;
                    break;
                }
            }
            if !placed {
                continue 'restart;
            }
        }
        return particles;
    }
}

/// Reference data of one cluster.
struct Sample {
    particles: Vec<Particle>,
    energy: f64,
    forces: Vec<[f64; 3]>,
}

/// Several clusters side by side in one open frame, as descriptor inputs.
struct Stack {
    positions: Var,
    quaternions: Var,
    semi_axes: Tensor,
    neighbors: TensorNeighbors,
    /// `u32 [N_total]` cluster of each particle.
    cluster_of: Tensor,
    n_clusters: usize,
}

fn stack(descriptor: &DifferentiableDescriptor, clusters: &[&[Particle]]) -> Res<Stack> {
    let device = Device::Cpu;
    let mut pos = Vec::new();
    let mut quat = Vec::new();
    let mut owner = Vec::new();
    for (k, c) in clusters.iter().enumerate() {
        for p in c.iter() {
            pos.extend_from_slice(&[
                p.position[0] + k as f64 * STACK_OFFSET,
                p.position[1],
                p.position[2],
            ]);
            quat.extend_from_slice(&p.quaternion);
            owner.push(k as u32);
        }
    }
    let n = owner.len();
    let positions = Var::from_tensor(&Tensor::from_vec(pos, (n, 3), &device)?)?;
    let quaternions = Var::from_tensor(&Tensor::from_vec(quat, (n, 4), &device)?)?;
    let semi_axes = Tensor::from_vec(SEMI_AXES.repeat(n), (n, 3), &device)?;
    let types = vec![0; n];
    let neighbors = descriptor.neighbors(
        &positions,
        &types,
        &[[0.0; 3]; 3],
        [false; 3],
        &SpeciesLayout::Fixed(vec![0]),
    )?;
    Ok(Stack {
        positions,
        quaternions,
        semi_axes,
        neighbors,
        cluster_of: Tensor::from_vec(owner, n, &device)?,
        n_clusters: clusters.len(),
    })
}

impl Stack {
    /// Per-centre features `[N_total, F]`.
    fn features(&self, descriptor: &DifferentiableDescriptor) -> Res<Tensor> {
        Ok(descriptor.power_spectrum(
            &self.positions,
            &self.quaternions,
            &self.semi_axes,
            &self.neighbors,
        )?)
    }

    /// Per-cluster feature sums `[K, F]`.
    fn sums(&self, x: &Tensor) -> Res<Tensor> {
        let f = x.dim(1)?;
        Ok(
            Tensor::zeros((self.n_clusters, f), x.dtype(), x.device())?.index_add(
                &self.cluster_of,
                x,
                0,
            )?,
        )
    }
}

/// The learned model: `E = Σ_i (X_i / scale) · w + b`.
struct Model {
    weights: Tensor,
    scale: Tensor,
    bias: f64,
}

impl Model {
    /// Per-cluster energies `[K]`, forces `[N_total, 3]` and quaternion gradients `[N_total, 4]`.
    fn predict(
        &self,
        descriptor: &DifferentiableDescriptor,
        s: &Stack,
    ) -> Res<(Vec<f64>, Vec<f64>, Vec<f64>)> {
        let x = s.features(descriptor)?;
        let per_center = x.broadcast_div(&self.scale)?.matmul(&self.weights)?; // [N, 1]
        let energies = s
            .sums(&per_center)?
            .squeeze(1)?
            .affine(1.0, self.bias)?
            .to_vec1::<f64>()?;
        let grads = per_center.sum_all()?.backward()?;
        let forces = grads
            .get(&s.positions)
            .ok_or("no position gradient")?
            .neg()?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let dq = grads
            .get(&s.quaternions)
            .ok_or("no quaternion gradient")?
            .flatten_all()?
            .to_vec1::<f64>()?;
        Ok((energies, forces, dq))
    }
}

fn rmse_mae(pred: &[f64], truth: &[f64]) -> (f64, f64) {
    let n = pred.len() as f64;
    let mut se = 0.0;
    let mut ae = 0.0;
    for (p, t) in pred.iter().zip(truth) {
        se += (p - t) * (p - t);
        ae += (p - t).abs();
    }
    ((se / n).sqrt(), ae / n)
}

fn std_dev(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

fn main() -> Res<()> {
    let start = Instant::now();
    let gb = GayBerne::standard();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);

    // 1. Data.
    let samples: Vec<Sample> = (0..N_TRAIN + N_TEST)
        .map(|_| {
            let particles = cluster(&gb, &mut rng);
            let (energy, forces, _) = gb.energy_forces(&particles);
            Sample {
                particles,
                energy,
                forces,
            }
        })
        .collect();
    let (train, test) = samples.split_at(N_TRAIN);
    // Finite-difference check of the analytic Gay-Berne forces on the first cluster.
    let fd_error = {
        let p = &train[0].particles;
        let h = 1e-6;
        let mut worst: f64 = 0.0;
        let mut scale: f64 = 0.0;
        for i in 0..p.len() {
            for d in 0..3 {
                let (mut a, mut b) = (p.clone(), p.clone());
                a[i].position[d] += h;
                b[i].position[d] -= h;
                let fd = -(gb.energy_forces(&a).0 - gb.energy_forces(&b).0) / (2.0 * h);
                worst = worst.max((fd - train[0].forces[i][d]).abs());
                scale = scale.max(fd.abs());
            }
        }
        worst / scale
    };
    println!(
        "{} clusters of {N_PARTICLES} Gay-Berne ellipsoids; analytic forces vs finite \
         differences: {fd_error:.2e} relative",
        samples.len()
    );

    // 2. Descriptor and Jacobian of the per-cluster feature sums.
    let mut hypers = Hypers::gto(4, 4.0, 0.5);
    hypers.max_radial = MaxRadial::Uniform(2);
    let descriptor = DifferentiableDescriptor::new(&hypers, &Device::Cpu, DType::F64)?;
    let clusters: Vec<&[Particle]> = train.iter().map(|s| s.particles.as_slice()).collect();
    let train_stack = stack(&descriptor, &clusters)?;
    let t_features = Instant::now();
    let x = train_stack.features(&descriptor)?;
    let sums = train_stack.sums(&x)?.to_vec2::<f64>()?;
    let n_features = x.dim(1)?;
    // jacobian[f] = ∂(Σ_{i in cluster} X_if)/∂x for every particle of every cluster.
    let mut jacobian = Vec::with_capacity(n_features);
    for f in 0..n_features {
        let grads = x.narrow(1, f, 1)?.sum_all()?.backward()?;
        jacobian.push(
            grads
                .get(&train_stack.positions)
                .ok_or("no gradient")?
                .flatten_all()?
                .to_vec1::<f64>()?,
        );
    }
    let jacobian_seconds = t_features.elapsed().as_secs_f64();
    println!(
        "{n_features} features; {} pairs in the training stack; Jacobian by {n_features} \
         backward passes in {jacobian_seconds:.1} s",
        train_stack.neighbors.len()
    );

    // Ridge regression on standardised features: energy per particle rows (weight
    // ENERGY_WEIGHT) and force component rows (weight `force_weight`, 0 = energies only).
    let scale: Vec<f64> = (0..n_features)
        .map(|f| std_dev(&sums.iter().map(|r| r[f]).collect::<Vec<_>>()).max(1e-12))
        .collect();
    let per = N_PARTICLES as f64;
    let fit = |force_weight: f64| -> Res<Model> {
        let n_rows = N_TRAIN * (1 + 3 * N_PARTICLES);
        let mut a = DMatrix::<f64>::zeros(n_rows, n_features + 1);
        let mut y = DVector::<f64>::zeros(n_rows);
        for (k, sample) in train.iter().enumerate() {
            for f in 0..n_features {
                a[(k, f)] = ENERGY_WEIGHT * sums[k][f] / scale[f] / per;
            }
            a[(k, n_features)] = ENERGY_WEIGHT / per;
            y[k] = ENERGY_WEIGHT * sample.energy / per;
            for i in 0..N_PARTICLES {
                for d in 0..3 {
                    let row = N_TRAIN + (k * N_PARTICLES + i) * 3 + d;
                    let col = (k * N_PARTICLES + i) * 3 + d;
                    for f in 0..n_features {
                        a[(row, f)] = -force_weight * jacobian[f][col] / scale[f];
                    }
                    y[row] = force_weight * sample.forces[i][d];
                }
            }
        }
        let mut normal = a.transpose() * &a;
        let trace = normal.trace() / (n_features + 1) as f64;
        for f in 0..n_features {
            normal[(f, f)] += RIDGE * trace;
        }
        let rhs = a.transpose() * &y;
        let solution = normal
            .cholesky()
            .ok_or("normal matrix not positive definite")?
            .solve(&rhs);
        Ok(Model {
            weights: Tensor::from_vec(
                solution.as_slice()[..n_features].to_vec(),
                (n_features, 1),
                &Device::Cpu,
            )?,
            scale: Tensor::from_vec(scale.clone(), (1, n_features), &Device::Cpu)?,
            bias: solution[n_features],
        })
    };
    let energy_only = fit(0.0)?;
    let model = fit(FORCE_WEIGHT)?;

    // 3. Errors on training and held-out clusters.
    let evaluate = |model: &Model, set: &[Sample]| -> Res<serde_json::Value> {
        let clusters: Vec<&[Particle]> = set.iter().map(|s| s.particles.as_slice()).collect();
        let s = stack(&descriptor, &clusters)?;
        let (energies, forces, _) = model.predict(&descriptor, &s)?;
        let true_e: Vec<f64> = set.iter().map(|s| s.energy).collect();
        let true_f: Vec<f64> = set
            .iter()
            .flat_map(|s| s.forces.iter().flatten().copied())
            .collect();
        let (e_rmse, e_mae) = rmse_mae(&energies, &true_e);
        let (f_rmse, f_mae) = rmse_mae(&forces, &true_f);
        let f_rms = (true_f.iter().map(|v| v * v).sum::<f64>() / true_f.len() as f64).sqrt();
        Ok(serde_json::json!({
            "clusters": set.len(),
            "energy_rmse": e_rmse,
            "energy_mae": e_mae,
            "energy_rmse_per_particle": e_rmse / per,
            "energy_std": std_dev(&true_e),
            "force_component_rmse": f_rmse,
            "force_component_mae": f_mae,
            "force_component_rms": f_rms,
            "parity_energy_true": true_e,
            "parity_energy_predicted": energies,
        }))
    };
    let mut errors = serde_json::Map::new();
    for (fit_name, m) in [
        ("energies_only", &energy_only),
        ("energies_and_forces", &model),
    ] {
        let mut both = serde_json::Map::new();
        for (name, set) in [("train", train), ("test", test)] {
            let e = evaluate(m, set)?;
            println!(
                "{fit_name:19} {name:5}: energy RMSE {:.3} MAE {:.3} (std {:.3}); force RMSE \
                 {:.3} MAE {:.3} (RMS force {:.3})",
                e["energy_rmse"].as_f64().unwrap_or(f64::NAN),
                e["energy_mae"].as_f64().unwrap_or(f64::NAN),
                e["energy_std"].as_f64().unwrap_or(f64::NAN),
                e["force_component_rmse"].as_f64().unwrap_or(f64::NAN),
                e["force_component_mae"].as_f64().unwrap_or(f64::NAN),
                e["force_component_rms"].as_f64().unwrap_or(f64::NAN),
            );
            both.insert(name.to_string(), e);
        }
        errors.insert(fit_name.to_string(), serde_json::Value::Object(both));
    }

    // 4. Relaxation with the learned forces and quaternion gradients.
    let mut particles = test[0].particles.clone();
    let mut path = Vec::new();
    let steps = 60;
    for step in 0..=steps {
        let s = stack(&descriptor, &[particles.as_slice()])?;
        let (e_model, forces, dq) = model.predict(&descriptor, &s)?;
        let (e_true, f_true, _) = gb.energy_forces(&particles);
        let f_true_max = f_true.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        path.push(serde_json::json!({
            "step": step, "model_energy": e_model[0], "true_energy": e_true,
            "true_max_force": f_true_max,
        }));
        if step == steps {
            break;
        }
        // Steepest descent, largest displacement 0.02 and largest quaternion change 0.02.
        let f_max = forces.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
        let q_max = dq.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
        for (i, p) in particles.iter_mut().enumerate() {
            for d in 0..3 {
                p.position[d] += 0.02 * forces[3 * i + d] / f_max;
            }
            for k in 0..4 {
                p.quaternion[k] -= 0.02 * dq[4 * i + k] / q_max;
            }
            let norm = p.quaternion.iter().map(|v| v * v).sum::<f64>().sqrt();
            p.quaternion = p.quaternion.map(|v| v / norm);
        }
    }
    let first = &path[0];
    let last = &path[steps];
    println!(
        "relaxation ({steps} steps, learned forces/torques): model energy {:.3} -> {:.3}, \
         true Gay-Berne energy {:.3} -> {:.3}",
        first["model_energy"], last["model_energy"], first["true_energy"], last["true_energy"]
    );

    let total_seconds = start.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "potential": {"kind": "Gay-Berne (uniaxial, identical)", "sigma0": gb.sigma0,
            "eps0": gb.eps0, "kappa": gb.kappa, "kappa_prime": gb.kappa_prime, "mu": gb.mu,
            "nu": gb.nu, "anisoap_semi_axes": SEMI_AXES},
        "data": {"particles_per_cluster": N_PARTICLES, "train_clusters": N_TRAIN,
            "test_clusters": N_TEST, "box_side": BOX_SIDE, "seed": 2024,
            "generation": "random sequential insertion, pair energy < 0.5 eps0, open cluster"},
        "analytic_force_fd_relative_error": fd_error,
        "descriptor": {"basis": "gto", "max_angular": hypers.max_angular,
            "max_radial": 2, "cutoff_radius": hypers.cutoff_radius,
            "radial_gaussian_width": hypers.radial_gaussian_width, "features": n_features},
        "model": {"kind": "linear, E = sum_i w . X_i / scale + b (weights as a Candle tensor)",
            "fit": "ridge on energies per particle and force components",
            "energy_weight": ENERGY_WEIGHT, "force_weight": FORCE_WEIGHT, "ridge": RIDGE,
            "relaxation_uses": "energies_and_forces"},
        "jacobian_seconds": jacobian_seconds,
        "errors": errors,
        "relaxation": {"method": "steepest descent on positions and quaternions, max step 0.02",
            "path": path},
        "total_seconds": total_seconds,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/gradients");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("gay_berne_fit.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("wrote {} ({total_seconds:.1} s)", path.display());
    Ok(())
}
