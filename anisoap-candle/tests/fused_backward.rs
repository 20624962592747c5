//! The fused CPU kernel's analytic backward (`fused_density/backward.rs`), as the
//! differentiable descriptor uses it on the CPU, against the tensor-op autograd (the oracle)
//! and against central finite differences of the fused forward.
//!
//! Scalar: `L = Σ_i Σ_f w_f X_if` over the per-centre power spectrum `X` with seeded random
//! weights (and, for the strain, the same of the strained frame). Gradients checked: positions,
//! quaternions (not unit length), semi-axes and the strain `ε` (virial). Metric: `max |a − b| /
//! max |b|` per gradient; fused vs tensor ops ≤ `ORACLE_TOLERANCE` (f64), fused vs finite
//! differences (step `1e-5`, the pair list held fixed) ≤ `FD_TOLERANCE`. Every gradient must be
//! non-trivial (its largest entry ≥ `GRADIENT_FLOOR` · `Σ |w_f X_if|`), so a zero gradient
//! cannot pass, and the two paths must really differ in kind (`uses_fused_kernel`). Systems:
//! GTO and monomial, step and smooth cutoff (with pairs inside the smoothing zone), periodic
//! cubic and triclinic, open, self pairs and `subtract_center_contribution`, 1–3 species.
//! Nothing is written.

// Index loops over components read most clearly here.
#![allow(clippy::needless_range_loop)]

mod common;

use anisoap_candle::cutoff::CutoffFunction;
use anisoap_candle::differentiable::{
    DifferentiableDescriptor, FrameTensors, SpeciesLayout, TensorNeighbors,
};
use anisoap_candle::hypers::MaxRadial;
use anisoap_candle::{Frame, Hypers};
use candle_core::{DType, Device, Tensor, Var};
use common::fd::{self, scale_quaternions, triclinic, weights};

const ORACLE_TOLERANCE: f64 = 1e-10;
const FD_STEP: f64 = 1e-5;
const FD_TOLERANCE: f64 = 1e-6;
const GRADIENT_FLOOR: f64 = 1e-4;

/// A liquid frame with non-unit quaternions (only their direction matters, the gradient
/// must know it).
fn liquid(n: usize, species: usize, periodic: bool, density: f64, seed: u64) -> Frame {
    scale_quaternions(fd::liquid(n, species, periodic, density, seed))
}

/// One evaluation's value, scale `Σ |w X|` and gradients: positions, quaternions, semi-axes,
/// strain (flattened).
struct Evaluation {
    loss: f64,
    scale: f64,
    grads: [Vec<f64>; 4],
}

struct Case {
    name: &'static str,
    hypers: Hypers,
    frame: Frame,
}

impl Case {
    fn descriptor(&self, fused: bool) -> DifferentiableDescriptor {
        let d = DifferentiableDescriptor::new(&self.hypers, &Device::Cpu, DType::F64)
            .unwrap()
            .with_fused_kernel(fused);
        assert_eq!(d.uses_fused_kernel(), fused, "{}", self.name);
        d
    }

    fn inputs(&self) -> FrameTensors {
        FrameTensors::from_frame(&self.frame, "c_q", &Device::Cpu, DType::F64).unwrap()
    }

    fn neighbors(&self, d: &DifferentiableDescriptor, inputs: &FrameTensors) -> TensorNeighbors {
        d.neighbors(
            &inputs.positions,
            &inputs.types,
            &inputs.cell,
            inputs.pbc,
            &SpeciesLayout::FromPairs,
        )
        .unwrap()
    }

    /// `L` of the strained frame at the given inputs, with a fixed pair list.
    fn loss(
        &self,
        d: &DifferentiableDescriptor,
        neighbors: &TensorNeighbors,
        inputs: [&Tensor; 4],
        w: &[f64],
    ) -> (Tensor, f64) {
        let [positions, quaternions, axes, strain] = inputs;
        let density = d
            .density_with_strain(positions, quaternions, axes, neighbors, strain)
            .unwrap();
        let x = d.power_spectrum_of_density(&density, neighbors).unwrap();
        let wt = Tensor::from_vec(w.to_vec(), (1, w.len()), &Device::Cpu).unwrap();
        let wx = x.broadcast_mul(&wt).unwrap();
        let scale = wx
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        (wx.sum_all().unwrap(), scale)
    }

    fn evaluate(&self, fused: bool, w_seed: u64) -> Evaluation {
        let d = self.descriptor(fused);
        let inputs = self.inputs();
        let neighbors = self.neighbors(&d, &inputs);
        let positions = Var::from_tensor(&inputs.positions).unwrap();
        let quaternions = Var::from_tensor(&inputs.quaternions).unwrap();
        let axes = Var::from_tensor(&inputs.semi_axes).unwrap();
        let strain = Var::zeros((3, 3), DType::F64, &Device::Cpu).unwrap();
        let n_features = d
            .power_spectrum(&positions, &quaternions, &axes, &neighbors)
            .unwrap()
            .dim(1)
            .unwrap();
        let w = weights(n_features, w_seed);
        let (loss, scale) = self.loss(
            &d,
            &neighbors,
            [&positions, &quaternions, &axes, &strain],
            &w,
        );
        let grads = loss.backward().unwrap();
        let flat = |v: &Var| fd::gradient(&grads, v);
        Evaluation {
            loss: loss.to_scalar().unwrap(),
            scale,
            grads: [
                flat(&positions),
                flat(&quaternions),
                flat(&axes),
                flat(&strain),
            ],
        }
    }

