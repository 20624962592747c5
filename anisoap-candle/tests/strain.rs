//! The strain derivative (stress / virial) of the differentiable descriptor against central
//! finite differences of the reference backend's features, on a periodic triclinic system.

mod common;

use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use anisoap_candle::hypers::MaxRadial;
use anisoap_candle::{Frame, Hypers, Quantity};
use candle_core::{DType, Device, Var};
use common::fd::{
    cutoff_margin, gradient, liquid, reference_features, triclinic, weighted_loss, weighted_sum,
    weights,
};

const FD_STEP: f64 = 1e-5;

/// Autograd of `L = Σ w·X` with respect to a homogeneous strain `ε` at `ε = 0`
/// (`DifferentiableDescriptor::density_with_strain`), row-major `[3, 3]`.
fn strain_autograd(hypers: &Hypers, frame: &Frame, w: &[f64]) -> Vec<f64> {
    let device = Device::Cpu;
    let descriptor = DifferentiableDescriptor::new(hypers, &device, DType::F64).unwrap();
    let inputs = FrameTensors::from_frame(frame, "c_q", &device, DType::F64).unwrap();
    let strain = Var::zeros((3, 3), DType::F64, &device).unwrap();
    let neighbors = descriptor
        .neighbors(
            &inputs.positions,
            &inputs.types,
            &inputs.cell,
            inputs.pbc,
            &SpeciesLayout::FromPairs,
        )
        .unwrap();
    let density = descriptor
        .density_with_strain(
            &inputs.positions,
            &inputs.quaternions,
            &inputs.semi_axes,
            &neighbors,
            &strain,
        )
        .unwrap();
    let x = descriptor
        .power_spectrum_of_density(&density, &neighbors)
        .unwrap();
    let loss = weighted_loss(&x, w);
    let grads = loss.backward().unwrap();
    gradient(&grads, &strain)
}

/// The strain derivative (the virial, times the volume) of a periodic triclinic system against
/// central finite differences of the reference backend, straining positions and cell together
/// (`x → (I + h E_ab) x`, each cell vector likewise; the pair list is rebuilt each time).
#[test]
fn strain_derivative_matches_finite_differences_of_the_cell() {
    let mut hypers = Hypers::gto(4, 2.6, 0.7);
    hypers.max_radial = MaxRadial::Uniform(3);
    let frame = triclinic(liquid(14, 2, true, 0.3, 41));
    let margin = cutoff_margin(&frame, hypers.cutoff_radius);
    assert!(margin > 1e-3, "a pair lies {margin:e} from the cutoff");
    let reference = |f: &Frame| {
        reference_features(
            &hypers,
            std::slice::from_ref(f),
            Quantity::PowerSpectrumPerCenter,
        )
    };
    let expected = reference(&frame);
    let w = weights(expected.values.cols, 43);
    let ad = strain_autograd(&hypers, &frame, &w);
    let value = |f: &Frame| weighted_sum(&reference(f), &w);
    let strained = |a: usize, b: usize, h: f64| {
        let mut f = frame.clone();
        for p in &mut f.positions {
            p[a] += h * p[b];
        }
        for row in &mut f.cell {
            row[a] += h * row[b];
        }
        f
    };
    let mut fd = Vec::new();
    for a in 0..3 {
        for b in 0..3 {
            fd.push(
                (value(&strained(a, b, FD_STEP)) - value(&strained(a, b, -FD_STEP)))
                    / (2.0 * FD_STEP),
            );
        }
    }
    let scale = fd.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "strain derivative too small to test: {fd:?}");
    let worst = ad
        .iter()
        .zip(&fd)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    println!(
        "strain derivative: autograd {ad:?}\n  FD {fd:?}\n  worst {:.3e} relative",
        worst / scale
    );
    assert!(
        worst <= 1e-6 * scale,
        "strain derivative: autograd {ad:?} vs FD {fd:?} (worst {worst:e}, scale {scale:e})"
    );
}
