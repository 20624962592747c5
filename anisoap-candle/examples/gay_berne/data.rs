//! Seeded Gay-Berne cluster data: random insertion at a range of densities, thermal
//! snapshots from short analytic-GB NVE runs, and random perturbations that sample the
//! repulsive wall; each structure with its energy, forces and lab torques.
#![allow(dead_code)]

use super::potential::{pair_sum, GayBerne, Particle};
use super::rigid::{ellipsoid_inertia, lab_torque, RigidState};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Uniform random unit quaternion (Shoemake).
pub fn random_quaternion(rng: &mut ChaCha8Rng) -> [f64; 4] {
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

/// Standard normal deviate (Box-Muller).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Random sequential insertion of `n` particles in a cube of side `side`: a particle is
/// accepted when its GB energy with every particle already placed is below `0.5 ε0`.
pub fn insertion(gb: &GayBerne, n: usize, side: f64, rng: &mut ChaCha8Rng) -> Vec<Particle> {
    'restart: loop {
        let mut particles: Vec<Particle> = Vec::with_capacity(n);
        while particles.len() < n {
            let mut placed = false;
            for _ in 0..2000 {
                let p = Particle {
                    position: [0, 1, 2].map(|_| rng.gen_range(0.0..side)),
                    quaternion: random_quaternion(rng),
                };
                if particles
                    .iter()
                    .all(|q| gb.energy_forces(&[*q, p]).0 < 0.5 * gb.eps0)
                {
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

/// Energy, forces and lab torques of a configuration under the analytic GB potential.
pub fn gb_field(gb: &GayBerne, particles: &[Particle]) -> (f64, Vec<[f64; 3]>, Vec<[f64; 3]>) {
    torques_of(particles, gb.energy_forces(particles))
}

/// Energy, forces and lab torques of a sum over pairs of `pair` (see [`pair_sum`]).
pub fn pair_field(
    particles: &[Particle],
    pair: impl FnMut(f64, f64, f64, f64) -> [f64; 5],
) -> (f64, Vec<[f64; 3]>, Vec<[f64; 3]>) {
    torques_of(particles, pair_sum(particles, pair))
}

/// Lab torques from quaternion gradients.
fn torques_of(
    particles: &[Particle],
    (e, f, dq): (f64, Vec<[f64; 3]>, Vec<[f64; 4]>),
) -> (f64, Vec<[f64; 3]>, Vec<[f64; 3]>) {
    let t = particles
        .iter()
        .zip(&dq)
        .map(|(p, g)| {
            let n = p.quaternion.iter().map(|v| v * v).sum::<f64>().sqrt();
            // dq is the gradient with respect to the stored q; at |q| = n the unit-q gradient
            // is n · dq.
            lab_torque(p.quaternion.map(|v| v / n), g.map(|v| v * n))
        })
        .collect();
    (e, f, t)
}

/// A rigid-body state at rest positions `particles` with Maxwell-Boltzmann velocities and
/// angular momenta at temperature `t` (k_B = 1), zero total momentum.
pub fn thermal_state(
    particles: &[Particle],
    mass: f64,
    semi_axes: [f64; 3],
    t: f64,
    rng: &mut ChaCha8Rng,
) -> RigidState {
    let n = particles.len();
    let inertia = ellipsoid_inertia(mass, semi_axes);
    let mut state = RigidState {
        positions: particles.iter().map(|p| p.position).collect(),
        velocities: vec![[0.0; 3]; n],
        quaternions: particles
            .iter()
            .map(|p| {
                let m = p.quaternion.iter().map(|v| v * v).sum::<f64>().sqrt();
                p.quaternion.map(|v| v / m)
            })
            .collect(),
        momenta: vec![[0.0; 4]; n],
        mass,
        inertia,
    };
    let mut total = [0.0; 3];
    for v in state.velocities.iter_mut() {
        for (d, vd) in v.iter_mut().enumerate() {
            *vd = (t / mass).sqrt() * normal(rng);
            total[d] += *vd;
        }
    }
    for v in state.velocities.iter_mut() {
        for d in 0..3 {
            v[d] -= total[d] / n as f64;
        }
    }
    for i in 0..n {
        let l = [0, 1, 2].map(|k| (t * inertia[k]).sqrt() * normal(rng));
        state.set_body_angular_momentum(i, l);
    }
    state
}

/// One reference structure.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Configuration.
    pub particles: Vec<Particle>,
    /// GB energy.
    pub energy: f64,
    /// GB forces.
    pub forces: Vec<[f64; 3]>,
    /// GB lab torques.
    pub torques: Vec<[f64; 3]>,
    /// How it was made (`insertion`, `thermal`, `perturbed`).
    pub origin: &'static str,
    /// Box side of the insertion it came from.
    pub side: f64,
}

/// How the structures are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// A third as inserted, a third short NVE from a thermal start, a third perturbed.
    Mixed,
    /// Every structure the end of its own thermostatted GB MD run from an insertion.
    Thermal,
}

impl DataKind {
    /// Name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Mixed => "mixed",
            DataKind::Thermal => "thermal",
        }
    }
}

/// Settings of the data set.
#[derive(Debug, Clone, Copy)]
pub struct DataSpec {
    /// How the structures are made.
    pub kind: DataKind,
    /// MD steps (dt 0.002) of each thermal run ([`DataKind::Thermal`]).
    pub md_steps: usize,
    /// Particles per cluster.
    pub n_particles: usize,
    /// Number of structures.
    pub n_structures: usize,
    /// Insertion box sides, uniform in this range (the density range).
    pub side_range: (f64, f64),
    /// Temperatures of the thermal snapshots, uniform in this range.
    pub temperature_range: (f64, f64),
    /// Largest Gaussian displacement of the perturbed structures.
    pub max_displacement: f64,
    /// Largest rotation angle (radian) of the perturbed structures.
    pub max_rotation: f64,
    /// Structures whose largest force component exceeds this are redrawn.
    pub max_force: f64,
}

/// `spec.n_structures` seeded structures of the kind `spec.kind`.
pub fn make_samples(
    gb: &GayBerne,
    spec: &DataSpec,
    semi_axes: [f64; 3],
    rng: &mut ChaCha8Rng,
) -> Vec<Sample> {
    match spec.kind {
        DataKind::Mixed => mixed_samples(gb, spec, semi_axes, rng),
        DataKind::Thermal => thermal_samples(gb, spec, semi_axes, rng),
    }
}

/// Velocity rescaling interval (steps) of the thermostatted runs.
const RESCALE_EVERY: usize = 10;

/// One structure per run: an insertion at a random box side, Maxwell-Boltzmann velocities at
/// a temperature `T` uniform in `spec.temperature_range`, then `spec.md_steps` steps of
/// analytic-GB MD (dt 0.002) with the kinetic energy rescaled to `3 N T` (6 degrees of
/// freedom per body, k_B = 1) every [`RESCALE_EVERY`] steps; the last configuration is kept.
/// Runs that fail or end with a force component above `spec.max_force` are redrawn.
fn thermal_samples(
    gb: &GayBerne,
    spec: &DataSpec,
    semi_axes: [f64; 3],
    rng: &mut ChaCha8Rng,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(spec.n_structures);
    let mut field = |x: &[[f64; 3]], q: &[[f64; 4]]| Ok(gb_field(gb, &particles(x, q)));
    while out.len() < spec.n_structures {
        let side = rng.gen_range(spec.side_range.0..spec.side_range.1);
        let base = insertion(gb, spec.n_particles, side, rng);
        let t = rng.gen_range(spec.temperature_range.0..spec.temperature_range.1);
        let mut state = thermal_state(&base, 1.0, semi_axes, t, rng);
        let (_, mut f, mut tq) = gb_field(gb, &base);
        let target = 3.0 * spec.n_particles as f64 * t;
        let mut ok = true;
        for step in 1..=spec.md_steps {
            match state.step(0.002, &f, &tq, &mut field) {
                Ok((_, f2, t2)) => (f, tq) = (f2, t2),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
            if step % RESCALE_EVERY == 0 {
                let scale = (target / state.kinetic()).sqrt();
                if !scale.is_finite() {
                    ok = false;
                    break;
                }
                state
                    .velocities
                    .iter_mut()
                    .flatten()
                    .for_each(|v| *v *= scale);
                state.momenta.iter_mut().flatten().for_each(|p| *p *= scale);
            }
        }
        if !ok {
            continue;
        }
        let p = particles(&state.positions, &state.quaternions);
        let (energy, forces, torques) = gb_field(gb, &p);
        let worst = forces.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        if !(energy.is_finite() && worst <= spec.max_force) {
            continue;
        }
        out.push(Sample {
            particles: p,
            energy,
            forces,
            torques,
            origin: "thermal_md",
            side,
        });
    }
    out
}

/// Particles from positions and quaternions.
pub fn particles(x: &[[f64; 3]], q: &[[f64; 4]]) -> Vec<Particle> {
    x.iter()
        .zip(q)
        .map(|(&position, &quaternion)| Particle {
            position,
            quaternion,
        })
        .collect()
}

/// `spec.n_structures` seeded structures, cycling insertion / thermal / perturbed.
fn mixed_samples(
    gb: &GayBerne,
    spec: &DataSpec,
    semi_axes: [f64; 3],
    rng: &mut ChaCha8Rng,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(spec.n_structures);
    while out.len() < spec.n_structures {
        let side = rng.gen_range(spec.side_range.0..spec.side_range.1);
        let base = insertion(gb, spec.n_particles, side, rng);
        let (origin, particles) = match out.len() % 3 {
            0 => ("insertion", base),
            1 => {
                // A short analytic-GB NVE run (dt 0.002, 100 to 400 steps) from a thermal
                // start.
                let t = rng.gen_range(spec.temperature_range.0..spec.temperature_range.1);
                let mut state = thermal_state(&base, 1.0, semi_axes, t, rng);
                let steps = rng.gen_range(100..400);
                let mut field = |x: &[[f64; 3]], q: &[[f64; 4]]| {
                    let p: Vec<Particle> = x
                        .iter()
                        .zip(q)
                        .map(|(&position, &quaternion)| Particle {
                            position,
                            quaternion,
                        })
                        .collect();
                    Ok(gb_field(gb, &p))
                };
                let (_, mut f, mut tq) = gb_field(gb, &base);
                let mut ok = true;
                for _ in 0..steps {
                    match state.step(0.002, &f, &tq, &mut field) {
                        Ok((_, f2, t2)) => {
                            f = f2;
                            tq = t2;
                        }
                        Err(_) => {
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok {
                    continue;
                }
                let p = state
                    .positions
                    .iter()
                    .zip(&state.quaternions)
                    .map(|(&position, &quaternion)| Particle {
                        position,
                        quaternion,
                    })
                    .collect();
                ("thermal", p)
            }
            _ => {
                let dx = rng.gen_range(0.0..spec.max_displacement);
                let dtheta = rng.gen_range(0.0..spec.max_rotation);
                let p = base
                    .iter()
                    .map(|p| {
                        let position = [0, 1, 2].map(|d| p.position[d] + dx * normal(rng));
                        let mut q = p.quaternion;
                        for axis in 0..3 {
                            q = anisoap_candle::differentiable_batch::rotate_lab(
                                q,
                                axis,
                                dtheta * normal(rng),
                            );
                        }
                        Particle {
                            position,
                            quaternion: q,
                        }
                    })
                    .collect();
                ("perturbed", p)
            }
        };
        let (energy, forces, torques) = gb_field(gb, &particles);
        let worst = forces.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        if !(energy.is_finite() && worst <= spec.max_force) {
            continue;
        }
        out.push(Sample {
            particles,
            energy,
            forces,
            torques,
            origin,
            side,
        });
    }
    out
}
