//! The fused CUDA kernels (`fused_cuda`) against the tensor-op path (the oracle) and the
//! reference backend, on a GPU. Without the `cuda` feature or without a usable device every test
//! prints `SKIPPED: <reason>` and passes (CI has no GPU; scripts/gpu-suite.sh runs these on one).

mod common;

use anisoap_candle::basis::Basis;
use anisoap_candle::batched::BatchedBasis;
use anisoap_candle::hypers::MaxRadial;
use anisoap_candle::synthetic::SystemKind;
use anisoap_candle::{Backend, BatchedOptions, Calculator, Features, Frame, Hypers, Quantity};
use candle_core::{DType, Device, Tensor};

fn options(device: &Device, dtype: DType, chunk_pairs: usize, fused: bool) -> BatchedOptions {
    BatchedOptions {
        device: device.clone(),
        dtype,
        chunk_pairs,
        fused_cpu_moments: fused,
        cuda_neighbor_search: true,
    }
}

/// `[shape]` f64 values, uniform in `[lo, hi)`, from a fixed-seed ChaCha stream.
fn uniform(seed: u64, lo: f64, hi: f64, shape: &[usize]) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Max over columns of `|a - b| / max_row |b[., c]|` for two `[P, K]` matrices.
fn column_error(a: &Tensor, b: &Tensor) -> f64 {
    let (p, k) = b.dims2().unwrap();
    assert_eq!(a.dims2().unwrap(), (p, k));
    let host = |t: &Tensor| {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    let (a, b) = (host(a), host(b));
    assert!(a.iter().all(|v| v.is_finite()), "non-finite fused output");
    let mut worst = 0.0f64;
    for c in 0..k {
        let scale = (0..p).map(|q| b[q * k + c].abs()).fold(0.0, f64::max);
        for q in 0..p {
            let d = (a[q * k + c] - b[q * k + c]).abs();
            worst = worst.max(if scale > 0.0 { d / scale } else { d });
        }
    }
    worst
}

fn hypers_cases() -> Vec<(&'static str, Hypers)> {
    let mut per_channel = Hypers::gto(3, 4.5, 1.1);
    per_channel.max_radial = MaxRadial::PerChannel(vec![2, 1, 1, 0]);
    let mut uniform_radial = Hypers::gto(4, 5.0, 1.2);
    uniform_radial.max_radial = MaxRadial::Uniform(3);
    vec![
        ("gto lmax 6", Hypers::gto(6, 5.0, 1.3)),
        ("gto lmax 8", Hypers::gto(8, 7.0, 1.5)),
        ("gto lmax 0", Hypers::gto(0, 4.0, 1.0)),
        ("monomial lmax 4", Hypers::monomial(4, 4.0)),
        ("gto per-channel max_radial", per_channel),
        ("gto max_radial 3", uniform_radial),
    ]
}

/// Pair coefficients of the fused kernel equal the tensor ops on the same device (f64 to
/// 1e-12 of each column's scale) and, in f32, the f64 tensor ops to 1e-4.
#[test]
fn cuda_pair_coefficients_equal_tensor_ops() {
    let Some(device) = common::cuda_device() else {
        return;
    };
    let p = 5000;
    // Diagonally dominant (positive-definite) precision rows a00, a01, a02, a11, a12, a22.
    let precision = uniform(1, 0.2, 1.0, &[p, 6])
        .broadcast_mul(&Tensor::new(&[1.0f64, 0.1, 0.1, 1.0, 0.1, 1.0], &Device::Cpu).unwrap())
        .unwrap();
    let inv = uniform(2, 0.5, 2.0, &[p]);
    let r = uniform(3, -3.0, 3.0, &[p, 3]);
    for (label, hypers) in hypers_cases() {
        let basis = Basis::new(&hypers).unwrap();
        let on = |dtype: DType| {
            let t = |x: &Tensor| x.to_dtype(dtype).unwrap().to_device(&device).unwrap();
            (t(&precision), t(&inv), t(&r))
        };
        let oracle =
            BatchedBasis::new(&basis, &options(&device, DType::F64, 1 << 20, false)).unwrap();
        assert!(!oracle.uses_cuda_kernels());
        let (a, i, x) = on(DType::F64);
        let expected = oracle.pair_coefficients(&a, &i, &x).unwrap();
        for dtype in [DType::F64, DType::F32] {
            let fused = BatchedBasis::new(&basis, &options(&device, dtype, 1 << 20, true)).unwrap();
            assert!(
                fused.uses_cuda_kernels(),
                "{label}: fused CUDA kernels not in use"
            );
            let (a, i, x) = on(dtype);
            let got = fused.pair_coefficients(&a, &i, &x).unwrap();
            let err = column_error(&got, &expected);
            let bound = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
            eprintln!("{label} {dtype:?}: worst error {err:.3e} of the column scale");
            assert!(err <= bound, "{label} {dtype:?}: {err:e} > {bound:e}");
        }
        // Zero pairs: an empty [0, K] result, no launch.
        let fused =
            BatchedBasis::new(&basis, &options(&device, DType::F64, 1 << 20, true)).unwrap();
        let empty = Tensor::zeros((0, 6), DType::F64, &device).unwrap();
        let got = fused
            .pair_coefficients(
                &empty,
                &Tensor::zeros(0, DType::F64, &device).unwrap(),
                &Tensor::zeros((0, 3), DType::F64, &device).unwrap(),
            )
            .unwrap();
        assert_eq!(got.dims2().unwrap(), (0, basis.n_coefficients));
    }
}

fn compute(hypers: &Hypers, backend: Backend, frames: &[Frame], q: Quantity) -> Features {
    Calculator::new(hypers, backend)
        .unwrap()
        .compute(frames, q, &mut |_, _| {})
        .unwrap()
}

/// Worst `|a - b|` over each column's largest `|b|`.
fn features_error(got: &Features, expected: &Features) -> f64 {
    let (g, e) = (&got.values, &expected.values);
    assert_eq!((g.rows, g.cols), (e.rows, e.cols));
    let mut worst = 0.0f64;
    for c in 0..e.cols {
        let scale = (0..e.rows)
            .map(|r| e.data[r * e.cols + c].abs())
            .fold(0.0, f64::max);
        for r in 0..e.rows {
            let d = (g.data[r * g.cols + c] - e.data[r * e.cols + c]).abs();
            worst = worst.max(if scale > 0.0 { d / scale } else { d });
        }
    }
    worst
}

/// Whole calculator on CUDA, fused kernels vs tensor ops vs the reference: every quantity,
/// several chunk sizes (a chunk of one pair's centre, uneven chunks, one chunk), several
/// species, open and periodic systems.
#[test]
fn cuda_fused_calculator_matches_reference() {
    let Some(device) = common::cuda_device() else {
        return;
    };
    let systems = [
        (
            "liquid 3 species periodic",
            common::synthetic_frames(SystemKind::EllipsoidLiquid, 30, 3, true, 8),
        ),
        (
            "liquid 1 species open",
            common::synthetic_frames(SystemKind::EllipsoidLiquid, 25, 1, false, 3),
        ),
    ];
    let mut monomial = Hypers::monomial(3, 4.0);
    monomial.subtract_center_contribution = true;
    for (label, frames) in &systems {
        for hypers in [Hypers::gto(4, 4.0, 1.2), monomial.clone()] {
            for q in [
                Quantity::PowerSpectrumMean,
                Quantity::PowerSpectrumPerCenter,
                Quantity::Density,
            ] {
                let expected = compute(&hypers, Backend::Reference, frames, q);
                for chunk in [1, 97, 1 << 20] {
                    for fused in [true, false] {
                        let backend = Backend::Batched(options(&device, DType::F64, chunk, fused));
                        let err = features_error(&compute(&hypers, backend, frames, q), &expected);
                        assert!(
                            err <= 1e-10,
                            "{label} {q:?} f64 chunk {chunk} fused {fused}: {err:e}"
                        );
                    }
                }
                let backend = Backend::Batched(options(&device, DType::F32, 1 << 20, true));
                let err = features_error(&compute(&hypers, backend, frames, q), &expected);
                eprintln!("{label} {q:?} f32 fused: {err:.3e}");
                assert!(err <= 1e-4, "{label} {q:?} f32 fused: {err:e}");
            }
        }
    }
}

/// The smooth cutoff (`cutoff_function = shifted_cosine`) in the CUDA pair kernel: pair
/// coefficients equal the tensor ops (whose factor is the differentiable Candle expression)
/// for pairs before, inside and beyond the smoothing zone, and the whole calculator equals the
/// reference with the smooth cutoff on (f64 1e-10, f32 1e-4 of each column's scale).
#[test]
fn cuda_smooth_cutoff_matches_tensor_ops_and_reference() {
    use anisoap_candle::cutoff::CutoffFunction;
    let Some(device) = common::cuda_device() else {
        return;
    };
    let p = 5000;
    let precision = uniform(11, 0.2, 1.0, &[p, 6])
        .broadcast_mul(&Tensor::new(&[1.0f64, 0.1, 0.1, 1.0, 0.1, 1.0], &Device::Cpu).unwrap())
        .unwrap();
    let inv = uniform(12, 0.5, 2.0, &[p]);
    // |r| up to 5.2: pairs with f = 1, 0 < f < 1 and f = 0 (beyond r_c = 4).
    let r = uniform(13, -3.0, 3.0, &[p, 3]);
    let smooth = |mut h: Hypers, width: f64| {
        h.cutoff_function = CutoffFunction::ShiftedCosine { width };
        h
    };
    for (label, hypers) in [
        ("gto lmax 6, width 2", smooth(Hypers::gto(6, 4.0, 1.3), 2.0)),
        (
            "monomial lmax 4, width = cutoff",
            smooth(Hypers::monomial(4, 4.0), 4.0),
        ),
    ] {
        let basis = Basis::new(&hypers).unwrap();
        let on = |dtype: DType| {
            let t = |x: &Tensor| x.to_dtype(dtype).unwrap().to_device(&device).unwrap();
            (t(&precision), t(&inv), t(&r))
        };
        let oracle =
            BatchedBasis::new(&basis, &options(&device, DType::F64, 1 << 20, false)).unwrap();
        let (a, i, x) = on(DType::F64);
        let expected = oracle.pair_coefficients(&a, &i, &x).unwrap();
        let mut step = hypers.clone();
        step.cutoff_function = CutoffFunction::Step;
        let unweighted = BatchedBasis::new(
            &Basis::new(&step).unwrap(),
            &options(&device, DType::F64, 1 << 20, false),
        )
        .unwrap()
        .pair_coefficients(&a, &i, &x)
        .unwrap();
        assert!(
            column_error(&unweighted, &expected) > 1e-2,
            "{label}: the smooth cutoff changed nothing"
        );
        for dtype in [DType::F64, DType::F32] {
            let fused = BatchedBasis::new(&basis, &options(&device, dtype, 1 << 20, true)).unwrap();
            assert!(
                fused.uses_cuda_kernels(),
                "{label}: fused CUDA kernels not in use"
            );
            let (a, i, x) = on(dtype);
            let err = column_error(&fused.pair_coefficients(&a, &i, &x).unwrap(), &expected);
            let bound = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
            eprintln!("smooth {label} {dtype:?}: pair coefficients {err:.3e} of the column scale");
            assert!(
                err <= bound,
                "smooth {label} {dtype:?}: {err:e} > {bound:e}"
            );
        }
    }
    let frames = common::synthetic_frames(SystemKind::EllipsoidLiquid, 30, 3, true, 8);
    let mut monomial = smooth(Hypers::monomial(3, 4.0), 1.0);
    monomial.subtract_center_contribution = true;
    for hypers in [smooth(Hypers::gto(4, 4.0, 1.2), 1.5), monomial] {
        for q in [
            Quantity::PowerSpectrumMean,
            Quantity::PowerSpectrumPerCenter,
            Quantity::Density,
        ] {
            let expected = compute(&hypers, Backend::Reference, &frames, q);
            for chunk in [97, 1 << 20] {
                for fused in [true, false] {
                    let backend = Backend::Batched(options(&device, DType::F64, chunk, fused));
                    let err = features_error(&compute(&hypers, backend, &frames, q), &expected);
                    assert!(
                        err <= 1e-10,
                        "smooth {q:?} f64 chunk {chunk} fused {fused}: {err:e}"
                    );
                }
            }
            let backend = Backend::Batched(options(&device, DType::F32, 1 << 20, true));
            let err = features_error(&compute(&hypers, backend, &frames, q), &expected);
            eprintln!(
                "smooth {:?} {q:?} f32 fused: {err:.3e}",
                hypers.radial_basis
            );
            assert!(err <= 1e-4, "smooth {q:?} f32 fused: {err:e}");
        }
    }
}

/// The power-spectrum kernels' per-frame segment sums (at most 256 centres of one frame per
/// segment): frames of 700 centres in two species, one chunk and chunks that cut frames, equal
/// the reference (f64 1e-10, f32 1e-4 of each column's scale), per frame and per centre.
#[test]
fn cuda_power_spectrum_segments_match_reference() {
    let Some(device) = common::cuda_device() else {
        return;
    };
    let frames = common::synthetic_frames(SystemKind::EllipsoidLiquid, 700, 2, true, 5);
    let hypers = Hypers::gto(3, 3.5, 1.0);
    for q in [
        Quantity::PowerSpectrumMean,
        Quantity::PowerSpectrumPerCenter,
    ] {
        let expected = compute(&hypers, Backend::Reference, &frames, q);
        for (dtype, chunk, bound) in [
            (DType::F64, 1 << 24, 1e-10),
            (DType::F64, 3001, 1e-10),
            (DType::F32, 3001, 1e-4),
        ] {
            let backend = Backend::Batched(options(&device, dtype, chunk, true));
            let err = features_error(&compute(&hypers, backend, &frames, q), &expected);
            eprintln!("{q:?} {dtype:?} chunk {chunk}: {err:.3e}");
            assert!(err <= bound, "{q:?} {dtype:?} chunk {chunk}: {err:e}");
        }
    }
}

/// The differentiable CUDA pair kernel (`BatchedBasis::differentiable_pair_coefficients`:
/// tensor-op Gaussian parameters, then the moments and contraction as one CUDA op with an
/// analytic backward): its values equal the tensor ops and its gradients with respect to the
/// precision rows, `1/(a1 a2 a3)` and `r_ij` equal tensor-op autograd (f64, 1e-10 of each
/// gradient's largest entry), with and without the smooth cutoff, GTO and monomial bases.
#[test]
fn cuda_differentiable_pair_coefficients_match_autograd() {
    use candle_core::Var;
    let Some(device) = common::cuda_device() else {
        return;
    };
    let p = 3000;
    let precision = uniform(11, 0.2, 1.0, &[p, 6])
        .broadcast_mul(&Tensor::new(&[1.0f64, 0.1, 0.1, 1.0, 0.1, 1.0], &Device::Cpu).unwrap())
        .unwrap();
    let inv = uniform(12, 0.5, 2.0, &[p]);
    let r = uniform(13, -3.0, 3.0, &[p, 3]);
    let mut smooth = Hypers::gto(6, 4.0, 1.2);
    smooth.cutoff_function = anisoap_candle::cutoff::CutoffFunction::ShiftedCosine { width: 1.5 };
    let cases = [
        ("gto lmax 6", Hypers::gto(6, 5.0, 1.3)),
        ("gto lmax 6 smooth cutoff", smooth),
        ("monomial lmax 3", Hypers::monomial(3, 4.0)),
        ("gto lmax 8", Hypers::gto(8, 7.0, 1.5)),
    ];
    for (label, hypers) in cases {
        let basis = Basis::new(&hypers).unwrap();
        let k = basis.n_coefficients;
        let weights = uniform(14, -1.0, 1.0, &[p, k]).to_device(&device).unwrap();
        let run = |fused: bool| {
            let batched =
                BatchedBasis::new(&basis, &options(&device, DType::F64, 1 << 20, fused)).unwrap();
            assert_eq!(batched.uses_cuda_kernels(), fused, "{label}");
            let vars = [&precision, &inv, &r]
                .map(|t| Var::from_tensor(&t.to_device(&device).unwrap()).unwrap());
            let coef = batched
                .differentiable_pair_coefficients(
                    vars[0].as_tensor(),
                    vars[1].as_tensor(),
                    vars[2].as_tensor(),
                )
                .unwrap();
            let loss = (&coef * &weights).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let g = vars.map(|v| grads.get(v.as_tensor()).expect("a gradient").clone());
            (coef, g)
        };
        let (coef, grads) = run(true);
        let (coef_oracle, grads_oracle) = run(false);
        let err = column_error(&coef, &coef_oracle);
        assert!(err <= 1e-12, "{label}: values {err:e}");
        for (name, (g, e)) in ["precision", "inv", "r"]
            .iter()
            .zip(grads.iter().zip(&grads_oracle))
        {
            assert_gradient_close(g, e, &format!("{label} d/d{name}"));
        }
    }
}

/// The differentiable descriptor on CUDA: with the fused CUDA op (default) the per-centre
/// power spectrum and the gradients of a model energy with respect to positions and
/// quaternions equal the tensor-op oracle (`with_fused_kernel(false)`) to 1e-10 of their
/// largest entries; periodic, two species, GTO lmax 6. The same with the neighbour sum in
/// chunks of 37 and of 5 pairs (many chunks; targets with more pairs than a chunk alone in one),
/// whose features equal the one-chunk run's to the bit (same sums, same order).
#[test]
fn cuda_differentiable_descriptor_matches_tensor_op_autograd() {
    use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
    use candle_core::Var;
    let Some(device) = common::cuda_device() else {
        return;
    };
    let frames = common::synthetic_frames(SystemKind::EllipsoidLiquid, 120, 2, true, 4);
    let frame = &frames[0];
    let hypers = Hypers::gto(6, 4.0, 1.0);
    let inputs = FrameTensors::from_frame(frame, "c_q", &device, DType::F64).unwrap();
    let mut types: Vec<i32> = frame.numbers.clone();
    types.sort();
    types.dedup();
    let run = |fused: bool, chunk: Option<usize>| {
        let mut descriptor = DifferentiableDescriptor::new(&hypers, &device, DType::F64)
            .unwrap()
            .with_fused_kernel(fused);
        if let Some(pairs) = chunk {
            descriptor = descriptor.with_pair_chunk(pairs);
        }
        assert_eq!(descriptor.uses_fused_kernel(), fused);
        let positions = Var::from_tensor(&inputs.positions).unwrap();
        let quaternions = Var::from_tensor(&inputs.quaternions).unwrap();
        let neighbors = descriptor
            .neighbors(
                &positions,
                &inputs.types,
                &inputs.cell,
                inputs.pbc,
                &SpeciesLayout::Fixed(types.clone()),
            )
            .unwrap();
        let features = descriptor
            .power_spectrum(&positions, &quaternions, &inputs.semi_axes, &neighbors)
            .unwrap();
        let weights = uniform(21, -1.0, 1.0, &[features.dim(1).unwrap(), 1])
            .to_device(&device)
            .unwrap();
        let energy = features.matmul(&weights).unwrap().sum_all().unwrap();
        let grads = energy.backward().unwrap();
        let g = [&positions, &quaternions].map(|v| grads.get(v.as_tensor()).unwrap().clone());
        (features, g)
    };
    let (features_oracle, grads_oracle) = run(false, None);
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let mut one_chunk = None;
    for chunk in [Some(usize::MAX), Some(37), Some(5), None] {
        let (features, grads) = run(true, chunk);
        let err = column_error(&features, &features_oracle);
        assert!(err <= 1e-10, "features (chunk {chunk:?}): {err:e}");
        for (name, (g, e)) in ["positions", "quaternions"]
            .iter()
            .zip(grads.iter().zip(&grads_oracle))
        {
            assert_gradient_close(g, e, &format!("d energy / d {name} (chunk {chunk:?})"));
        }
        match &one_chunk {
            None => one_chunk = Some(flat(&features)),
            Some(whole) => assert!(
                whole == &flat(&features),
                "chunk {chunk:?}: features differ from the one-chunk run"
            ),
        }
    }
}

/// `got` equals `expected` to 1e-10 of `expected`'s largest entry, which must not be zero.
fn assert_gradient_close(got: &Tensor, expected: &Tensor, what: &str) {
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let (g, e) = (flat(got), flat(expected));
    let scale = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = g
        .iter()
        .zip(&e)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("{what}: {:.3e} of the largest entry", worst / scale);
    assert!(
        scale > 0.0 && worst <= 1e-10 * scale,
        "{what}: {worst:e} vs {scale:e}"
    );
}
