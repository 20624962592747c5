//! Finite-difference helpers shared by the gradient tests: the scalar `L = Σ w·X` of a
//! feature matrix, central differences of any scalar of a frame with respect to positions,
//! quaternions and semi-axes, and the frame edits the tests use (triclinic cells).

use anisoap_candle::neighbors::neighbor_list;
use anisoap_candle::{Features, Frame};
use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` weights drawn uniformly from (-1, 1) with a fixed seed.
pub fn weights(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

/// `L = Σ_i Σ_f w_f X_if` of a host feature matrix (`w` one weight per column).
pub fn weighted_sum(features: &Features, w: &[f64]) -> f64 {
    let v = &features.values;
    assert_eq!(v.cols, w.len(), "one weight per feature column");
    v.data
        .chunks(v.cols)
        .map(|row| row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>())
        .sum()
}

/// The gradient of `v` in `grads`, flattened to a host vector (panics when `v` has none).
pub fn gradient(grads: &candle_core::backprop::GradStore, v: &candle_core::Var) -> Vec<f64> {
    grads
        .get(v)
        .expect("a gradient")
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// `L = Σ w·X` as a graph node (`w` one weight per feature column).
pub fn weighted_loss(x: &Tensor, w: &[f64]) -> Tensor {
    let wt = Tensor::from_vec(w.to_vec(), (1, w.len()), x.device()).unwrap();
    x.broadcast_mul(&wt).unwrap().sum_all().unwrap()
}

/// Central differences (step `step`) of `value` with respect to every particle's position
/// components, quaternion components (`c_q`, unnormalised) and semi-axes (`c_diameter[k]`,
/// half the diameter), flattened per particle: `[positions, quaternions, semi-axes]`.
pub fn central_differences(
    frame: &Frame,
    step: f64,
    value: impl Fn(&Frame) -> f64,
) -> [Vec<f64>; 3] {
    let central = |edit: &dyn Fn(&mut Frame, f64)| {
        let (mut plus, mut minus) = (frame.clone(), frame.clone());
        edit(&mut plus, step);
        edit(&mut minus, -step);
        (value(&plus) - value(&minus)) / (2.0 * step)
    };
    let mut out: [Vec<f64>; 3] = Default::default();
    for i in 0..frame.len() {
        for d in 0..3 {
            out[0].push(central(&|f: &mut Frame, h| f.positions[i][d] += h));
        }
        for k in 0..4 {
            out[1].push(central(&|f: &mut Frame, h| {
                f.arrays.get_mut("c_q").unwrap().values[4 * i + k] += h
            }));
        }
        for k in 0..3 {
            let name = format!("c_diameter[{}]", k + 1);
            // Semi-axis a = diameter / 2: a step h in a is 2h in the diameter.
            out[2].push(central(&|f: &mut Frame, h| {
                f.arrays.get_mut(&name).unwrap().values[i] += 2.0 * h
            }));
        }
    }
    out
}

/// Maps a cubic periodic frame onto a triclinic cell (same fractional coordinates).
pub fn triclinic(mut frame: Frame) -> Frame {
    let side = frame.cell[0][0];
    let cell = [
        [side, 0.0, 0.0],
        [0.35 * side, 0.9 * side, 0.0],
        [-0.2 * side, 0.3 * side, 1.1 * side],
    ];
    for p in &mut frame.positions {
        let s = [p[0] / side, p[1] / side, p[2] / side];
        *p = [0, 1, 2].map(|d| (0..3).map(|k| s[k] * cell[k][d]).sum());
    }
    frame.cell = cell;
    frame
}

/// Smallest `| |r_ij| - r_c |` over all pairs found with a slightly larger cutoff.
pub fn cutoff_margin(frame: &Frame, cutoff: f64) -> f64 {
    let (cell, pbc) = if frame.is_periodic() {
        (frame.cell, frame.pbc)
    } else {
        ([[0.0; 3]; 3], [false; 3])
    };
    let list = neighbor_list(&frame.positions, &cell, pbc, cutoff + 0.01, false).unwrap();
    list.vectors
        .iter()
        .map(|r| ((r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt() - cutoff).abs())
        .fold(f64::INFINITY, f64::min)
}

/// One frame of the synthetic Gay-Berne-like liquid.
pub fn liquid(n: usize, species: usize, periodic: bool, density: f64, seed: u64) -> Frame {
    use anisoap_candle::synthetic::{generate_frame, SyntheticSpec, SystemKind};
    generate_frame(
        &SyntheticSpec {
            kind: SystemKind::EllipsoidLiquid,
            n_particles: n,
            n_species: species,
            periodic,
            density,
            seed,
        },
        0,
    )
}

/// The reference backend's `quantity` of `frames` (the oracle of the gradient tests).
pub fn reference_features(
    hypers: &anisoap_candle::Hypers,
    frames: &[Frame],
    quantity: anisoap_candle::Quantity,
) -> Features {
    use anisoap_candle::{Backend, Calculator};
    Calculator::new(hypers, Backend::Reference)
        .unwrap()
        .compute(frames, quantity, &mut |_, _| {})
        .unwrap()
}

/// Gives every quaternion a non-unit norm (only the direction matters, the gradient must
/// know it).
pub fn scale_quaternions(mut frame: Frame) -> Frame {
    let q = frame.arrays.get_mut("c_q").unwrap();
    for (k, v) in q.values.iter_mut().enumerate() {
        *v *= 0.7 + 0.1 * ((k / 4) % 5) as f64;
    }
    frame
}

/// `L = Σ w·X` of the differentiable descriptor's per-centre power spectrum (CPU, f64, the
/// pair-type layout) and its autograd gradients: `(L, [positions, quaternions, semi-axes]
/// flattened, the feature rows)`.
pub fn power_spectrum_autograd(
    hypers: &anisoap_candle::Hypers,
    frame: &Frame,
    w: &[f64],
) -> (f64, [Vec<f64>; 3], Vec<Vec<f64>>) {
    use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
    use candle_core::{DType, Device, Var};
    let device = Device::Cpu;
    let descriptor = DifferentiableDescriptor::new(hypers, &device, DType::F64).unwrap();
    let inputs = FrameTensors::from_frame(frame, "c_q", &device, DType::F64).unwrap();
    let positions = Var::from_tensor(&inputs.positions).unwrap();
    let quaternions = Var::from_tensor(&inputs.quaternions).unwrap();
    let axes = Var::from_tensor(&inputs.semi_axes).unwrap();
    let neighbors = descriptor
        .neighbors(
            &positions,
            &inputs.types,
            &inputs.cell,
            inputs.pbc,
            &SpeciesLayout::FromPairs,
        )
        .unwrap();
    let x = descriptor
        .power_spectrum(&positions, &quaternions, &axes, &neighbors)
        .unwrap();
    let rows = x.to_vec2::<f64>().unwrap();
    let loss = weighted_loss(&x, w);
    let grads = loss.backward().unwrap();
    let flat = |v: &Var| gradient(&grads, v);
    (
        loss.to_scalar::<f64>().unwrap(),
        [flat(&positions), flat(&quaternions), flat(&axes)],
        rows,
    )
}
