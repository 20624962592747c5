//! Training the Gay-Berne MLP: features and Jacobians of a set of structures, the loss of
//! energies, forces and torques (on what the pair baseline leaves), Adam with early stopping
//! on the validation structures, and the errors of the total model (baseline + MLP).
#![allow(dead_code)]

use super::baseline::PairBaseline;
use super::data::Sample;
use super::mlp::MlpPotential;
use super::potential::Particle;
use super::settings::{Train, LR_END_FRACTION, W_ENERGY};
use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::time::Instant;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Particles per structure by default.
pub const DEFAULT_PARTICLES: usize = 12;
/// Particles per structure (set once from the command line; [`DEFAULT_PARTICLES`] when unset).
pub static PARTICLES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Particles per structure.
pub fn n_particles() -> usize {
    *PARTICLES.get().unwrap_or(&DEFAULT_PARTICLES)
}
/// AniSOAP semi-axes of every ellipsoid.
pub const SEMI_AXES: [f64; 3] = [0.5, 0.5, 1.5];
/// Scale of the descriptor's density widths relative to [`SEMI_AXES`] (set once from the
/// command line; 1 when unset).
pub static DENSITY_SCALE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
/// Seed of the data set (the model and batches use `SEED + 1`).
pub const SEED: u64 = 2024;
/// Part of the training structures held back for early stopping.
pub const VALIDATION_FRACTION: f64 = 0.15;
/// Finite-difference step of the feature Jacobians.
pub const FD_STEP: f64 = 1e-5;
const GROUP_PARTICLES: usize = 4000;

/// Particles from positions and quaternions.
pub fn particles_of(x: &[[f64; 3]], q: &[[f64; 4]]) -> Vec<Particle> {
    x.iter()
        .zip(q)
        .map(|(&position, &quaternion)| Particle {
            position,
            quaternion,
        })
        .collect()
}

/// Descriptor input tensors of a cluster (open boundaries).
pub fn frame_tensors(particles: &[Particle], device: &Device) -> Res<FrameTensors> {
    let n = particles.len();
    let pos: Vec<f64> = particles.iter().flat_map(|p| p.position).collect();
    let quat: Vec<f64> = particles.iter().flat_map(|p| p.quaternion).collect();
    Ok(FrameTensors {
        positions: Tensor::from_vec(pos, (n, 3), device)?,
        quaternions: Tensor::from_vec(quat, (n, 4), device)?,
        semi_axes: Tensor::from_vec(
            SEMI_AXES
                .map(|a| a * DENSITY_SCALE.get().unwrap_or(&1.0))
                .repeat(n),
            (n, 3),
            device,
        )?,
        types: vec![0; n],
        cell: [[0.0; 3]; 3],
        pbc: [false; 3],
    })
}

/// One species.
pub fn species() -> SpeciesLayout {
    SpeciesLayout::Fixed(vec![0])
}

/// Number of fit structures among `n_train` training structures (the rest validate).
pub fn n_fit(n_train: usize) -> usize {
    n_train - ((n_train as f64) * VALIDATION_FRACTION).round() as usize
}

/// Root mean square.
pub fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

/// Root mean square difference.
pub fn rmse(a: &[f64], b: &[f64]) -> f64 {
    (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64).sqrt()
}

/// Standard deviation.
pub fn std_dev(v: &[f64]) -> f64 {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// Features `[K·N, F]` and Jacobians `[K, N·F, 6N]` of a set of structures, the MLP's
/// targets (reference minus baseline: energies `[K]`, forces and torques `[K, N, 6]`) and
/// the baseline's part.
pub struct Prepared {
    /// Per-centre features `[K·N, F]`.
    pub features: Tensor,
    /// Feature Jacobians `[K, N·F, 6N]`.
    pub jacobians: Tensor,
    /// Energies less the baseline's `[K]`.
    pub energies: Tensor,
    /// Forces and torques less the baseline's `[K, N, 6]`.
    pub generalised: Tensor,
    /// The baseline's energies.
    pub base_energies: Tensor,
    /// The baseline's forces and torques.
    pub base_generalised: Tensor,
}

/// Energies `[K]` and generalised forces `[K, N, 6]` of fields.
fn field_tensors<'a>(
    fields: impl Iterator<Item = (f64, &'a [[f64; 3]], &'a [[f64; 3]])>,
    device: &Device,
) -> Res<(Tensor, Tensor)> {
    let mut e = Vec::new();
    let mut gen: Vec<f64> = Vec::new();
    for (energy, forces, torques) in fields {
        e.push(energy);
        for (f, t) in forces.iter().zip(torques) {
            gen.extend(f.iter().chain(t));
        }
    }
    let k = e.len();
    Ok((
        Tensor::from_vec(e, k, device)?,
        Tensor::from_vec(gen, (k, n_particles(), 6), device)?,
    ))
}

