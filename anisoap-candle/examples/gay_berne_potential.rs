//! A machine-learned Gay-Berne potential: a linear pair baseline plus an MLP on per-centre
//! AniSOAP power spectra (Δ-learning), trained on energies, forces and torques, then NVE
//! molecular dynamics with the learned forces.
//!
//! ```text
//! cargo run --release -p anisoap-candle --example gay_berne_potential -- [--write-results]
//!     [--no-smooth] [--structures N] [--max-force F] [--md-steps N] [--hypers TOML]
//!     [--data thermal|mixed] [--temperatures LO,HI] [--data-steps N] [--density-scale S]
//!     [--baseline none|iso|anisoD] [--radial "g0.7:3.5:0.2+e0.1"] [--ridge R] [--no-gap]
//!     [--train "hidden=64,64 act=tanh wf=10 wt=2 lr=1e-3 batch=48 epochs=200 decay=1e-4"]
//!     [--sweep "SETTINGS;SETTINGS;..."] [--diagnose] [--baseline-structures B]
//!     [--particles N]
//! ```
//!
//! 1. Data (seeded): open clusters of 12 (`--particles N`) Gay-Berne ellipsoids (σ0 = 1,
//!    κ = 3, κ' = 5, μ = 2, ν = 1; AniSOAP semi-axes 0.5, 0.5, 1.5 along the body x, y, z
//!    axes). `thermal` (the default): each structure the end of its own GB-MD run
//!    (`--data-steps` steps of dt 0.002, kinetic energy rescaled to T every 10 steps, T
//!    uniform in `--temperatures`) from a random insertion in a cube of side 3.6 to 5.6
//!    (× (N/12)^⅓ for other sizes). `mixed` (the earlier set): a third as inserted, a third
//!    after a short NVE stretch at T = 0.1 to 0.6, a third perturbed at random. Structures
//!    with a force component above `--max-force` are redrawn. Split by structure (seeded
//!    shuffle): 80 % training (of which 15 % validation, for early stopping and for every
//!    choice of settings), 20 % held out.
//! 2. Pair baseline (`gay_berne/baseline.rs`): radial functions of the shape-shifted centre
//!    distance times invariant monomials of the pair's orientations, fitted by weighted least
//!    squares on the fit structures (on the first `--baseline-structures` of them only when
//!    given, so the MLP also sees residuals the baseline was not fitted to); `--diagnose`
//!    prints its errors alone and stops.
//! 3. Descriptor: per-centre power spectrum from
//!    [`DifferentiableDescriptor::power_spectrum_batch`] (all structures of a group in one
//!    graph), feature Jacobians by [`DifferentiableDescriptor::feature_jacobians`].
//! 4. Model `E = E_pair + Σ_i MLP(standardised X_i)` (`gay_berne/mlp.rs`, training in
//!    `gay_berne/fit.rs`): the MLP starts at zero and learns what the baseline leaves, Adam
//!    on a loss of energies per particle, forces and torques (each divided by its
//!    training-set variance or mean square), forces predicted as `−Σ_i J_iᵀ ∇MLP` (no double
//!    backward needed); the parameters with the lowest validation loss (the zero start
//!    included) are kept.
//! 5. NVE MD of a held-out cluster with the learned forces and torques (the MLP's from the
//!    descriptor's autograd, the baseline's analytic; velocity Verlet + NO_SQUISH,
//!    `gay_berne/rigid.rs`), once with the original's step cutoff and once with the smooth
//!    `shifted_cosine` cutoff (each with its own model), plus the same start under the
//!    analytic GB potential; total-energy drift per ns-equivalent (GB reduced units with
//!    σ0 = 0.5 nm, ε0 = 1 kJ/mol, m = 100 g/mol, so τ = σ0 √(m/ε0) = 5 ps and 1 ns = 200 τ)
//!    and the true GB energy along the learned trajectory.
//!
//! `--sweep` compares training settings on the step-cutoff descriptor (no MD, nothing
//! written). With `--write-results` it writes `results/gradients/gay_berne_mlp.json`.

#[path = "gay_berne/baseline.rs"]
mod baseline;
#[path = "gay_berne/data.rs"]
mod data;
#[path = "gay_berne/fit.rs"]
mod fit;
#[path = "gay_berne/mlp.rs"]
mod mlp;
#[path = "gay_berne/potential.rs"]
mod potential;
#[path = "gay_berne/rigid.rs"]
mod rigid;
#[path = "gay_berne/settings.rs"]
mod settings;

