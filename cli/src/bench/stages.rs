//! Stage-by-stage timing: the library's public batched functions called one stage at a time on
//! a prepared system, with a device synchronisation after each stage, so every stage's time is
//! its own (on a GPU, kernels are otherwise asynchronous).

use anisoap_candle::basis::Basis;
use anisoap_candle::batched::{self, BatchedBasis, ParticleTensors};
use anisoap_candle::system::System;
use anisoap_candle::{reference, Frame};
use anyhow::Result;
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;
use std::time::Instant;

/// Seconds per stage of one staged run.
pub type StageTimes = BTreeMap<String, f64>;

/// Accumulates time per stage, synchronising the device before reading the clock.
struct Clock<'a> {
    device: &'a Device,
    times: StageTimes,
    last: Instant,
}

impl<'a> Clock<'a> {
    fn new(device: &'a Device) -> Self {
        Clock {
            device,
            times: StageTimes::new(),
            last: Instant::now(),
        }
    }

    /// Adds `seconds` to `stage`.
    fn book(&mut self, stage: &str, seconds: f64) {
        *self.times.entry(stage.to_string()).or_insert(0.0) += seconds;
    }

    /// Ends the current stage: waits for the device, books the time since the last mark.
    fn mark(&mut self, stage: &str) -> Result<()> {
        self.device.synchronize()?;
        let now = Instant::now();
        *self.times.entry(stage.to_string()).or_insert(0.0) += (now - self.last).as_secs_f64();
        self.last = now;
        Ok(())
    }
}

fn u32_tensor(values: impl IntoIterator<Item = usize>, device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = values.into_iter().map(|x| x as u32).collect();
    let n = v.len();
    Ok(Tensor::from_vec(v, n, device)?)
}

/// Result of one staged candle run.
pub struct StagedRun {
    /// Seconds per stage.
    pub times: StageTimes,
    /// Largest |staged − reference backend| difference, over the first chunk's density and the
    /// per-frame sums of the power spectrum (computed untimed; `None` when not checked).
    pub check_max_abs_diff: Option<f64>,
}

/// Largest pair count on which the staged run is checked against the reference backend (which
/// computes the whole system pair by pair, so the check is bounded to keep big runs cheap).
pub const CHECK_MAX_PAIRS: usize = 2_000_000;

