//! Seeded synthetic systems of ellipsoids, for tests, fixtures and benchmarks.
//!
//! Two kinds of system are available (see [`SystemKind`]):
//!
//! * [`SystemKind::EllipsoidLiquid`]: a Gay-Berne-like liquid of prolate ellipsoids (full
//!   diameters about `(1, 1, 3)`) at random positions in a cube;
//! * [`SystemKind::BenzeneLike`]: disc-like "molecules" (full diameters about `(3.5, 3.5, 1.2)`,
//!   Å-like units) on a jittered cubic lattice.
//!
//! Every frame carries the per-particle arrays the descriptor needs: `c_q` (unit quaternion,
//! order w, x, y, z, uniformly distributed over rotations) and `c_diameter[1]`, `c_diameter[2]`,
//! `c_diameter[3]` (full axis lengths; the Gaussian semi-axes are half of these).
//!
//! Determinism: the output depends only on the [`SyntheticSpec`] and the frame index. Each frame
//! uses two independent ChaCha8 streams derived from `seed`: one for the geometry (positions,
//! orientations, axes) and one for the species labels. The geometry therefore does **not**
//! depend on `n_species`: files written with 1, 2, 3 or 4 species from the same seed share
//! positions, orientations and axes, and differ only in their labels.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::frame::{Frame, PerParticle};

/// Atomic numbers used as species labels, in order: H, C, N, O.
///
/// A system with `n_species = s` uses the first `s` of them.
pub const SPECIES_NUMBERS: [i32; 4] = [1, 6, 7, 8];

/// Which kind of synthetic system to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemKind {
    /// Prolate ellipsoids (full diameters about `(1, 1, 3)`, ±5 % jitter per axis) at uniformly
    /// random positions in a cube, with uniformly random orientations. Positions may overlap.
    /// Reduced (Gay-Berne) units: a typical density is 0.3 particles per unit volume.
    EllipsoidLiquid,
    /// Disc-like rigid "molecules" (full diameters about `(3.5, 3.5, 1.2)`, ±2 % jitter) on a
    /// jittered simple-cubic lattice, with uniformly random orientations. Å-like units: a
    /// typical density is 0.02 per Å³, which gives about 30 neighbours within a 7 Å cutoff.
    BenzeneLike,
}

impl SystemKind {
    /// A sensible default density (particles per volume unit) for this kind:
    /// 0.3 for [`SystemKind::EllipsoidLiquid`], 0.02 for [`SystemKind::BenzeneLike`].
    pub fn default_density(self) -> f64 {
        match self {
            SystemKind::EllipsoidLiquid => 0.3,
            SystemKind::BenzeneLike => 0.02,
        }
    }

    /// Mean full diameters `(c_diameter[1], c_diameter[2], c_diameter[3])` of this kind,
    /// before the per-particle jitter.
    pub fn mean_diameters(self) -> [f64; 3] {
        match self {
            SystemKind::EllipsoidLiquid => [1.0, 1.0, 3.0],
            SystemKind::BenzeneLike => [3.5, 3.5, 1.2],
        }
    }

    /// Relative jitter of each diameter: every diameter is multiplied by a uniform factor in
    /// `[1 - j, 1 + j]`.
    pub fn diameter_jitter(self) -> f64 {
        match self {
            SystemKind::EllipsoidLiquid => 0.05,
            SystemKind::BenzeneLike => 0.02,
        }
    }
}

/// Everything that defines a synthetic system. Two equal specs give identical frames.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSpec {
    /// Kind of system (liquid of prolate ellipsoids or benzene-like discs).
    pub kind: SystemKind,
    /// Number of particles per frame (at least 1).
    pub n_particles: usize,
    /// Number of distinct species labels, 1 to 4 (H, C, N, O as atomic numbers 1, 6, 7, 8).
    /// When `n_particles >= n_species`, every species appears in every frame.
    pub n_species: usize,
    /// `true`: the frame has a cubic cell (`Lattice`) and `pbc = T T T`. `false`: no cell and
    /// no periodicity; the particles still lie in the same cube.
    pub periodic: bool,
    /// Number density, particles per volume unit (must be finite and positive). The cube's
    /// side is `(n_particles / density)^(1/3)`.
    pub density: f64,
    /// Seed of the random streams.
    pub seed: u64,
}

impl SyntheticSpec {
    /// A spec of the given kind and size with the defaults: one species, periodic, the kind's
    /// [`SystemKind::default_density`], seed 0.
    pub fn new(kind: SystemKind, n_particles: usize) -> Self {
        SyntheticSpec {
            kind,
            n_particles,
            n_species: 1,
            periodic: true,
            density: kind.default_density(),
            seed: 0,
        }
    }