    /// Central differences of the fused forward's `L` (pair list of the unperturbed frame).
    fn finite_differences(&self, w_seed: u64) -> [Vec<f64>; 4] {
        let d = self.descriptor(true);
        let inputs = self.inputs();
        let neighbors = self.neighbors(&d, &inputs);
        let zero = Tensor::zeros((3, 3), DType::F64, &Device::Cpu).unwrap();
        let base = [
            inputs.positions.clone(),
            inputs.quaternions.clone(),
            inputs.semi_axes.clone(),
            zero,
        ];
        let n_features = d
            .power_spectrum(&base[0], &base[1], &base[2], &neighbors)
            .unwrap()
            .dim(1)
            .unwrap();
        let w = weights(n_features, w_seed);
        let value = |which: usize, k: usize, delta: f64| -> f64 {
            let mut args = base.clone();
            let shape = args[which].shape().clone();
            let mut flat: Vec<f64> = args[which].flatten_all().unwrap().to_vec1().unwrap();
            flat[k] += delta;
            args[which] = Tensor::from_vec(flat, shape, &Device::Cpu).unwrap();
            let (loss, _) = self.loss(&d, &neighbors, [&args[0], &args[1], &args[2], &args[3]], &w);
            loss.to_scalar().unwrap()
        };
        [0, 1, 2, 3].map(|which| {
            (0..base[which].elem_count())
                .map(|k| (value(which, k, FD_STEP) - value(which, k, -FD_STEP)) / (2.0 * FD_STEP))
                .collect()
        })
    }
}

/// `max |a − b| / max |b|`.
fn relative(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    (worst / scale, scale)
}

const NAMES: [&str; 4] = ["positions", "quaternions", "semi_axes", "strain"];

fn smooth(mut hypers: Hypers, width: f64) -> Hypers {
    hypers.cutoff_function = CutoffFunction::ShiftedCosine { width };
    hypers
}

fn cases() -> Vec<Case> {
    let mut subtract = Hypers::gto(4, 3.5, 0.9);
    subtract.subtract_center_contribution = true;
    let mut mono = Hypers::monomial(3, 3.0);
    mono.max_radial = MaxRadial::Uniform(2);
    let mut gto_radial = Hypers::gto(5, 3.5, 1.1);
    gto_radial.max_radial = MaxRadial::Uniform(2);
    vec![
        Case {
            name: "gto lmax 4, periodic cubic, 2 species",
            hypers: Hypers::gto(4, 3.5, 1.0),
            frame: liquid(14, 2, true, 0.12, 11),
        },
        Case {
            name: "gto lmax 5 max_radial 2, triclinic, 3 species",
            hypers: gto_radial,
            frame: triclinic(liquid(12, 3, true, 0.1, 12)),
        },
        Case {
            name: "gto lmax 4, subtract centre, open",
            hypers: subtract,
            frame: liquid(10, 1, false, 0.15, 13),
        },
        Case {
            name: "monomial lmax 3 max_radial 2, periodic",
            hypers: mono.clone(),
            frame: liquid(10, 2, true, 0.12, 14),
        },
        Case {
            name: "gto lmax 4, smooth cutoff 1.5, periodic",
            hypers: smooth(Hypers::gto(4, 3.5, 1.0), 1.5),
            frame: liquid(14, 2, true, 0.12, 15),
        },
        Case {
            name: "monomial lmax 3, smooth cutoff 1.0, triclinic",
            hypers: smooth(mono, 1.0),
            frame: triclinic(liquid(10, 1, true, 0.12, 16)),
        },
    ]
}

/// The smooth-cutoff cases really have pairs inside the smoothing zone, and no case has a
/// pair so close to the cutoff that a finite-difference step could move it across.
fn check_case_geometry(case: &Case) {
    let d = case.descriptor(true);
    let inputs = case.inputs();
    let neighbors = case.neighbors(&d, &inputs);
    let r = d
        .pair_vectors(&inputs.positions, &neighbors)
        .unwrap()
        .to_vec2::<f64>()
        .unwrap();
    let rc = case.hypers.cutoff_radius;
    let distances: Vec<f64> = r
        .iter()
        .map(|v| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt())
        .collect();
    let margin = distances
        .iter()
        .map(|d| (d - rc).abs())
        .fold(f64::INFINITY, f64::min);
    assert!(
        margin > 1e-3,
        "{}: a pair {margin:e} from the cutoff",
        case.name
    );
    if let CutoffFunction::ShiftedCosine { width } = case.hypers.cutoff_function {
        let in_zone = distances.iter().filter(|&&d| d > rc - width).count();
        assert!(in_zone >= 10, "{}: {in_zone} pairs in the zone", case.name);
    }
}