/// Features, Jacobians and targets of `set`, the targets less `baseline`.
pub fn prepare(
    descriptor: &DifferentiableDescriptor,
    set: &[&Sample],
    baseline: &PairBaseline,
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
    let n = n_particles();
    let f = features.dim(1)?;
    let flat: Vec<f64> = jac.into_iter().flatten().collect();
    let jacobians = Tensor::from_vec(flat, (set.len(), n * f, 6 * n), device)?;
    let (energies, generalised) = field_tensors(
        set.iter()
            .map(|s| (s.energy, s.forces.as_slice(), s.torques.as_slice())),
        device,
    )?;
    let base: Vec<_> = set.iter().map(|s| baseline.field(&s.particles)).collect();
    let (base_energies, base_generalised) = field_tensors(
        base.iter()
            .map(|(e, f, t)| (*e, f.as_slice(), t.as_slice())),
        device,
    )?;
    Ok(Prepared {
        features,
        jacobians,
        energies: (energies - &base_energies)?,
        generalised: (generalised - &base_generalised)?,
        base_energies,
        base_generalised,
    })
}

impl Prepared {
    /// The structures `idx` (features rows, Jacobians, targets).
    fn select(&self, idx: &[u32], device: &Device) -> Res<Prepared> {
        let n = n_particles() as u32;
        let rows: Vec<u32> = idx.iter().flat_map(|&k| k * n..(k + 1) * n).collect();
        let rows_len = rows.len();
        let rows = Tensor::from_vec(rows, rows_len, device)?;
        let ids = Tensor::from_vec(idx.to_vec(), idx.len(), device)?;
        Ok(Prepared {
            features: self.features.index_select(&rows, 0)?,
            jacobians: self.jacobians.index_select(&ids, 0)?,
            energies: self.energies.index_select(&ids, 0)?,
            generalised: self.generalised.index_select(&ids, 0)?,
            base_energies: self.base_energies.index_select(&ids, 0)?,
            base_generalised: self.base_generalised.index_select(&ids, 0)?,
        })
    }
}

/// Loss scales: energy-per-particle variance, force and torque mean squares (training set).
pub struct Scales {
    /// Variance of the energy per particle.
    pub energy_var: f64,
    /// Mean square force component.
    pub force_ms: f64,
    /// Mean square torque component.
    pub torque_ms: f64,
}

impl Scales {
    /// The scales of the reference data of `set`.
    pub fn of(set: &[&Sample]) -> Scales {
        let per_particle: Vec<f64> = set
            .iter()
            .map(|s| s.energy / n_particles() as f64)
            .collect();
        let all = |g: fn(&Sample) -> &Vec<[f64; 3]>| -> Vec<f64> {
            set.iter()
                .flat_map(|s| g(s).iter().flatten().copied())
                .collect()
        };
        Scales {
            energy_var: std_dev(&per_particle).powi(2),
            force_ms: rms(&all(|s| &s.forces)).powi(2),
            torque_ms: rms(&all(|s| &s.torques)).powi(2),
        }
    }
}

/// Fits `baseline` to the reference data of `fit` with the loss weights of `cfg`.
pub fn fit_baseline(
    baseline: &mut PairBaseline,
    fit: &[&Sample],
    train: &[&Sample],
    cfg: &Train,
) -> Value {
    let s = Scales::of(train);
    baseline.fit(
        fit,
        [W_ENERGY, cfg.w_force, cfg.w_torque],
        [s.energy_var, s.force_ms, s.torque_ms],
    )
}