    /// Checks the fields; the message says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.n_particles == 0 {
            return Err("the number of particles must be at least 1".into());
        }
        if !(1..=SPECIES_NUMBERS.len()).contains(&self.n_species) {
            return Err(format!(
                "the number of species must be between 1 and {}, got {}",
                SPECIES_NUMBERS.len(),
                self.n_species
            ));
        }
        if !(self.density.is_finite() && self.density > 0.0) {
            return Err(format!(
                "the density must be a finite positive number, got {}",
                self.density
            ));
        }
        Ok(())
    }

    /// Side of the cubic box, `(n_particles / density)^(1/3)`.
    pub fn box_side(&self) -> f64 {
        (self.n_particles as f64 / self.density).cbrt()
    }
}

/// Seeds the random stream `stream` of frame `frame_index`.
fn stream_rng(seed: u64, frame_index: usize, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((frame_index as u64).wrapping_mul(2).wrapping_add(stream));
    rng
}

/// A uniformly distributed random unit quaternion (w, x, y, z) (Shoemake's method), normalised
/// again so that its norm is 1 to rounding.
fn random_quaternion<R: Rng>(rng: &mut R) -> [f64; 4] {
    let u1: f64 = rng.gen();
    let u2: f64 = rng.gen();
    let u3: f64 = rng.gen();
    let tau = std::f64::consts::TAU;
    let a = (1.0 - u1).sqrt();
    let b = u1.sqrt();
    let q = [
        b * (tau * u3).cos(),
        a * (tau * u2).sin(),
        a * (tau * u2).cos(),
        b * (tau * u3).sin(),
    ];
    let norm = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    q.map(|v| v / norm)
}

/// Wraps `x` into `[0, side)`.
fn wrap(x: f64, side: f64) -> f64 {
    let w = x.rem_euclid(side);
    // rem_euclid can return `side` itself for tiny negative inputs.
    if w >= side {
        0.0
    } else {
        w
    }
}

/// Positions of the particles, inside `[0, side)^3`.
fn positions<R: Rng>(spec: &SyntheticSpec, side: f64, rng: &mut R) -> Vec<[f64; 3]> {
    let n = spec.n_particles;
    match spec.kind {
        SystemKind::EllipsoidLiquid => (0..n)
            .map(|_| {
                [
                    wrap(rng.gen::<f64>() * side, side),
                    wrap(rng.gen::<f64>() * side, side),
                    wrap(rng.gen::<f64>() * side, side),
                ]
            })
            .collect(),
        SystemKind::BenzeneLike => {
            // Smallest simple-cubic lattice with at least n sites; pick n sites at random.
            let mut m = (n as f64).cbrt().round().max(1.0) as usize;
            while m * m * m < n {
                m += 1;
            }
            let mut sites: Vec<usize> = (0..m * m * m).collect();
            sites.shuffle(rng);
            sites.truncate(n);
            sites.sort_unstable();
            let spacing = side / m as f64;
            let jitter = 0.15 * spacing;
            sites
                .into_iter()
                .map(|s| {
                    let idx = [s % m, (s / m) % m, s / (m * m)];
                    idx.map(|k| {
                        let d: f64 = rng.gen_range(-1.0..1.0);
                        wrap((k as f64 + 0.5) * spacing + jitter * d, side)
                    })
                })
                .collect()
        }
    }
}

/// Generates frame `frame_index` of the system described by `spec`.
///
/// The frame holds `spec.n_particles` particles with atomic numbers from [`SPECIES_NUMBERS`],
/// positions in `[0, L)^3` with `L = spec.box_side()`, and the arrays `c_q` (4 columns) and
/// `c_diameter[1]`, `c_diameter[2]`, `c_diameter[3]` (1 column each). When `spec.periodic`,
/// the cell is `L·I` and `pbc` is all true; otherwise the cell is zero and `pbc` all false.
///
/// # Panics
///
/// If [`SyntheticSpec::validate`] fails.
pub fn generate_frame(spec: &SyntheticSpec, frame_index: usize) -> Frame {
    if let Err(message) = spec.validate() {
        panic!("invalid synthetic spec: {message}");
    }
    let n = spec.n_particles;
    let side = spec.box_side();

    // Geometry stream: positions, then orientations, then axes. Independent of n_species.
    let mut geo = stream_rng(spec.seed, frame_index, 0);
    let positions = positions(spec, side, &mut geo);
    let mut quaternions = Vec::with_capacity(4 * n);
    for _ in 0..n {
        quaternions.extend_from_slice(&random_quaternion(&mut geo));
    }
    let mean = spec.kind.mean_diameters();
    let jitter = spec.kind.diameter_jitter();
    let mut diameters: [Vec<f64>; 3] = Default::default();
    for _ in 0..n {
        for (k, column) in diameters.iter_mut().enumerate() {
            let factor = 1.0 + jitter * geo.gen_range(-1.0..1.0);
            column.push(mean[k] * factor);
        }
    }

    // Label stream: every species at least once (when n >= n_species), then shuffled.
    let mut lab = stream_rng(spec.seed, frame_index, 1);
    let mut numbers: Vec<i32> = (0..n)
        .map(|i| SPECIES_NUMBERS[i % spec.n_species])
        .collect();
    numbers.shuffle(&mut lab);

    let mut frame = Frame {
        positions,
        numbers,
        ..Frame::default()
    };
    if spec.periodic {
        frame.cell = [[side, 0.0, 0.0], [0.0, side, 0.0], [0.0, 0.0, side]];
        frame.pbc = [true; 3];
    }
    frame.arrays.insert(
        "c_q".to_string(),
        PerParticle {
            ncols: 4,
            values: quaternions,
        },
    );
    for (k, column) in diameters.into_iter().enumerate() {
        frame.arrays.insert(
            format!("c_diameter[{}]", k + 1),
            PerParticle {
                ncols: 1,
                values: column,
            },
        );
    }
    frame
}