use anisoap_candle::differentiable::DifferentiableDescriptor;
use anisoap_candle::Hypers;
use baseline::PairBaseline;
use candle_core::{DType, Device, Var};
use data::{DataKind, DataSpec, Sample};
use fit::{
    frame_tensors, n_particles, particles_of, prepare, rms, rmse, species, train_model, Prepared,
    SEED, SEMI_AXES,
};
use mlp::MlpPotential;
use potential::{GayBerne, Particle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rigid::RigidState;
use serde_json::{json, Value};
use settings::Train;
use std::time::Instant;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const N_STRUCTURES: usize = 600;
const TRAIN_FRACTION: f64 = 0.8;
/// Descriptor hypers (the smooth variant adds `cutoff_function`).
const HYPERS_TOML: &str = "max_angular = 4\ncutoff_radius = 5.0\nradial_gaussian_width = 0.5\n\
                           max_radial = 2\n";
const SMOOTH_CUTOFF: &str = "cutoff_function = { shifted_cosine = { width = 0.5 } }\n";
/// Temperature range of the thermal data runs.
const THERMAL_TEMPERATURES: (f64, f64) = (0.1, 0.4);
/// MD steps of each thermal data run.
const THERMAL_STEPS: usize = 1500;
/// Radial functions of the pair baseline (see `baseline::Radial::parse_list`).
const BASELINE_RADIAL: &str = "g0.7:3.5:0.2+e0.1";
/// Ridge of the baseline's least squares (normal equations scaled to unit diagonal).
const BASELINE_RIDGE: f64 = 1e-8;
/// Cutoff and taper width of the pair baseline.
const BASELINE_CUTOFF: (f64, f64) = (5.0, 1.0);
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
    /// How the structures are made.
    data: DataKind,
    /// Thermal-run temperature range.
    temperatures: (f64, f64),
    /// MD steps of each thermal run.
    data_steps: usize,
    /// Pair baseline under the MLP.
    baseline: baseline::Kind,
    /// Radial functions of the baseline.
    radial: Vec<baseline::Radial>,
    /// Ridge of the baseline fit.
    ridge: f64,
    /// The baseline is fitted on the first this many fit structures only (all when larger),
    /// so the MLP also sees the baseline's out-of-sample residuals.
    baseline_structures: usize,
    /// Radial functions of the shape-shifted distance (`baseline::PairBaseline::shape`).
    gap: bool,
    /// Only print the data statistics and the baseline's errors (no descriptor, no MLP).
    diagnose: bool,
}

/// Comma-separated numbers.
fn list<T: std::str::FromStr>(name: &str, v: &str) -> Res<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    v.split(',')
        .map(|x| {
            x.parse::<T>()
                .map_err(|e| format!("{name} {x}: {e}").into())
        })
        .collect()
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
        data: DataKind::Thermal,
        temperatures: THERMAL_TEMPERATURES,
        data_steps: THERMAL_STEPS,
        baseline: baseline::Kind::Angular(12),
        radial: baseline::Radial::parse_list(BASELINE_RADIAL)?,
        diagnose: false,
        gap: true,
        ridge: BASELINE_RIDGE,
        baseline_structures: usize::MAX,
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
            "--data" => {
                a.data = match it.next().as_deref() {
                    Some("mixed") => DataKind::Mixed,
                    Some("thermal") => DataKind::Thermal,
                    _ => return Err("--data needs mixed or thermal".into()),
                }
            }
            "--temperatures" => {
                let t: Vec<f64> = list("--temperatures", &it.next().ok_or("--temperatures")?)?;
                a.temperatures = (t[0], *t.get(1).unwrap_or(&t[0]));
            }
            "--data-steps" => a.data_steps = number("--data-steps")?,
            "--baseline" => a.baseline = baseline::Kind::parse(&it.next().ok_or("--baseline")?)?,
            "--radial" => a.radial = baseline::Radial::parse_list(&it.next().ok_or("--radial")?)?,
            "--diagnose" => a.diagnose = true,
            "--no-gap" => a.gap = false,
            "--baseline-structures" => a.baseline_structures = number("--baseline-structures")?,
            "--ridge" => a.ridge = list::<f64>("--ridge", &it.next().ok_or("--ridge")?)?[0],
            "--particles" => {
                let n = number("--particles")?;
                if n < 2 {
                    return Err("--particles needs at least 2 (a pair)".into());
                }
                fit::PARTICLES
                    .set(n)
                    .map_err(|_| "--particles given twice")?;
            }
            "--density-scale" => {
                let v: Vec<f64> = list("--density-scale", &it.next().ok_or("--density-scale")?)?;
                fit::DENSITY_SCALE
                    .set(v[0])
                    .map_err(|_| "--density-scale given twice")?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// Energy, forces and torques of the learned model by the descriptor's autograd, plus those
/// of the pair baseline when given.
fn model_field(
    descriptor: &DifferentiableDescriptor,
    model: &MlpPotential,
    baseline: Option<&PairBaseline>,
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
    let mut forces: Vec<[f64; 3]> = gx.iter().map(|g| [-g[0], -g[1], -g[2]]).collect();
    let mut torques: Vec<[f64; 3]> = q
        .iter()
        .zip(&gq)
        .map(|(qi, g)| rigid::lab_torque(*qi, [g[0], g[1], g[2], g[3]]))
        .collect();
    let mut energy = energy.to_scalar::<f64>()?;
    if let Some(b) = baseline {
        let (e, f, t) = b.field(&particles_of(x, q));
        energy += e;
        for i in 0..forces.len() {
            for d in 0..3 {
                forces[i][d] += f[i][d];
                torques[i][d] += t[i][d];
            }
        }
    }
    Ok((energy, forces, torques))
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
            .map(|d| state.positions.iter().map(|p| p[d]).sum::<f64>() / n_particles() as f64)
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
        "drift_per_ns_equivalent_per_particle": per_tau * TAU_PER_NS / n_particles() as f64,
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
        let (_, f, t) = model_field(descriptor, model, None, &x, &q, device)?;
        let scale = g[k].iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..n_particles() {
            for d in 0..3 {
                worst = worst.max((f[i][d] - g[k][i][d]).abs() / scale);
                worst = worst.max((t[i][d] - g[k][i][3 + d]).abs() / scale);
            }
        }
    }
    Ok(worst)
}

