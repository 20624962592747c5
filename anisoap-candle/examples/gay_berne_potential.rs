//! A machine-learned Gay-Berne potential: an MLP on per-centre AniSOAP power spectra, trained
//! on energies, forces and torques, then NVE molecular dynamics with the learned forces.
//!
//! ```text
//! cargo run --release -p anisoap-candle --example gay_berne_potential -- [--write-results]
//!     [--no-smooth] [--structures N] [--max-force F] [--md-steps N] [--hypers TOML]
//!     [--train "hidden=64,64 act=tanh wf=10 wt=2 lr=1e-3 batch=48 epochs=200 decay=1e-4"]
//!     [--sweep "SETTINGS;SETTINGS;..."]
//! ```
//!
//! 1. Data (seeded): open clusters of 12 Gay-Berne ellipsoids (σ0 = 1, κ = 3, κ' = 5, μ = 2,
//!    ν = 1; AniSOAP semi-axes 0.5, 0.5, 1.5 along the body x, y, z axes) made by random
//!    insertion in cubes of side 3.6 to 5.6 (a range of densities); a third are kept as
//!    inserted, a third run for a short analytic-GB NVE stretch at T = 0.1 to 0.6 (thermal
//!    snapshots), a third perturbed at random (displacements up to 0.12, rotations up to
//!    0.15 rad: the repulsive wall); structures with a force component above `--max-force`
//!    are redrawn. Analytic GB energies, forces and torques. Split by structure (seeded
//!    shuffle): 80 % training (of which 15 % validation, for early stopping), 20 % held out.
//! 2. Descriptor: per-centre power spectrum from
//!    [`DifferentiableDescriptor::power_spectrum_batch`] (all structures of a group in one
//!    graph), feature Jacobians by [`DifferentiableDescriptor::feature_jacobians`].
//! 3. Model `E = Σ_i MLP(standardised X_i)` (`gay_berne/mlp.rs`), Adam on a loss of energies
//!    per particle, forces and torques (each divided by its training-set variance or mean
//!    square), forces predicted as `−Σ_i J_iᵀ ∇MLP` (no double backward needed); the
//!    parameters of the epoch with the lowest validation loss are kept.
//! 4. NVE MD of a held-out cluster with the learned forces and torques from the descriptor's
//!    autograd (velocity Verlet + NO_SQUISH, `gay_berne/rigid.rs`), once with the original's
//!    step cutoff and once with the smooth `shifted_cosine` cutoff (each with its own model),
//!    plus the same start under the analytic GB potential; total-energy drift per
//!    ns-equivalent (GB reduced units with σ0 = 0.5 nm, ε0 = 1 kJ/mol, m = 100 g/mol, so
//!    τ = σ0 √(m/ε0) = 5 ps and 1 ns = 200 τ) and the true GB energy along the learned
//!    trajectory.
//!
//! `--sweep` compares training settings on the step-cutoff descriptor (no MD, nothing
//! written). With `--write-results` it writes `results/gradients/gay_berne_mlp.json`.

#[path = "gay_berne/data.rs"]
mod data;
#[path = "gay_berne/mlp.rs"]
mod mlp;
#[path = "gay_berne/potential.rs"]
mod potential;
#[path = "gay_berne/rigid.rs"]
mod rigid;
#[path = "gay_berne/settings.rs"]
mod settings;