/// Generates frames `0..n_frames` of the system described by `spec` (see [`generate_frame`]).
///
/// # Panics
///
/// If [`SyntheticSpec::validate`] fails.
pub fn generate(spec: &SyntheticSpec, n_frames: usize) -> Vec<Frame> {
    (0..n_frames).map(|f| generate_frame(spec, f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<SyntheticSpec> {
        let mut out = Vec::new();
        for kind in [SystemKind::EllipsoidLiquid, SystemKind::BenzeneLike] {
            for periodic in [true, false] {
                for n in [1, 7, 64, 100] {
                    out.push(SyntheticSpec {
                        n_species: 1,
                        periodic,
                        seed: 42,
                        ..SyntheticSpec::new(kind, n)
                    });
                }
            }
        }
        out
    }

    #[test]
    fn deterministic() {
        for spec in specs() {
            assert_eq!(generate(&spec, 3), generate(&spec, 3));
            assert_eq!(generate(&spec, 3)[2], generate_frame(&spec, 2));
        }
    }

    #[test]
    fn seeds_and_frames_differ() {
        let spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 20);
        let other = SyntheticSpec {
            seed: 1,
            ..spec.clone()
        };
        assert_ne!(generate_frame(&spec, 0), generate_frame(&other, 0));
        assert_ne!(generate_frame(&spec, 0), generate_frame(&spec, 1));
    }

    #[test]
    fn geometry_independent_of_species() {
        for spec in specs() {
            let base = generate(&spec, 2);
            for s in 2..=4 {
                let other = generate(
                    &SyntheticSpec {
                        n_species: s,
                        ..spec.clone()
                    },
                    2,
                );
                for (a, b) in base.iter().zip(&other) {
                    assert_eq!(a.positions, b.positions);
                    assert_eq!(a.arrays, b.arrays);
                    assert_eq!(a.cell, b.cell);
                    assert_eq!(a.pbc, b.pbc);
                }
            }
        }
    }

    #[test]
    fn every_species_present() {
        for s in 1..=4 {
            let spec = SyntheticSpec {
                n_species: s,
                ..SyntheticSpec::new(SystemKind::BenzeneLike, 9)
            };
            for frame in generate(&spec, 5) {
                for t in &SPECIES_NUMBERS[..s] {
                    assert!(frame.numbers.contains(t));
                }
                assert!(frame
                    .numbers
                    .iter()
                    .all(|t| SPECIES_NUMBERS[..s].contains(t)));
            }
        }
    }

    #[test]
    fn quaternions_unit_and_shapes() {
        for spec in specs() {
            for frame in generate(&spec, 2) {
                let n = frame.len();
                assert_eq!(n, spec.n_particles);
                assert_eq!(frame.numbers.len(), n);
                let q = &frame.arrays["c_q"];
                assert_eq!(q.ncols, 4);
                assert_eq!(q.values.len(), 4 * n);
                for i in 0..n {
                    let norm: f64 = q.row(i).iter().map(|v| v * v).sum::<f64>().sqrt();
                    assert!((norm - 1.0).abs() < 1e-14, "norm {norm}");
                }
                let mean = spec.kind.mean_diameters();
                let j = spec.kind.diameter_jitter();
                for (k, &m) in mean.iter().enumerate() {
                    let d = &frame.arrays[&format!("c_diameter[{}]", k + 1)];
                    assert_eq!(d.ncols, 1);
                    assert_eq!(d.values.len(), n);
                    for &v in &d.values {
                        assert!(v >= m * (1.0 - j) && v <= m * (1.0 + j));
                    }
                }
            }
        }
    }

    #[test]
    fn quaternions_roughly_uniform() {
        // Mean of each component ~0 and of each squared component ~1/4.
        let spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 4000);
        let frame = generate_frame(&spec, 0);
        let q = &frame.arrays["c_q"];
        for c in 0..4 {
            let mean: f64 = (0..4000).map(|i| q.row(i)[c]).sum::<f64>() / 4000.0;
            let sq: f64 = (0..4000).map(|i| q.row(i)[c].powi(2)).sum::<f64>() / 4000.0;
            assert!(mean.abs() < 0.05, "component {c} mean {mean}");
            assert!((sq - 0.25).abs() < 0.03, "component {c} mean square {sq}");
        }
    }

    #[test]
    fn positions_inside_box_and_cell() {
        for spec in specs() {
            let side = spec.box_side();
            for frame in generate(&spec, 2) {
                for p in &frame.positions {
                    for &x in p {
                        assert!((0.0..side).contains(&x), "{x} outside [0, {side})");
                    }
                }
                if spec.periodic {
                    assert_eq!(frame.pbc, [true; 3]);
                    assert_eq!(frame.cell[0][0], side);
                    assert_eq!(frame.cell[1][1], side);
                    assert_eq!(frame.cell[2][2], side);
                    assert_eq!(frame.cell[0][1], 0.0);
                } else {
                    assert_eq!(frame.pbc, [false; 3]);
                    assert_eq!(frame.cell, [[0.0; 3]; 3]);
                }
            }
        }
    }

    #[test]
    fn box_side_matches_density() {
        let spec = SyntheticSpec {
            density: 0.02,
            ..SyntheticSpec::new(SystemKind::BenzeneLike, 160)
        };
        assert!((spec.box_side().powi(3) - 8000.0).abs() < 1e-9);
    }

    #[test]
    fn benzene_sites_distinct() {
        // Lattice sites are distinct and the jitter (±15 % of the spacing) keeps particles apart.
        let spec = SyntheticSpec::new(SystemKind::BenzeneLike, 27);
        let frame = generate_frame(&spec, 0);
        let spacing = spec.box_side() / 3.0;
        for i in 0..27 {
            for j in 0..i {
                let d2: f64 = (0..3)
                    .map(|k| {
                        let mut d = frame.positions[i][k] - frame.positions[j][k];
                        let side = spec.box_side();
                        d -= side * (d / side).round();
                        d * d
                    })
                    .sum();
                assert!(d2.sqrt() > 0.69 * spacing);
            }
        }
    }

    #[test]
    fn xyz_round_trip() {
        // The generated frames survive the crate's extended-XYZ writer and reader unchanged.
        for spec in specs().into_iter().filter(|s| s.n_particles == 7) {
            let frames = generate(
                &SyntheticSpec {
                    n_species: 3,
                    ..spec.clone()
                },
                2,
            );
            let path = std::env::temp_dir().join(format!(
                "anisoap-synthetic-{}-{:?}-{}.xyz",
                std::process::id(),
                spec.kind,
                spec.periodic
            ));
            let mut bytes = Vec::new();
            crate::xyz::write_xyz(&mut bytes, &frames).unwrap();
            std::fs::write(&path, &bytes).unwrap();
            let back = crate::xyz::read_xyz_file(&path).unwrap();
            std::fs::remove_file(&path).ok();
            assert_eq!(back.len(), frames.len());
            for (a, b) in frames.iter().zip(&back) {
                assert_eq!(a.positions, b.positions);
                assert_eq!(a.numbers, b.numbers);
                assert_eq!(a.cell, b.cell);
                assert_eq!(a.pbc, b.pbc);
                assert_eq!(a.arrays, b.arrays);
            }
        }
    }

    #[test]
    fn validate_rejects_bad_specs() {
        let good = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 10);
        assert!(good.validate().is_ok());
        assert!(SyntheticSpec {
            n_species: 0,
            ..good.clone()
        }
        .validate()
        .is_err());
        assert!(SyntheticSpec {
            n_species: 5,
            ..good.clone()
        }
        .validate()
        .is_err());
        assert!(SyntheticSpec {
            n_particles: 0,
            ..good.clone()
        }
        .validate()
        .is_err());
        assert!(SyntheticSpec {
            density: 0.0,
            ..good.clone()
        }
        .validate()
        .is_err());
        assert!(SyntheticSpec {
            density: f64::NAN,
            ..good
        }
        .validate()
        .is_err());
    }
}