/// Errors of `baseline` alone on the reference data of `set`.
pub fn baseline_errors(baseline: &PairBaseline, set: &[&Sample]) -> Value {
    let mut pred = (Vec::new(), Vec::new(), Vec::new());
    let mut truth = (Vec::new(), Vec::new(), Vec::new());
    for s in set {
        let (e, f, t) = baseline.field(&s.particles);
        pred.0.push(e);
        pred.1.extend(f.iter().flatten());
        pred.2.extend(t.iter().flatten());
        truth.0.push(s.energy);
        truth.1.extend(s.forces.iter().flatten());
        truth.2.extend(s.torques.iter().flatten());
    }
    json!({"energy_rmse_over_std": rmse(&pred.0, &truth.0) / std_dev(&truth.0),
        "force_rmse_over_rms": rmse(&pred.1, &truth.1) / rms(&truth.1),
        "torque_rmse_over_rms": rmse(&pred.2, &truth.2) / rms(&truth.2)})
}

fn loss(model: &MlpPotential, batch: &Prepared, s: &Scales, cfg: &Train) -> Res<Tensor> {
    let (e, g) = model.predict_from_jacobians(&batch.features, &batch.jacobians)?;
    let n = n_particles() as f64;
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

/// The pairs `(predicted, true)` whose `|true|` lies at or below its `q` quantile.
fn below_quantile(predicted: &[f64], truth: &[f64], q: f64) -> (Vec<f64>, Vec<f64>) {
    let mut sorted: Vec<f64> = truth.iter().map(|v| v.abs()).collect();
    sorted.sort_by(f64::total_cmp);
    // The q quantile's entry, or the largest when q·len runs past the end; none when empty.
    let k = (sorted.len() as f64 * q) as usize;
    let Some(&limit) = sorted.get(k).or(sorted.last()) else {
        return (Vec::new(), Vec::new());
    };
    predicted
        .iter()
        .zip(truth)
        .filter(|(_, t)| t.abs() <= limit)
        .map(|(&p, &t)| (p, t))
        .unzip()
}

/// Errors of the total model (baseline + MLP) on a prepared set, with parity data.
pub fn evaluate(model: &MlpPotential, set: &Prepared) -> Res<Value> {
    let (e, g) = model.predict_from_jacobians(&set.features, &set.jacobians)?;
    let e = (e + &set.base_energies)?.to_vec1::<f64>()?;
    let true_e = (&set.energies + &set.base_energies)?.to_vec1::<f64>()?;
    let g = (g + &set.base_generalised)?;
    let true_g = (&set.generalised + &set.base_generalised)?;
    let split = |t: &Tensor, start: usize| -> Res<Vec<f64>> {
        Ok(t.narrow(2, start, 3)?.flatten_all()?.to_vec1::<f64>()?)
    };
    let (f, tf) = (split(&g, 0)?, split(&true_g, 0)?);
    let (t, tt) = (split(&g, 3)?, split(&true_g, 3)?);
    let e_rmse = rmse(&e, &true_e);
    let e_std = std_dev(&true_e);
    let f_rmse = rmse(&f, &tf);
    let f_rms = rms(&tf);
    // The same without the largest 1 % of |true force| components (the rare close contacts
    // that dominate the RMS): how the model does on typical configurations.
    let (f_bulk, tf_bulk) = below_quantile(&f, &tf, 0.99);
    Ok(json!({
        "structures": true_e.len(),
        "energy_rmse": e_rmse, "energy_std": e_std, "energy_rmse_over_std": e_rmse / e_std,
        "energy_rmse_per_particle": e_rmse / n_particles() as f64,
        "force_component_rmse": f_rmse, "force_component_rms": f_rms,
        "force_rmse_over_rms": f_rmse / f_rms,
        "force_rmse_over_rms_below_p99": rmse(&f_bulk, &tf_bulk) / rms(&tf_bulk),
        "torque_component_rmse": rmse(&t, &tt), "torque_component_rms": rms(&tt),
        "torque_rmse_over_rms": rmse(&t, &tt) / rms(&tt),
        "parity_energy_true": true_e, "parity_energy_predicted": e,
        "parity_force_true": tf, "parity_force_predicted": f,
    }))
}

/// Trains a model on prepared data; returns it and the training report (with errors).
pub fn train_model(
    name: &str,
    cfg: &Train,
    train: &[&Sample],
    tr: &Prepared,
    te: &Prepared,
    device: &Device,
) -> Res<(MlpPotential, Value)> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    let model = MlpPotential::new(&tr.features, &cfg.hidden, cfg.activation, &mut rng)?;
    // The MLP starts as zero: the model starts as the baseline, and early stopping keeps it
    // there if training never improves the validation loss.
    model.mlp.zero_output()?;
    let scales = Scales::of(train);
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
    let n_fit = n_fit(train.len());
    let n_val = train.len() - n_fit;
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
    let l_start = loss(&model, &val, &scales, cfg)?.to_scalar::<f64>()?;
    let mut best: (f64, Option<usize>, Vec<Tensor>) = (l_start, None, snapshot(&model)?);
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
            let v = evaluate(&model, &val)?;
            let rel = |key: &str| v[key].as_f64().unwrap_or(f64::NAN);
            let (ve, vf, vt) = (
                rel("energy_rmse_over_std"),
                rel("force_rmse_over_rms"),
                rel("torque_rmse_over_rms"),
            );
            curve.push(
                json!({"epoch": epoch, "fit_loss": l_fit, "validation_loss": l_val,
                "validation_energy_rmse_over_std": ve, "validation_force_rmse_over_rms": vf,
                "validation_torque_rmse_over_rms": vt}),
            );
            if l_val < best.0 {
                best = (l_val, Some(epoch), snapshot(&model)?);
            }
            if epoch % 20 == 0 || epoch + 1 == cfg.epochs {
                println!(
                    "[{name}] epoch {epoch}: loss fit {l_fit:.4} validation {l_val:.4} (energy {:.1} %, forces {:.1} %, torques {:.1} %)",
                    100.0 * ve,
                    100.0 * vf,
                    100.0 * vt
                );
            }
        }
    }
    for (v, t) in model.mlp.vars().iter().zip(&best.2) {
        v.set(t)?;
    }
    println!(
        "[{name}] kept the parameters of epoch {} (validation loss {:.4}; {l_start:.4} at the start)",
        best.1.map_or("none (the zero start)".to_string(), |e| e.to_string()),
        best.0
    );
    let train_seconds = clock.elapsed().as_secs_f64();
    println!("[{name}] {step} optimizer steps in {train_seconds:.1} s");
    let e_train = evaluate(&model, &fit)?;
    let e_val = evaluate(&model, &val)?;
    let e_test = evaluate(&model, te)?;
    for (label, e) in [("fit", &e_train), ("val", &e_val), ("test", &e_test)] {
        println!(
            "[{name}] {label:5}: energy RMSE {:.3} / std {:.3} = {:.1} %; force RMSE {:.3} / RMS {:.3} = {:.1} %; torque {:.1} %; forces without the largest 1 % {:.1} %",
            e["energy_rmse"].as_f64().unwrap_or(f64::NAN),
            e["energy_std"].as_f64().unwrap_or(f64::NAN),
            100.0 * e["energy_rmse_over_std"].as_f64().unwrap_or(f64::NAN),
            e["force_component_rmse"].as_f64().unwrap_or(f64::NAN),
            e["force_component_rms"].as_f64().unwrap_or(f64::NAN),
            100.0 * e["force_rmse_over_rms"].as_f64().unwrap_or(f64::NAN),
            100.0 * e["torque_rmse_over_rms"].as_f64().unwrap_or(f64::NAN),
            100.0 * e["force_rmse_over_rms_below_p99"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok((
        model,
        json!({"settings": cfg.to_json(), "train_seconds": train_seconds,
            "optimizer_steps": step, "loss_curve": curve,
            "structures": {"fit": n_fit, "validation": n_val, "test": te.energies.dim(0)?},
            "kept_epoch": best.1, "kept_validation_loss": best.0,
            "validation_loss_at_start": l_start, "mlp_start": "output layer zero (the baseline alone)",
            "errors": {"train": e_train, "validation": e_val, "test": e_test}}),
    ))
}
