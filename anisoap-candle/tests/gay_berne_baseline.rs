//! The Gay-Berne example's pair baseline: forces and torques against finite differences of
//! its energy, and the least-squares fit recovering known coefficients.

#[path = "../examples/gay_berne/baseline.rs"]
mod baseline;
#[path = "../examples/gay_berne/data.rs"]
mod data;
#[path = "../examples/gay_berne/potential.rs"]
mod potential;
#[path = "../examples/gay_berne/rigid.rs"]
mod rigid;

use anisoap_candle::differentiable_batch::rotate_lab;
use baseline::{Kind, PairBaseline, Radial};
use data::Sample;
use potential::{GayBerne, Particle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// An anisotropic baseline on the shape-shifted distance with seeded random coefficients.
fn random_baseline(rng: &mut ChaCha8Rng) -> PairBaseline {
    let mut radial = Radial::parse_list("g0.8:3.2:0.4").unwrap();
    radial.push(Radial::Power(6));
    let mut b = PairBaseline::zero(Kind::Angular(4), &radial, 4.0, 1.0);
    b.shape = Some([0.5, 1.5]);
    for c in b.coefficients.iter_mut() {
        *c = rng.gen_range(-1.0..1.0);
    }
    b.offset = 0.3;
    b
}

fn clusters(rng: &mut ChaCha8Rng, count: usize) -> Vec<Vec<Particle>> {
    let gb = GayBerne::standard();
    (0..count)
        .map(|_| data::insertion(&gb, 6, 3.4, rng))
        .collect()
}

#[test]
fn invariants_of_degree_four_are_the_eight_head_tail_and_swap_symmetric_monomials() {
    // 1, a² + b², c², abc, a⁴ + b⁴, a²b², (a² + b²) c², c⁴.
    let expected = [
        [0, 0, 0],
        [0, 2, 0],
        [0, 0, 2],
        [1, 1, 1],
        [0, 4, 0],
        [2, 2, 0],
        [0, 2, 2],
        [0, 0, 4],
    ];
    assert_eq!(baseline::monomials(4), expected);
}

#[test]
fn baseline_forces_and_torques_equal_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let b = random_baseline(&mut rng);
    let p = &clusters(&mut rng, 1)[0];
    let (_, forces, torques) = b.field(p);
    let scale = forces
        .iter()
        .chain(&torques)
        .flatten()
        .fold(0.0f64, |a, v| a.max(v.abs()));
    assert!(scale > 1e-2, "{scale}");
    let h = 1e-6;
    for i in 0..p.len() {
        for c in 0..3 {
            let (mut a, mut m) = (p.clone(), p.clone());
            a[i].position[c] += h;
            m[i].position[c] -= h;
            let fd = -(b.field(&a).0 - b.field(&m).0) / (2.0 * h);
            assert!(
                (fd - forces[i][c]).abs() < 1e-6 * scale,
                "force {i} {c}: FD {fd} vs {}",
                forces[i][c]
            );
            let (mut a, mut m) = (p.clone(), p.clone());
            a[i].quaternion = rotate_lab(p[i].quaternion, c, h);
            m[i].quaternion = rotate_lab(p[i].quaternion, c, -h);
            let fd = -(b.field(&a).0 - b.field(&m).0) / (2.0 * h);
            assert!(
                (fd - torques[i][c]).abs() < 1e-6 * scale,
                "torque {i} {c}: FD {fd} vs {}",
                torques[i][c]
            );
        }
    }
}

#[test]
fn least_squares_fit_recovers_the_coefficients_of_a_baseline() {
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let truth = random_baseline(&mut rng);
    let samples: Vec<Sample> = clusters(&mut rng, 40)
        .into_iter()
        .map(|particles| {
            let (energy, forces, torques) = truth.field(&particles);
            Sample {
                particles,
                energy,
                forces,
                torques,
                origin: "synthetic",
                side: 3.4,
            }
        })
        .collect();
    let set: Vec<&Sample> = samples.iter().collect();
    let mut fitted = PairBaseline::zero(truth.kind, &truth.radial, 4.0, 1.0);
    fitted.shape = truth.shape;
    fitted.fit(&set, [1.0, 10.0, 2.0], [1.0, 1.0, 1.0]);
    let worst = truth
        .coefficients
        .iter()
        .zip(&fitted.coefficients)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    // Coefficients of O(1); the 1e-10 ridge and the overlap of neighbouring Gaussians leave
    // ~2e-5 (and ~4e-6 in the forces and torques).
    assert!(worst < 1e-3, "largest coefficient error {worst}");
    assert!((fitted.offset - 0.3).abs() < 1e-6, "{}", fitted.offset);
    for s in &set {
        let (e, f, t) = fitted.field(&s.particles);
        assert!(
            (e - s.energy).abs() < 1e-4 * s.energy.abs().max(1.0),
            "{e} {}",
            s.energy
        );
        let pairs = f
            .iter()
            .chain(&t)
            .flatten()
            .zip(s.forces.iter().chain(&s.torques).flatten());
        for (a, b) in pairs {
            assert!((a - b).abs() < 1e-4 * b.abs().max(1.0), "{a} {b}");
        }
    }
}