#[test]
fn fused_backward_equals_tensor_op_autograd() {
    for (c, case) in cases().iter().enumerate() {
        check_case_geometry(case);
        let seed = 100 + c as u64;
        let fused = case.evaluate(true, seed);
        let tensor = case.evaluate(false, seed);
        let loss_err = (fused.loss - tensor.loss).abs() / tensor.scale;
        assert!(loss_err < 1e-12, "{}: loss {loss_err:e}", case.name);
        for (k, name) in NAMES.iter().enumerate() {
            let (err, scale) = relative(&fused.grads[k], &tensor.grads[k]);
            println!("{}: {name} fused vs tensor ops {err:.2e}", case.name);
            assert!(
                scale >= GRADIENT_FLOOR * tensor.scale,
                "{}: {name} gradient is trivial ({scale:e} of {:e})",
                case.name,
                tensor.scale
            );
            assert!(
                err <= ORACLE_TOLERANCE,
                "{}: {name} fused vs tensor ops {err:e}",
                case.name
            );
        }
    }
}

#[test]
fn fused_backward_matches_finite_differences() {
    for (c, case) in cases().iter().enumerate() {
        check_case_geometry(case);
        let seed = 200 + c as u64;
        let fused = case.evaluate(true, seed);
        let fd = case.finite_differences(seed);
        for (k, name) in NAMES.iter().enumerate() {
            let (err, scale) = relative(&fused.grads[k], &fd[k]);
            println!(
                "{}: {name} fused vs finite differences {err:.2e}",
                case.name
            );
            assert!(
                scale >= GRADIENT_FLOOR * fused.scale,
                "{}: {name} trivial",
                case.name
            );
            assert!(err <= FD_TOLERANCE, "{}: {name} vs FD {err:e}", case.name);
        }
    }
}

/// f32: the fused backward follows the f32 tensor-op autograd to single-precision accuracy.
#[test]
fn fused_backward_f32_follows_the_oracle() {
    let case = &cases()[0];
    let grads = |fused: bool| -> Vec<f64> {
        let d = DifferentiableDescriptor::new(&case.hypers, &Device::Cpu, DType::F32)
            .unwrap()
            .with_fused_kernel(fused);
        let inputs =
            FrameTensors::from_frame(&case.frame, "c_q", &Device::Cpu, DType::F32).unwrap();
        let neighbors = case.neighbors(&d, &inputs);
        let positions = Var::from_tensor(&inputs.positions).unwrap();
        let x = d
            .power_spectrum(
                &positions,
                &inputs.quaternions,
                &inputs.semi_axes,
                &neighbors,
            )
            .unwrap();
        let g = x.sum_all().unwrap().backward().unwrap();
        g.get(&positions)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let (err, scale) = relative(&grads(true), &grads(false));
    assert!(scale > 0.0);
    assert!(err < 1e-3, "f32 fused vs tensor ops {err:e}");
}

/// A neighbour whose `A'` is singular is refused by both paths with the calculator's message
/// (the fused path checks the precision rows it forms on the host).
#[test]
fn singular_dilation_is_refused_like_the_calculator() {
    use anisoap_candle::{Backend, Calculator, Quantity};
    let text = "2\nLattice=\"6 0 0 0 6 0 0 0 6\" Properties=species:S:1:pos:R:3:c_q:R:4:c_diameter[1]:R:1:c_diameter[2]:R:1:c_diameter[3]:R:1 pbc=\"T T T\"\nH 0.1 0.2 0.3 1 0 0 0 1 1 2\nC 1.5 0.2 0.3 0.5 0.5 0.5 0.5 1e5 1e5 1e5\n";
    let frames = anisoap_candle::xyz::read_xyz_str(text, std::path::Path::new("<test>")).unwrap();
    let hypers = Hypers::monomial(2, 3.0);
    let expected = Calculator::new(&hypers, Backend::Reference)
        .unwrap()
        .compute(&frames, Quantity::PowerSpectrumPerCenter, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(
        expected.contains("pair (centre 0, neighbour 1): The given dilation matrix is singular"),
        "{expected}"
    );
    let tail = |s: &str| s[s.find("pair (").unwrap()..].to_string();
    for fused in [true, false] {
        let descriptor = DifferentiableDescriptor::new(&hypers, &Device::Cpu, DType::F64)
            .unwrap()
            .with_fused_kernel(fused);
        let t = FrameTensors::from_frame(&frames[0], "c_q", &Device::Cpu, DType::F64).unwrap();
        let nl = descriptor
            .neighbors(
                &t.positions,
                &t.types,
                &t.cell,
                t.pbc,
                &SpeciesLayout::FromPairs,
            )
            .unwrap();
        let got = descriptor
            .power_spectrum(&t.positions, &t.quaternions, &t.semi_axes, &nl)
            .unwrap_err()
            .to_string();
        assert_eq!(tail(&got), tail(&expected), "fused {fused}");
    }
}
