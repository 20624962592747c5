//! Physical invariances of the power spectrum: rigid rotation (positions and orientations),
//! translation and permutation of particles.

use anisoap_candle::synthetic::{generate, SyntheticSpec, SystemKind};
use anisoap_candle::{Backend, BatchedOptions, Calculator, Frame, Hypers, Matrix};

fn spectrum(hypers: &Hypers, frames: &[Frame]) -> Matrix {
    Calculator::new(hypers, Backend::Batched(BatchedOptions::cpu_f64()))
        .unwrap()
        .power_spectrum(frames)
        .unwrap()
}

fn open_frames(species: usize) -> Vec<Frame> {
    let mut spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 14);
    spec.periodic = false;
    spec.n_species = species;
    spec.seed = 42;
    generate(&spec, 1)
}

fn assert_same(label: &str, a: &Matrix, b: &Matrix) {
    assert_eq!(
        (a.rows, a.cols, a.data.len()),
        (b.rows, b.cols, b.data.len()),
        "{label}: shapes differ"
    );
    let scale = a.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.0);
    for (k, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
        assert!(
            (x - y).abs() <= 1e-12 * scale,
            "{label}: feature {k}: {x} vs {y}"
        );
    }
}

/// Hamilton product p ⊗ q of (w, x, y, z) quaternions.
fn quat_mul(p: [f64; 4], q: [f64; 4]) -> [f64; 4] {
    [
        p[0] * q[0] - p[1] * q[1] - p[2] * q[2] - p[3] * q[3],
        p[0] * q[1] + p[1] * q[0] + p[2] * q[3] - p[3] * q[2],
        p[0] * q[2] - p[1] * q[3] + p[2] * q[0] + p[3] * q[1],
        p[0] * q[3] + p[1] * q[2] - p[2] * q[1] + p[3] * q[0],
    ]
}

#[test]
fn rigid_rotation_of_positions_and_orientations() {
    let hypers = Hypers::gto(5, 4.0, 1.1);
    for species in [1, 3] {
        let frames = open_frames(species);
        let g = [0.3f64, -0.5, 0.7, 0.4];
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let g = g.map(|v| v / norm);
        let r = anisoap_candle::rotation::quaternion_to_matrix(g).unwrap();
        let mut rotated = frames.clone();
        for frame in &mut rotated {
            for p in &mut frame.positions {
                let v = *p;
                *p = [0, 1, 2].map(|i| r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2]);
            }
            let q = frame.arrays.get_mut("c_q").unwrap();
            for i in 0..q.values.len() / 4 {
                let old = [
                    q.values[4 * i],
                    q.values[4 * i + 1],
                    q.values[4 * i + 2],
                    q.values[4 * i + 3],
                ];
                q.values[4 * i..4 * i + 4].copy_from_slice(&quat_mul(g, old));
            }
        }
        assert_same(
            "rotation",
            &spectrum(&hypers, &frames),
            &spectrum(&hypers, &rotated),
        );
    }
}

#[test]
fn translation_and_periodic_wrapping() {
    let hypers = Hypers::gto(4, 4.0, 1.2);
    let mut spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 16);
    spec.n_species = 2;
    spec.seed = 9;
    let frames = generate(&spec, 1);
    let mut moved = frames.clone();
    for p in &mut moved[0].positions {
        // Shift by an arbitrary vector plus whole cell vectors: wrapping must not matter.
        for k in 0..3 {
            p[k] += [1.37, -2.11, 0.52][k] + 2.0 * frames[0].cell[k][k];
        }
    }
    assert_same(
        "translation",
        &spectrum(&hypers, &frames),
        &spectrum(&hypers, &moved),
    );
}

#[test]
fn permutation_of_particles() {
    let hypers = Hypers::gto(4, 4.0, 1.2);
    let frames = open_frames(2);
    let n = frames[0].len();
    let order: Vec<usize> = (0..n).map(|i| (i * 5 + 3) % n).collect();
    let mut permuted = frames.clone();
    let f = &mut permuted[0];
    f.positions = order.iter().map(|&i| frames[0].positions[i]).collect();
    f.numbers = order.iter().map(|&i| frames[0].numbers[i]).collect();
    for (name, array) in &mut f.arrays {
        let src = &frames[0].arrays[name];
        array.values = order.iter().flat_map(|&i| src.row(i).to_vec()).collect();
    }
    assert_same(
        "permutation",
        &spectrum(&hypers, &frames),
        &spectrum(&hypers, &permuted),
    );
}