use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use anisoap_candle::Hypers;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use data::{DataSpec, Sample};
use mlp::MlpPotential;
use potential::{GayBerne, Particle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rigid::RigidState;
use serde_json::{json, Value};
use settings::{Train, LR_END_FRACTION, W_ENERGY};
use std::time::Instant;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const SEED: u64 = 2024;
const SEMI_AXES: [f64; 3] = [0.5, 0.5, 1.5];
const N_PARTICLES: usize = 12;
const N_STRUCTURES: usize = 300;
const TRAIN_FRACTION: f64 = 0.8;
/// Descriptor hypers (the smooth variant adds `cutoff_function`).
const HYPERS_TOML: &str = "max_angular = 4\ncutoff_radius = 5.0\nradial_gaussian_width = 0.5\n\
                           max_radial = 2\n";
const SMOOTH_CUTOFF: &str = "cutoff_function = { shifted_cosine = { width = 0.5 } }\n";
/// Part of the training structures held back for early stopping.
const VALIDATION_FRACTION: f64 = 0.15;
const FD_STEP: f64 = 1e-5;
const GROUP_PARTICLES: usize = 4000;
const MD_DT: f64 = 0.002;
const MD_TEMPERATURE: f64 = 0.15;
const MD_RECORD_EVERY: usize = 10;
/// τ in ps and τ per ns for the documented unit mapping.
const TAU_PS: f64 = 5.0;
const TAU_PER_NS: f64 = 1000.0 / TAU_PS;

struct Args {
    train: Train,
    /// Training settings to compare on the step-cutoff descriptor (no MD, nothing written).
    sweep: Vec<Train>,
    write_results: bool,
    smooth: bool,
    md_steps: usize,
    structures: usize,
    max_force: f64,
    /// Descriptor hypers (TOML) without the cutoff function.
    hypers: String,
}

fn args() -> Res<Args> {
    let mut a = Args {
        train: Train::parse("")?,
        sweep: Vec::new(),
        write_results: false,
        smooth: true,
        md_steps: 2500,
        structures: N_STRUCTURES,
        max_force: 50.0,
        hypers: HYPERS_TOML.to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Res<usize> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse()
                .map_err(|e| format!("{name} {v}: not a count ({e})").into())
        };
        match arg.as_str() {
            "--write-results" => a.write_results = true,
            "--no-smooth" => a.smooth = false,
            "--train" => a.train = Train::parse(&it.next().ok_or("--train needs settings")?)?,
            "--sweep" => {
                a.sweep = it
                    .next()
                    .ok_or("--sweep needs settings")?
                    .split(';')
                    .map(Train::parse)
                    .collect::<Res<_>>()?
            }
            "--md-steps" => a.md_steps = number("--md-steps")?,
            "--structures" => a.structures = number("--structures")?,
            "--max-force" => a.max_force = number("--max-force")? as f64,
            "--hypers" => a.hypers = it.next().ok_or("--hypers needs a TOML text")?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

fn particles_of(x: &[[f64; 3]], q: &[[f64; 4]]) -> Vec<Particle> {
    x.iter()
        .zip(q)
        .map(|(&position, &quaternion)| Particle {
            position,
            quaternion,
        })
        .collect()
}

fn frame_tensors(particles: &[Particle], device: &Device) -> Res<FrameTensors> {
    let n = particles.len();
    let pos: Vec<f64> = particles.iter().flat_map(|p| p.position).collect();
    let quat: Vec<f64> = particles.iter().flat_map(|p| p.quaternion).collect();
    Ok(FrameTensors {
        positions: Tensor::from_vec(pos, (n, 3), device)?,
        quaternions: Tensor::from_vec(quat, (n, 4), device)?,
        semi_axes: Tensor::from_vec(SEMI_AXES.repeat(n), (n, 3), device)?,
        types: vec![0; n],
        cell: [[0.0; 3]; 3],
        pbc: [false; 3],
    })
}

fn species() -> SpeciesLayout {
    SpeciesLayout::Fixed(vec![0])
}

fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

fn rmse(a: &[f64], b: &[f64]) -> f64 {
    (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64).sqrt()
}

fn std_dev(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Features `[K·N, F]` and Jacobians `[K, N·F, 6N]` of a set of structures.
struct Prepared {
    features: Tensor,
    jacobians: Tensor,
    energies: Tensor,
    generalised: Tensor,
}

fn prepare(
    descriptor: &DifferentiableDescriptor,
    set: &[&Sample],
    device: &Device,
) -> Res<Prepared> {
    let frames = set
        .iter()
        .map(|s| frame_tensors(&s.particles, device))
        .collect::<Res<Vec<_>>>()?;
    let mut parts = Vec::new();
    descriptor.power_spectrum_groups(&frames, &species(), GROUP_PARTICLES, |_, batch| {
        parts.push(batch.features.detach());
        Ok(())
    })?;
    let features = Tensor::cat(&parts, 0)?;
    let jac = descriptor.feature_jacobians(&frames, &species(), FD_STEP, GROUP_PARTICLES)?;
    let n = N_PARTICLES;
    let f = features.dim(1)?;
    let flat: Vec<f64> = jac.into_iter().flatten().collect();
    let jacobians = Tensor::from_vec(flat, (set.len(), n * f, 6 * n), device)?;
    let energies = Tensor::from_vec(
        set.iter().map(|s| s.energy).collect::<Vec<_>>(),
        set.len(),
        device,
    )?;
    let gen: Vec<f64> = set
        .iter()
        .flat_map(|s| {
            s.forces
                .iter()
                .zip(&s.torques)
                .flat_map(|(f, t)| f.iter().chain(t).copied().collect::<Vec<_>>())
        })
        .collect();
    let generalised = Tensor::from_vec(gen, (set.len(), n, 6), device)?;
    Ok(Prepared {
        features,
        jacobians,
        energies,
        generalised,
    })
}

impl Prepared {
    /// The structures `idx` (features rows, Jacobians, targets).
    fn select(&self, idx: &[u32], device: &Device) -> Res<Prepared> {
        let n = N_PARTICLES as u32;
        let rows: Vec<u32> = idx.iter().flat_map(|&k| k * n..(k + 1) * n).collect();
        let rows_len = rows.len();
        let rows = Tensor::from_vec(rows, rows_len, device)?;
        let ids = Tensor::from_vec(idx.to_vec(), idx.len(), device)?;
        Ok(Prepared {
            features: self.features.index_select(&rows, 0)?,
            jacobians: self.jacobians.index_select(&ids, 0)?,
            energies: self.energies.index_select(&ids, 0)?,
            generalised: self.generalised.index_select(&ids, 0)?,
        })
    }
}

/// Loss scales: energy-per-particle variance, force and torque mean squares (training set).
struct Scales {
    energy_var: f64,
    force_ms: f64,
    torque_ms: f64,
}

fn loss(model: &MlpPotential, batch: &Prepared, s: &Scales, cfg: &Train) -> Res<Tensor> {
    let (e, g) = model.predict_from_jacobians(&batch.features, &batch.jacobians)?;
    let n = N_PARTICLES as f64;
    let de = (e - &batch.energies)?.affine(1.0 / n, 0.0)?;
    let dg = (g - &batch.generalised)?;
    let le = de.sqr()?.mean_all()?.affine(W_ENERGY / s.energy_var, 0.0)?;
    let lf = dg
        .narrow(2, 0, 3)?
        .sqr()?
        .mean_all()?
        .affine(cfg.w_force / s.force_ms, 0.0)?;
    let lt = dg
        .narrow(2, 3, 3)?
        .sqr()?
        .mean_all()?
        .affine(cfg.w_torque / s.torque_ms, 0.0)?;
    Ok(((le + lf)? + lt)?)
}

/// Energy, forces and torques of the learned model by the descriptor's autograd.
fn model_field(
    descriptor: &DifferentiableDescriptor,
    model: &MlpPotential,
    x: &[[f64; 3]],
    q: &[[f64; 4]],
    device: &Device,
) -> rigid::FieldResult {
    let t = frame_tensors(&particles_of(x, q), device)?;
    let positions = Var::from_tensor(&t.positions)?;
    let quaternions = Var::from_tensor(&t.quaternions)?;
    let neighbors = descriptor.neighbors(&positions, &t.types, &t.cell, t.pbc, &species())?;
    let features = descriptor.power_spectrum(&positions, &quaternions, &t.semi_axes, &neighbors)?;
    let energy = model.centre_energies(&features)?.sum_all()?;
    let grads = energy.backward()?;
    let gx = grads
        .get(&positions)
        .ok_or("no position gradient")?
        .to_vec2::<f64>()?;
    let gq = grads
        .get(&quaternions)
        .ok_or("no quaternion gradient")?
        .to_vec2::<f64>()?;
    let forces = gx.iter().map(|g| [-g[0], -g[1], -g[2]]).collect();
    let torques = q
        .iter()
        .zip(&gq)
        .map(|(qi, g)| rigid::lab_torque(*qi, [g[0], g[1], g[2], g[3]]))
        .collect();
    Ok((energy.to_scalar::<f64>()?, forces, torques))
}

/// Errors of a model on a prepared set, with parity data.
fn evaluate(model: &MlpPotential, set: &Prepared) -> Res<Value> {
    let (e, g) = model.predict_from_jacobians(&set.features, &set.jacobians)?;
    let e = e.to_vec1::<f64>()?;
    let true_e = set.energies.to_vec1::<f64>()?;
    let split = |t: &Tensor, start: usize| -> Res<Vec<f64>> {
        Ok(t.narrow(2, start, 3)?.flatten_all()?.to_vec1::<f64>()?)
    };
    let (f, tf) = (split(&g, 0)?, split(&set.generalised, 0)?);
    let (t, tt) = (split(&g, 3)?, split(&set.generalised, 3)?);
    let e_rmse = rmse(&e, &true_e);
    let e_std = std_dev(&true_e);
    let f_rmse = rmse(&f, &tf);
    let f_rms = rms(&tf);
    Ok(json!({
        "structures": true_e.len(),
        "energy_rmse": e_rmse, "energy_std": e_std, "energy_rmse_over_std": e_rmse / e_std,
        "energy_rmse_per_particle": e_rmse / N_PARTICLES as f64,
        "force_component_rmse": f_rmse, "force_component_rms": f_rms,
        "force_rmse_over_rms": f_rmse / f_rms,
        "torque_component_rmse": rmse(&t, &tt), "torque_component_rms": rms(&tt),
        "torque_rmse_over_rms": rmse(&t, &tt) / rms(&tt),
        "parity_energy_true": true_e, "parity_energy_predicted": e,
        "parity_force_true": tf, "parity_force_predicted": f,
    }))
}

/// Linear least-squares slope of `y` against `x`.
fn slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

/// NVE run from `start`; `field` gives the potential the dynamics follow, `gb` the true GB
/// energy recorded alongside.
fn nve(
    start: &RigidState,
    steps: usize,
    gb: &GayBerne,
    field: &mut rigid::ForceField<'_>,
) -> Res<Value> {
    let mut state = start.clone();
    let (mut e, mut f, mut t) = field(&state.positions, &state.quaternions)?;
    let mut time = Vec::new();
    let mut total = Vec::new();
    let mut potential = Vec::new();
    let mut true_gb = Vec::new();
    let clock = Instant::now();
    let mut record = |step: usize, state: &RigidState, e: f64| {
        time.push(step as f64 * MD_DT);
        potential.push(e);
        total.push(e + state.kinetic());
        true_gb.push(data::gb_field(gb, &particles_of(&state.positions, &state.quaternions)).0);
    };
    record(0, &state, e);
    for step in 1..=steps {
        (e, f, t) = state.step(MD_DT, &f, &t, field)?;
        if step % MD_RECORD_EVERY == 0 {
            record(step, &state, e);
        }
    }
    let seconds = clock.elapsed().as_secs_f64();
    let per_tau = slope(&time, &total);
    let max_dev = total
        .iter()
        .map(|v| (v - total[0]).abs())
        .fold(0.0, f64::max);
    let radius = {
        let c: Vec<f64> = (0..3)
            .map(|d| state.positions.iter().map(|p| p[d]).sum::<f64>() / N_PARTICLES as f64)
            .collect();
        state
            .positions
            .iter()
            .map(|p| (0..3).map(|d| (p[d] - c[d]).powi(2)).sum::<f64>().sqrt())
            .fold(0.0, f64::max)
    };
    Ok(json!({
        "steps": steps, "dt_tau": MD_DT, "duration_tau": steps as f64 * MD_DT,
        "duration_ns_equivalent": steps as f64 * MD_DT / TAU_PER_NS,
        "drift_per_tau": per_tau, "drift_per_ns_equivalent": per_tau * TAU_PER_NS,
        "drift_per_ns_equivalent_per_particle": per_tau * TAU_PER_NS / N_PARTICLES as f64,
        "max_abs_total_energy_deviation": max_dev,
        "final_max_distance_from_centre": radius,
        "seconds": seconds, "seconds_per_step": seconds / steps.max(1) as f64,
        "time_tau": time, "total_energy": total, "potential_energy": potential,
        "true_gb_energy": true_gb,
    }))
}

/// Max relative difference between the training-time forces `−Jᵀ∇MLP` and the autograd
/// forces of the same model on a few structures.
fn consistency(
    descriptor: &DifferentiableDescriptor,
    model: &MlpPotential,
    set: &Prepared,
    samples: &[&Sample],
    device: &Device,
) -> Res<f64> {
    let (_, g) = model.predict_from_jacobians(&set.features, &set.jacobians)?;
    let g = g.to_vec3::<f64>()?;
    let mut worst: f64 = 0.0;
    for (k, s) in samples.iter().enumerate().take(3) {
        let x: Vec<_> = s.particles.iter().map(|p| p.position).collect();
        let q: Vec<_> = s.particles.iter().map(|p| p.quaternion).collect();
        let (_, f, t) = model_field(descriptor, model, &x, &q, device)?;
        let scale = g[k].iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..N_PARTICLES {
            for d in 0..3 {
                worst = worst.max((f[i][d] - g[k][i][d]).abs() / scale);
                worst = worst.max((t[i][d] - g[k][i][3 + d]).abs() / scale);
            }
        }
    }
    Ok(worst)
}

/// Trains a model on prepared data; returns it and the training report (with errors).
fn train_model(
    name: &str,
    cfg: &Train,
    train: &[&Sample],
    tr: &Prepared,
    te: &Prepared,
    device: &Device,
) -> Res<(MlpPotential, Value)> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    let model = MlpPotential::new(&tr.features, &cfg.hidden, cfg.activation, &mut rng)?;
    let per_particle: Vec<f64> = train
        .iter()
        .map(|s| s.energy / N_PARTICLES as f64)
        .collect();
    let all_f: Vec<f64> = train
        .iter()
        .flat_map(|s| s.forces.iter().flatten().copied())
        .collect();
    let all_t: Vec<f64> = train
        .iter()
        .flat_map(|s| s.torques.iter().flatten().copied())
        .collect();
    let scales = Scales {
        energy_var: std_dev(&per_particle).powi(2),
        force_ms: rms(&all_f).powi(2),
        torque_ms: rms(&all_t).powi(2),
    };
    let mut opt = AdamW::new(
        model.mlp.vars().to_vec(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;
    let clock = Instant::now();
    // Early stopping on a validation part of the training structures (the held-out test set
    // plays no part in training or in the choice of the parameters).
    let n_val = ((train.len() as f64) * VALIDATION_FRACTION).round() as usize;
    let n_fit = train.len() - n_val;
    let fit = tr.select(&(0..n_fit as u32).collect::<Vec<_>>(), device)?;
    let val = tr.select(
        &(n_fit as u32..train.len() as u32).collect::<Vec<_>>(),
        device,
    )?;
    let mut order: Vec<u32> = (0..n_fit as u32).collect();
    let mut curve = Vec::new();
    let total_steps = cfg.epochs * n_fit.div_ceil(cfg.batch);
    let mut step = 0usize;
    let snapshot = |m: &MlpPotential| -> Res<Vec<Tensor>> {
        Ok(m.mlp
            .vars()
            .iter()
            .map(|v| v.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?)
    };
    let mut best = (f64::INFINITY, 0usize, snapshot(&model)?);
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for chunk in order.chunks(cfg.batch) {
            // Cosine decay from lr to lr · LR_END_FRACTION.
            let p = step as f64 / total_steps.max(1) as f64;
            let end = cfg.lr * LR_END_FRACTION;
            opt.set_learning_rate(
                end + 0.5 * (cfg.lr - end) * (1.0 + (std::f64::consts::PI * p).cos()),
            );
            let batch = fit.select(chunk, device)?;
            opt.backward_step(&loss(&model, &batch, &scales, cfg)?)?;
            step += 1;
        }
        if epoch % 10 == 0 || epoch + 1 == cfg.epochs {
            let l_fit = loss(&model, &fit, &scales, cfg)?.to_scalar::<f64>()?;
            let l_val = loss(&model, &val, &scales, cfg)?.to_scalar::<f64>()?;
            curve.push(json!({"epoch": epoch, "fit_loss": l_fit, "validation_loss": l_val}));
            if l_val < best.0 {
                best = (l_val, epoch, snapshot(&model)?);
            }
            if epoch % 100 == 0 || epoch + 1 == cfg.epochs {
                println!("[{name}] epoch {epoch}: loss fit {l_fit:.4} validation {l_val:.4}");
            }
        }
    }
    for (v, t) in model.mlp.vars().iter().zip(&best.2) {
        v.set(t)?;
    }
    println!(
        "[{name}] kept the parameters of epoch {} (validation loss {:.4})",
        best.1, best.0
    );
    let train_seconds = clock.elapsed().as_secs_f64();
    println!("[{name}] {step} optimizer steps in {train_seconds:.1} s");
    let e_train = evaluate(&model, &fit)?;
    let e_val = evaluate(&model, &val)?;
    let e_test = evaluate(&model, te)?;
    for (label, e) in [("fit", &e_train), ("val", &e_val), ("test", &e_test)] {
        println!(
            "[{name}] {label:5}: energy RMSE {:.3} / std {:.3} = {:.1} %; force RMSE {:.3} / RMS {:.3} = {:.1} %; torque {:.1} %",
            e["energy_rmse"].as_f64().unwrap_or(f64::NAN),
            e["energy_std"].as_f64().unwrap_or(f64::NAN),
            100.0 * e["energy_rmse_over_std"].as_f64().unwrap_or(f64::NAN),
            e["force_component_rmse"].as_f64().unwrap_or(f64::NAN),
            e["force_component_rms"].as_f64().unwrap_or(f64::NAN),
            100.0 * e["force_rmse_over_rms"].as_f64().unwrap_or(f64::NAN),
            100.0 * e["torque_rmse_over_rms"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok((
        model,
        json!({"settings": cfg.to_json(), "train_seconds": train_seconds,
            "optimizer_steps": step, "loss_curve": curve,
            "structures": {"fit": n_fit, "validation": n_val, "test": te.energies.dim(0)?},
            "kept_epoch": best.1, "kept_validation_loss": best.0,
            "errors": {"train": e_train, "validation": e_val, "test": e_test}}),
    ))
}

/// Trains a model for one descriptor and runs its NVE trajectory.
#[allow(clippy::too_many_arguments)]
fn variant(
    name: &str,
    hypers: &Hypers,
    train: &[&Sample],
    test: &[&Sample],
    md_start: &RigidState,
    gb: &GayBerne,
    args: &Args,
    device: &Device,
) -> Res<Value> {
    let descriptor = DifferentiableDescriptor::new(hypers, device, DType::F64)?;
    let clock = Instant::now();
    let tr = prepare(&descriptor, train, device)?;
    let te = prepare(&descriptor, test, device)?;
    let prepare_seconds = clock.elapsed().as_secs_f64();
    let n_features = tr.features.dim(1)?;
    println!(
        "[{name}] {n_features} features; features + Jacobians of {} structures in {prepare_seconds:.1} s",
        train.len() + test.len()
    );
    let (model, training) = train_model(name, &args.train, train, &tr, &te, device)?;
    let agreement = consistency(&descriptor, &model, &te, test, device)?;
    println!("[{name}] training-time forces (-J^T grad) vs autograd: {agreement:.2e} relative");
    let mut field = |x: &[[f64; 3]], q: &[[f64; 4]]| model_field(&descriptor, &model, x, q, device);
    let md = nve(md_start, args.md_steps, gb, &mut field)?;
    println!(
        "[{name}] NVE {} steps: drift {:.3e} per tau = {:.3e} eps0 per ns-equivalent; max |dE| {:.3e}; {:.1} ms/step",
        args.md_steps,
        md["drift_per_tau"].as_f64().unwrap_or(f64::NAN),
        md["drift_per_ns_equivalent"].as_f64().unwrap_or(f64::NAN),
        md["max_abs_total_energy_deviation"].as_f64().unwrap_or(f64::NAN),
        1e3 * md["seconds_per_step"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(json!({
        "available": true,
        "hypers": hypers.to_value(),
        "features": n_features,
        "prepare_seconds": prepare_seconds,
        "training": training,
        "training_forces_vs_autograd_max_relative": agreement,
        "md": md,
    }))
}

/// True when the descriptor applies the smooth cutoff: a neighbour inside the switching zone
/// counts less than with the step cutoff.
fn smooth_cutoff_applied(step: &Hypers, smooth: &Hypers, device: &Device) -> Res<bool> {
    let r = step.cutoff_radius - 0.1;
    let frame = frame_tensors(
        &[
            Particle {
                position: [0.0; 3],
                quaternion: [1.0, 0.0, 0.0, 0.0],
            },
            Particle {
                position: [r, 0.0, 0.0],
                quaternion: [1.0, 0.0, 0.0, 0.0],
            },
        ],
        device,
    )?;
    let features = |h: &Hypers| -> Res<Vec<f64>> {
        let d = DifferentiableDescriptor::new(h, device, DType::F64)?;
        let b = d.power_spectrum_batch(std::slice::from_ref(&frame), &species())?;
        Ok(b.features.flatten_all()?.to_vec1::<f64>()?)
    };
    let (a, b) = (features(step)?, features(smooth)?);
    Ok(rmse(&a, &b) > 1e-9 * rms(&a))
}

fn main() -> Res<()> {
    let args = args()?;
    let start = Instant::now();
    let device = Device::Cpu;
    let gb = GayBerne::standard();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let spec = DataSpec {
        n_particles: N_PARTICLES,
        n_structures: args.structures,
        side_range: (3.6, 5.6),
        temperature_range: (0.1, 0.6),
        max_displacement: 0.12,
        max_rotation: 0.15,
        max_force: args.max_force,
    };
    let clock = Instant::now();
    let mut samples = data::make_samples(&gb, &spec, SEMI_AXES, &mut rng);
    samples.shuffle(&mut rng);
    let n_train = (TRAIN_FRACTION * samples.len() as f64).round() as usize;
    let (train, test) = samples.split_at(n_train);
    let train: Vec<&Sample> = train.iter().collect();
    let test: Vec<&Sample> = test.iter().collect();
    let count = |set: &[&Sample], o: &str| set.iter().filter(|s| s.origin == o).count();
    println!(
        "{} structures of {N_PARTICLES} GB ellipsoids ({:.1} s): {} train, {} held out",
        samples.len(),
        clock.elapsed().as_secs_f64(),
        train.len(),
        test.len()
    );
    if !args.sweep.is_empty() {
        let d = DifferentiableDescriptor::new(
            &Hypers::from_toml_str(&args.hypers)?,
            &device,
            DType::F64,
        )?;
        let clock = Instant::now();
        let (tr, te) = (prepare(&d, &train, &device)?, prepare(&d, &test, &device)?);
        println!("[sweep] prepared in {:.1} s", clock.elapsed().as_secs_f64());
        for (k, cfg) in args.sweep.iter().enumerate() {
            println!("[sweep {k}] {cfg:?}");
            train_model(&format!("sweep {k}"), cfg, &train, &tr, &te, &device)?;
        }
        return Ok(());
    }
    // The MD start: the first held-out insertion cluster, thermalised at MD_TEMPERATURE.
    let md_source = test
        .iter()
        .find(|s| s.origin == "insertion")
        .ok_or("no held-out insertion cluster")?;
    let md_start = data::thermal_state(
        &md_source.particles,
        1.0,
        SEMI_AXES,
        MD_TEMPERATURE,
        &mut rng,
    );
    let mut gb_field =
        |x: &[[f64; 3]], q: &[[f64; 4]]| Ok(data::gb_field(&gb, &particles_of(x, q)));
    let md_gb = nve(&md_start, args.md_steps, &gb, &mut gb_field)?;
    println!(
        "[analytic GB] NVE {} steps: drift {:.3e} eps0 per ns-equivalent; max |dE| {:.3e}",
        args.md_steps,
        md_gb["drift_per_ns_equivalent"]
            .as_f64()
            .unwrap_or(f64::NAN),
        md_gb["max_abs_total_energy_deviation"]
            .as_f64()
            .unwrap_or(f64::NAN),
    );

    let step_hypers = Hypers::from_toml_str(&args.hypers)?;
    let mut variants = serde_json::Map::new();
    variants.insert(
        "step_cutoff".into(),
        variant(
            "step",
            &step_hypers,
            &train,
            &test,
            &md_start,
            &gb,
            &args,
            &device,
        )?,
    );
    let smooth = if !args.smooth {
        json!({"available": false, "reason": "not run (--no-smooth)"})
    } else {
        match Hypers::from_toml_str(&format!("{}{SMOOTH_CUTOFF}", args.hypers)) {
            Err(e) => {
                json!({"available": false, "reason": format!("hypers refuse the smooth cutoff: {e}")})
            }
            Ok(h) if !smooth_cutoff_applied(&step_hypers, &h, &device)? => json!({
                "available": false,
                "reason": "the differentiable descriptor does not apply cutoff_function yet"}),
            Ok(h) => variant("smooth", &h, &train, &test, &md_start, &gb, &args, &device)?,
        }
    };
    if let Some(reason) = smooth.get("reason") {
        println!("[smooth] skipped: {reason}");
    }
    variants.insert("smooth_cutoff".into(), smooth);
    let total_seconds = start.elapsed().as_secs_f64();
    let report = json!({
        "potential": {"kind": "Gay-Berne (uniaxial, identical)", "sigma0": gb.sigma0,
            "eps0": gb.eps0, "kappa": gb.kappa, "kappa_prime": gb.kappa_prime, "mu": gb.mu,
            "nu": gb.nu, "anisoap_semi_axes": SEMI_AXES, "mass": 1.0,
            "inertia": rigid::ellipsoid_inertia(1.0, SEMI_AXES)},
        "units": {"length": "sigma0 = 0.5 nm", "energy": "eps0 = 1 kJ/mol", "mass": "100 g/mol",
            "tau_ps": TAU_PS, "tau_per_ns_equivalent": TAU_PER_NS},
        "data": {"particles_per_structure": N_PARTICLES, "structures": samples.len(),
            "train": train.len(), "test": test.len(), "seed": SEED,
            "split": "by structure, seeded shuffle, 80/20",
            "origins_train": {"insertion": count(&train, "insertion"),
                "thermal": count(&train, "thermal"), "perturbed": count(&train, "perturbed")},
            "origins_test": {"insertion": count(&test, "insertion"),
                "thermal": count(&test, "thermal"), "perturbed": count(&test, "perturbed")},
            "box_side_range": spec.side_range, "thermal_temperature_range": spec.temperature_range,
            "max_displacement": spec.max_displacement, "max_rotation": spec.max_rotation,
            "max_force_component": spec.max_force},
        "model": {"kind": "E = sum_i MLP(standardised per-centre power spectrum)",
            "training": args.train.to_json(),
            "jacobian": {"method": "central differences of the forward, pair list fixed", "step": FD_STEP}},
        "md": {"integrator": "velocity Verlet + NO_SQUISH", "dt_tau": MD_DT,
            "initial_temperature": MD_TEMPERATURE, "start": "first held-out insertion cluster",
            "analytic_gb": md_gb},
        "variants": variants,
        "total_seconds": total_seconds,
        "hardware": "2-core CPU (shared)",
    });
    if args.write_results {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/gradients");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("gay_berne_mlp.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("wrote {} ({total_seconds:.1} s)", path.display());
    } else {
        println!("done in {total_seconds:.1} s (pass --write-results to write results/gradients/gay_berne_mlp.json)");
    }
    Ok(())
}