/// Largest |staged − reference| difference: the staged density `[C, n_types, K]` of the centres
/// `chunk` and the staged per-frame sums of all power-spectrum features, against
/// `reference::density` and `reference::power_spectrum_row` (an independent implementation:
/// dense moment cube, sparse harmonic tables, Löwdin after the neighbour sum).
fn check_against_reference(
    basis: &Basis,
    system: &System,
    chunk: std::ops::Range<usize>,
    staged_density: &Tensor,
    staged_frame_sums: &[f64],
) -> Result<f64> {
    let density = reference::density(basis, system)?;
    let n_types = system.layout.types.len();
    let row = n_types * basis.n_coefficients;
    let expected = &density[chunk.start * row..chunk.end * row];
    let staged = staged_density
        .to_dtype(candle_core::DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?;
    anyhow::ensure!(
        staged.len() == expected.len(),
        "staged density has {} values, the reference {}",
        staged.len(),
        expected.len()
    );
    let mut worst = staged
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    let layout = &system.layout;
    let mut frame_sums = vec![0.0f64; layout.n_frames];
    for i in 0..system.particles.len() {
        if !layout.is_sample[i] {
            continue;
        }
        let b = layout
            .center_block(system.particles.types[i])
            .expect("sample has a block");
        frame_sums[system.particles.frame[i]] +=
            reference::power_spectrum_row(basis, system, &density, i, b)
                .iter()
                .sum::<f64>();
    }
    anyhow::ensure!(
        staged_frame_sums.len() == frame_sums.len(),
        "staged run has {} frame sums, the reference {}",
        staged_frame_sums.len(),
        frame_sums.len()
    );
    for (a, b) in staged_frame_sums.iter().zip(&frame_sums) {
        worst = worst.max((a - b).abs());
    }
    // NaN anywhere must not read as agreement (f64::max drops NaN).
    if staged
        .iter()
        .chain(staged_frame_sums)
        .any(|x| !x.is_finite())
    {
        worst = f64::NAN;
    }
    Ok(worst)
}

/// One staged run of the batched path: neighbour list, upload, then per chunk gather,
/// Gaussian parameters, moments, contraction (or, with the fused CPU kernel, fused
/// moments+contraction), neighbour sum and power spectrum (with the per-frame sums brought
/// back to the host, as `Calculator::compute` does).
pub fn candle(
    frames: &[Frame],
    basis: &Basis,
    batched_basis: &BatchedBasis,
    check: bool,
) -> Result<StagedRun> {
    let options = batched_basis.options();
    let device = &options.device;
    let mut clock = Clock::new(device);
    let system = System::new(frames, basis)?;
    clock.mark("neighbor_list")?;
    let particles = ParticleTensors::new(&system, options)?;
    let chunks = system.center_chunks(options.chunk_pairs);
    clock.mark("setup")?;
    let layout = &system.layout;
    let n_types = layout.types.len();
    let mut frame_sums = vec![0.0f64; layout.n_frames];
    let check = check && system.pair_counts.iter().sum::<usize>() <= CHECK_MAX_PAIRS;
    let mut first_chunk = None;
    for (index, chunk) in chunks.iter().enumerate() {
        let pairs = system.pairs(chunk.clone())?;
        clock.mark("neighbor_list")?;
        let neighbors = u32_tensor(pairs.neighbors.iter().copied(), device)?;
        let r: Vec<f64> = pairs.vectors.iter().flatten().copied().collect();
        let r = Tensor::from_vec(r, (pairs.len(), 3), device)?.to_dtype(options.dtype)?;
        let precision = particles.precision.index_select(&neighbors, 0)?;
        let inv_axes = particles.inv_axes_product.index_select(&neighbors, 0)?;
        clock.mark("gather")?;
        let coefficients = if batched_basis.uses_fused_moments() {
            // The fused CPU kernel computes moments and contraction in one op that only
            // `pair_coefficients` exposes: time the Gaussian parameters alone, then the whole
            // `pair_coefficients`, and book the difference as the fused moments+contraction.
            let t = Instant::now();
            let parameters = batched_basis.gaussian_parameters(&precision, &inv_axes, &r)?;
            device.synchronize()?;
            let t_parameters = t.elapsed().as_secs_f64();
            std::hint::black_box(&parameters);
            drop(parameters);
            let t = Instant::now();
            let coefficients = batched_basis.pair_coefficients(&precision, &inv_axes, &r)?;
            device.synchronize()?;
            let t_pairs = t.elapsed().as_secs_f64();
            clock.book("gaussian_parameters", t_parameters);
            clock.book(
                "moments_contraction_fused",
                (t_pairs - t_parameters).max(0.0),
            );
            clock.last = Instant::now();
            coefficients
        } else {
            let (mu, sigma, scale) =
                batched_basis.gaussian_parameters(&precision, &inv_axes, &r)?;
            clock.mark("gaussian_parameters")?;
            let m = batched_basis.moments(&mu, &sigma)?;
            clock.mark("moments")?;
            let coefficients = batched_basis.contract(&m, &scale)?;
            clock.mark("contraction")?;
            coefficients
        };
        // The library's own neighbour sum for this device (index_add on the CPU, padded
        // batched matmul on GPUs).
        let type_slots: Vec<usize> = pairs
            .neighbors
            .iter()
            .map(|&j| system.type_slots[j])
            .collect();
        let density = if device.is_cpu() {
            batched::index_add_neighbor_sum(
                &coefficients,
                &pairs,
                &type_slots,
                chunk.clone(),
                n_types,
            )?
        } else {
            batched::padded_neighbor_sum(
                &coefficients,
                &pairs,
                &type_slots,
                chunk.clone(),
                n_types,
            )?
        };
        clock.mark("neighbor_sum")?;
        for (b, &t) in layout.center_types.iter().enumerate() {
            let centers: Vec<usize> = chunk
                .clone()
                .filter(|&i| layout.is_sample[i] && system.particles.types[i] == t)
                .collect();
            if centers.is_empty() {
                continue;
            }
            let local = u32_tensor(centers.iter().map(|&i| i - chunk.start), device)?;
            let block = batched::block_power_spectrum(basis, layout, &density, &local, b)?;
            let first_frame = system.particles.frame[centers[0]];
            let last_frame = system.particles.frame[*centers.last().expect("nonempty")];
            let frames_local = u32_tensor(
                centers
                    .iter()
                    .map(|&i| system.particles.frame[i] - first_frame),
                device,
            )?;
            let sums = Tensor::zeros(
                (last_frame - first_frame + 1, block.dim(1)?),
                options.dtype,
                device,
            )?
            .index_add(&frames_local, &block, 0)?
            .to_dtype(candle_core::DType::F64)?
            .sum(1)?
            .to_vec1::<f64>()?;
            for (k, s) in sums.iter().enumerate() {
                frame_sums[first_frame + k] += s;
            }
        }
        clock.mark("power_spectrum")?;
        if check && index == 0 {
            first_chunk = Some((chunk.clone(), density));
            clock.last = Instant::now();
        }
    }
    let check_max_abs_diff = match first_chunk {
        Some((chunk, density)) => Some(check_against_reference(
            basis,
            &system,
            chunk,
            &density,
            &frame_sums,
        )?),
        None => None,
    };
    std::hint::black_box(&frame_sums);
    Ok(StagedRun {
        times: clock.times,
        check_max_abs_diff,
    })
}

/// One staged run of the reference backend: neighbour list (`System::new`), density (pairs
/// streamed per centre range, pair Gaussians, moments, contraction, neighbour sum and Löwdin,
/// pair by pair) and power spectrum rows.
pub fn reference(frames: &[Frame], basis: &Basis) -> Result<StageTimes> {
    let device = Device::Cpu;
    let mut clock = Clock::new(&device);
    let system = System::new(frames, basis)?;
    clock.mark("neighbor_list")?;
    let density = reference::density(basis, &system)?;
    clock.mark("density")?;
    let layout = &system.layout;
    let mut total = 0.0;
    for i in 0..system.particles.len() {
        if !layout.is_sample[i] {
            continue;
        }
        let b = layout
            .center_block(system.particles.types[i])
            .expect("sample has a block");
        total += reference::power_spectrum_row(basis, &system, &density, i, b)
            .iter()
            .sum::<f64>();
    }
    std::hint::black_box(total);
    clock.mark("power_spectrum")?;
    Ok(clock.times)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anisoap_candle::batched::BatchedOptions;
    use anisoap_candle::synthetic::{self, SyntheticSpec, SystemKind};
    use anisoap_candle::Hypers;

    /// The staged run agrees with the reference backend, and the check is able to fail: a
    /// perturbed density or frame sum is reported.
    #[test]
    fn staged_check_is_independent_and_can_fail() {
        let mut spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 10);
        spec.n_species = 2;
        spec.seed = 7;
        let frames = synthetic::generate(&spec, 2);
        let basis = Basis::new(&Hypers::gto(3, 4.0, 1.0)).unwrap();
        let mut options = BatchedOptions::cpu_f64();
        // Several chunks, so the first chunk is a strict part of the system.
        options.chunk_pairs = 16;
        let batched_basis = BatchedBasis::new(&basis, &options).unwrap();
        let run = candle(&frames, &basis, &batched_basis, true).unwrap();
        let diff = run.check_max_abs_diff.expect("checked");
        assert!(diff < 1e-10, "staged vs reference: {diff}");

        let system = System::new(&frames, &basis).unwrap();
        let chunk = system.center_chunks(16)[0].clone();
        assert!(chunk.len() < system.particles.len());
        let density = reference::density(&basis, &system).unwrap();
        let row = system.layout.types.len() * basis.n_coefficients;
        let mut values = density[chunk.start * row..chunk.end * row].to_vec();
        let shape = (chunk.len(), system.layout.types.len(), basis.n_coefficients);
        let exact = Tensor::from_vec(values.clone(), shape, &Device::Cpu).unwrap();
        let mut sums = vec![0.0; system.layout.n_frames];
        for i in 0..system.particles.len() {
            if let Some(b) = system.layout.center_block(system.particles.types[i]) {
                if system.layout.is_sample[i] {
                    sums[system.particles.frame[i]] +=
                        reference::power_spectrum_row(&basis, &system, &density, i, b)
                            .iter()
                            .sum::<f64>();
                }
            }
        }
        let ok = check_against_reference(&basis, &system, chunk.clone(), &exact, &sums).unwrap();
        assert!(ok < 1e-12, "{ok}");
        values[3] += 1e-3;
        let perturbed = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
        let bad =
            check_against_reference(&basis, &system, chunk.clone(), &perturbed, &sums).unwrap();
        assert!((bad - 1e-3).abs() < 1e-9, "{bad}");
        sums[1] += 0.5;
        let bad = check_against_reference(&basis, &system, chunk, &exact, &sums).unwrap();
        assert!((bad - 0.5).abs() < 1e-9, "{bad}");
    }
}