/// Trains a model for one descriptor and runs its NVE trajectory.
#[allow(clippy::too_many_arguments)]
fn variant(
    name: &str,
    hypers: &Hypers,
    train: &[&Sample],
    test: &[&Sample],
    baseline: &PairBaseline,
    md_start: &RigidState,
    gb: &GayBerne,
    args: &Args,
    device: &Device,
) -> Res<Value> {
    let descriptor = DifferentiableDescriptor::new(hypers, device, DType::F64)?;
    let clock = Instant::now();
    let tr = prepare(&descriptor, train, baseline, device)?;
    let te = prepare(&descriptor, test, baseline, device)?;
    let prepare_seconds = clock.elapsed().as_secs_f64();
    let n_features = tr.features.dim(1)?;
    println!(
        "[{name}] {n_features} features; features + Jacobians of {} structures in {prepare_seconds:.1} s",
        train.len() + test.len()
    );
    let (model, training) = train_model(name, &args.train, train, &tr, &te, device)?;
    let agreement = consistency(&descriptor, &model, &te, test, device)?;
    println!("[{name}] training-time forces (-J^T grad) vs autograd: {agreement:.2e} relative");
    let mut field = |x: &[[f64; 3]], q: &[[f64; 4]]| {
        model_field(&descriptor, &model, Some(baseline), x, q, device)
    };
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

/// Energy spread, RMS and largest force component of each set, and the origins of its
/// structures.
fn data_stats(train: &[&Sample], test: &[&Sample]) -> Value {
    let one = |set: &[&Sample]| {
        let e: Vec<f64> = set.iter().map(|s| s.energy).collect();
        let f: Vec<f64> = set
            .iter()
            .flat_map(|s| s.forces.iter().flatten().copied())
            .collect();
        let t: Vec<f64> = set
            .iter()
            .flat_map(|s| s.torques.iter().flatten().copied())
            .collect();
        let mut origins = serde_json::Map::new();
        for s in set {
            let c = origins.entry(s.origin).or_insert(json!(0));
            *c = json!(c.as_u64().unwrap_or(0) + 1);
        }
        json!({"structures": set.len(), "energy_mean": e.iter().sum::<f64>() / e.len() as f64,
            "energy_std": fit::std_dev(&e), "force_component_rms": rms(&f),
            "force_component_max": f.iter().fold(0.0f64, |m, v| m.max(v.abs())),
            "torque_component_rms": rms(&t), "origins": origins})
    };
    json!({"train": one(train), "test": one(test)})
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
        kind: args.data,
        md_steps: args.data_steps,
        n_particles: n_particles(),
        n_structures: args.structures,
        // The insertion box keeps the default's density for other cluster sizes.
        side_range: {
            let scale = (n_particles() as f64 / fit::DEFAULT_PARTICLES as f64).cbrt();
            (3.6 * scale, 5.6 * scale)
        },
        temperature_range: match args.data {
            DataKind::Mixed => (0.1, 0.6),
            DataKind::Thermal => args.temperatures,
        },
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
    println!(
        "{} structures of {} GB ellipsoids ({:.1} s): {} train, {} held out",
        samples.len(),
        n_particles(),
        clock.elapsed().as_secs_f64(),
        train.len(),
        test.len()
    );
    let stats = data_stats(&train, &test);
    // The pair baseline, fitted on the fit structures only (not validation, not held out).
    let n_fit = fit::n_fit(train.len());
    let mut pair = PairBaseline::zero(
        args.baseline,
        &args.radial,
        BASELINE_CUTOFF.0,
        BASELINE_CUTOFF.1,
    );
    pair.ridge = args.ridge;
    if args.gap {
        pair.shape = Some([SEMI_AXES[0], SEMI_AXES[2]]);
    }
    let n_base = args.baseline_structures.min(n_fit);
    let mut baseline_report = fit::fit_baseline(&mut pair, &train[..n_base], &train, &args.train);
    baseline_report["fit_structures"] = json!(n_base);
    // Held-out errors of the baseline alone are reported, never used for a choice.
    let baseline_errors = json!({"fit": fit::baseline_errors(&pair, &train[..n_fit]),
        "baseline_fit": fit::baseline_errors(&pair, &train[..n_base]),
        "validation": fit::baseline_errors(&pair, &train[n_fit..]),
        "test": fit::baseline_errors(&pair, &test)});
    println!(
        "[baseline {}] errors alone: fit {} validation {}",
        args.baseline.name(),
        baseline_errors["fit"],
        baseline_errors["validation"]
    );
    baseline_report["errors_alone"] = baseline_errors;
    if args.diagnose {
        println!("{stats:#}");
        println!("{baseline_report:#}");
        return Ok(());
    }
    if !args.sweep.is_empty() {
        let d = DifferentiableDescriptor::new(
            &Hypers::from_toml_str(&args.hypers)?,
            &device,
            DType::F64,
        )?;
        let clock = Instant::now();
        let tr = prepare(&d, &train, &pair, &device)?;
        let te = prepare(&d, &test, &pair, &device)?;
        println!("[sweep] prepared in {:.1} s", clock.elapsed().as_secs_f64());
        for (k, cfg) in args.sweep.iter().enumerate() {
            println!("[sweep {k}] {cfg:?}");
            train_model(&format!("sweep {k}"), cfg, &train, &tr, &te, &device)?;
        }
        return Ok(());
    }
    // The MD start: the first held-out insertion cluster (mixed data) or held-out structure
    // (thermal data), with new velocities at MD_TEMPERATURE.
    let md_source = test
        .iter()
        .find(|s| s.origin == "insertion" || args.data == DataKind::Thermal)
        .ok_or("no held-out MD start")?;
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
            &pair,
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
            Ok(h) => variant(
                "smooth", &h, &train, &test, &pair, &md_start, &gb, &args, &device,
            )?,
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
            "nu": gb.nu, "anisoap_semi_axes": SEMI_AXES,
            "descriptor_density_scale": fit::DENSITY_SCALE.get().unwrap_or(&1.0), "mass": 1.0,
            "inertia": rigid::ellipsoid_inertia(1.0, SEMI_AXES)},
        "units": {"length": "sigma0 = 0.5 nm", "energy": "eps0 = 1 kJ/mol", "mass": "100 g/mol",
            "tau_ps": TAU_PS, "tau_per_ns_equivalent": TAU_PER_NS},
        "data": {"kind": args.data.name(), "particles_per_structure": n_particles(),
            "structures": samples.len(), "train": train.len(), "test": test.len(), "seed": SEED,
            "split": "by structure (each thermal structure from its own MD run), seeded shuffle, 80/20; 15 % of the training structures validate",
            "box_side_range": spec.side_range, "thermal_temperature_range": spec.temperature_range,
            "thermal_md_steps": spec.md_steps,
            "max_displacement": spec.max_displacement, "max_rotation": spec.max_rotation,
            "max_force_component": spec.max_force, "statistics": stats},
        "model": {"kind": "E = E_pair_baseline + sum_i MLP(standardised per-centre power spectrum)",
            "baseline": baseline_report,
            "training": args.train.to_json(),
            "jacobian": {"method": "central differences of the forward, pair list fixed", "step": fit::FD_STEP}},
        "md": {"integrator": "velocity Verlet + NO_SQUISH", "dt_tau": MD_DT,
            "initial_temperature": MD_TEMPERATURE,
            "start": format!("first held-out {} structure", if args.data == DataKind::Mixed { "insertion" } else { "thermal" }),
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
