//! The power spectrum on the device (`kernels/power_spectrum.cu`): one kernel for the
//! per-centre Gram matrices of a centre block, one for their per-frame partial sums. They
//! replace ~60 tensor ops per chunk (gathers, permutes, batched GEMMs, casts) with two
//! launches, and with them cuBLAS, whose lazily loaded kernels cost 45 ms (f64) and 140 ms
//! (f32) in the first chunk of a process on the H200 (`results/logs/cuda_h200_s11/`).

use super::{load_module, CudaKernels, FloatTables};
use crate::basis::Basis;
use crate::error::{Error, Result};
use crate::fused_cuda::{BlockSpectrum, SEGMENT_ROWS};
use candle_core::cuda_backend::cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaView, DeviceRepr, LaunchConfig,
    PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice, WrapErr};
use candle_core::WithDType;
use candle_core::{Storage, Tensor};
use std::sync::Arc;

/// The kernel source (CUDA C++, compiled with `--fmad=false`).
const SOURCE: &str = include_str!("../../kernels/power_spectrum.cu");

/// Threads per block of both kernels.
const THREADS: u32 = 256;

/// The loaded power-spectrum kernels of one dtype.
pub(super) struct SpectrumKernels {
    rows_fn: CudaFunction,
    sums_fn: CudaFunction,
}

impl SpectrumKernels {
    /// Compiles (once per process) and loads the kernels for `suffix` (`f64` or `f32`).
    pub(super) fn load(ctx: &Arc<CudaContext>, suffix: &str) -> Result<Self> {
        let module: Arc<CudaModule> = load_module(
            ctx,
            "power_spectrum.cu",
            SOURCE,
            Some(false),
            "--tensor-op-moments",
        )?;
        Ok(SpectrumKernels {
            rows_fn: module
                .load_function(&format!("power_spectrum_rows_{suffix}"))
                .w()?,
            sums_fn: module
                .load_function(&format!("segment_sums_{suffix}"))
                .w()?,
        })
    }
}

/// Per feature column of centre block `b` (the column order of
/// [`crate::batched::block_power_spectrum`]: per channel `l`, `(p, q)` with
/// `p = n E_t + e`): the kernel's four table words and the channel factor.
fn column_table(basis: &Basis, slots: &[usize]) -> (Vec<u32>, Vec<f64>) {
    let k_len = basis.n_coefficients;
    let e_t = slots.len();
    let mut words = Vec::new();
    let mut factor = Vec::new();
    for (l, &n_l) in basis.n_radial.iter().enumerate() {
        let width = n_l * e_t;
        let sign = if l % 2 == 0 { 1.0 } else { -1.0 };
        let f = sign / ((2 * l + 1) as f64).sqrt();
        let first = |p: usize| slots[p % e_t] * k_len + basis.column(l, 0, p / e_t);
        for p in 0..width {
            for q in 0..width {
                words.extend([first(p), first(q), 2 * l + 1, n_l].map(|v| v as u32));
                factor.push(f);
            }
        }
    }
    (words, factor)
}

/// A contiguous device tensor's elements as a view.
fn device_view<'a, T: CudaDType>(
    storage: &'a Storage,
    layout: &candle_core::Layout,
) -> Result<CudaView<'a, T>> {
    let (Storage::Cuda(s), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
        return Err(Error::Device(
            "the power-spectrum kernels need a contiguous CUDA tensor".into(),
        ));
    };
    Ok(s.as_cuda_slice::<T>()?.slice(start..end))
}

fn grid(total: usize) -> Result<LaunchConfig> {
    let blocks = u32::try_from(total.div_ceil(THREADS as usize))
        .map_err(|_| Error::TooLarge("power-spectrum grid too large".into()))?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

impl CudaKernels {
    /// The power spectrum of the block members `members` (chunk-local centres, each below
    /// the chunk's `C`) of one centre block whose neighbour types are the density slots
    /// `slots`, from the chunk's density `[C, n_types, K]` on the device: per-centre rows
    /// when `segments` is `None`, otherwise the sums of the member rows
    /// `segments[s]..segments[s + 1]` (each at most [`SEGMENT_ROWS`] long, in order).
    pub fn block_power_spectrum(
        &self,
        basis: &Basis,
        density: &Tensor,
        members: &[u32],
        slots: &[usize],
        segments: Option<&[u32]>,
    ) -> Result<BlockSpectrum> {
        let _span = tracing::trace_span!("power_spectrum").entered();
        let candle_core::Device::Cuda(dev) = density.device() else {
            return Err(Error::Device("the CUDA kernels need a CUDA device".into()));
        };
        let (c, n_types, k_len) = density.dims3()?;
        if k_len != basis.n_coefficients
            || slots.iter().any(|&s| s >= n_types)
            || members.iter().any(|&m| m as usize >= c)
        {
            return Err(Error::Device(
                "power spectrum: members or slots outside the chunk's density".into(),
            ));
        }
        if let Some(seg) = segments {
            let ordered = seg
                .windows(2)
                .all(|w| w[0] <= w[1] && w[1] - w[0] <= SEGMENT_ROWS as u32);
            if seg.first() != Some(&0) || seg.last() != Some(&(members.len() as u32)) || !ordered {
                return Err(Error::Device("power spectrum: invalid segments".into()));
            }
        }
        let (words, factor) = column_table(basis, slots);
        let n_features = factor.len();
        let row_len = n_types
            .checked_mul(k_len)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::TooLarge("density row too long for the CUDA kernels".into()))?;
        let n_members = u32::try_from(members.len())
            .map_err(|_| Error::TooLarge("too many centres in one chunk".into()))?;
        let rows_len = members
            .len()
            .checked_mul(n_features)
            .ok_or_else(|| Error::TooLarge("power spectrum too large".into()))?;
        let (storage, layout) = density.storage_and_layout();
        with_float_tables!(&self.tables, |T, t| {
            let d = device_view::<T>(&storage, layout)?;
            let factor: Vec<T> = factor.iter().map(|&v| T::from_f64(v)).collect();
            launch(
                dev,
                &t.spectrum,
                d,
                members,
                &words,
                &factor,
                n_members,
                row_len,
                rows_len,
                segments,
                n_features,
            )
        })
    }
}

/// Uploads the tables, runs the row kernel (and the partial sums) and downloads the result.
#[allow(clippy::too_many_arguments)]
fn launch<T: CudaDType + DeviceRepr + Copy + Into<f64> + 'static>(
    dev: &CudaDevice,
    kernels: &SpectrumKernels,
    density: CudaView<'_, T>,
    members: &[u32],
    words: &[u32],
    factor: &[T],
    n_members: u32,
    row_len: u32,
    rows_len: usize,
    segments: Option<&[u32]>,
    n_features: usize,
) -> Result<BlockSpectrum> {
    let n_features32 = u32::try_from(n_features)
        .map_err(|_| Error::TooLarge("too many power-spectrum features".into()))?;
    if density.len() % row_len.max(1) as usize != 0 {
        return Err(Error::Device("power spectrum: density rows".into()));
    }
    let members_dev = dev.clone_htod(members)?;
    let words_dev = dev.clone_htod(words)?;
    let factor_dev = dev.clone_htod(factor)?;
    // SAFETY: every element is written: thread idx < M F writes out[idx], and the grid covers
    // every idx < M F.
    let mut rows: CudaSlice<T> = unsafe { dev.alloc::<T>(rows_len.max(1)) }?;
    let stream = dev.cuda_stream();
    if rows_len > 0 {
        let mut builder = stream.launch_builder(&kernels.rows_fn);
        builder
            .arg(&density)
            .arg(&members_dev)
            .arg(&n_members)
            .arg(&words_dev)
            .arg(&factor_dev)
            .arg(&n_features32)
            .arg(&row_len)
            .arg(&mut rows);
        // SAFETY: the arguments match power_spectrum_rows_<T> in kernels/power_spectrum.cu.
        // Thread idx < M F (guarded in the kernel) reads members[k] (k < M, M entries), which
        // is below C (checked by the caller), so the centre's row members[k] * row_len ..
        // + row_len lies inside the density ([C, n_types K], row_len = n_types K); it reads
        // columns[4f..4f + 4] and factor[f] (f < F; column_table wrote 4 F words and F
        // factors); the density offsets a, b = slot * K + column(l, 0, n) with slot <
        // n_types (checked) plus m * N_l for m < 2l + 1 stay below slot * K +
        // channel_offset_l + (2l + 1) N_l <= (slot + 1) K <= row_len. It writes out[idx] only.
        unsafe { builder.launch(grid(rows_len)?) }.w()?;
    }
    let Some(seg) = segments else {
        let host: Vec<T> = dev.clone_dtoh(&rows.slice(0..rows_len))?;
        return Ok(BlockSpectrum::PerCenter(
            host.into_iter().map(Into::into).collect(),
        ));
    };
    let n_segments = seg.len().saturating_sub(1);
    let partial_len = n_segments
        .checked_mul(n_features)
        .ok_or_else(|| Error::TooLarge("power spectrum too large".into()))?;
    if partial_len == 0 {
        return Ok(BlockSpectrum::Segments(Vec::new()));
    }
    let n_segments32 = n_segments as u32;
    let seg_dev = dev.clone_htod(seg)?;
    // SAFETY: thread idx < S F writes partial[idx], and the grid covers every idx.
    let mut partial = unsafe { dev.alloc::<f64>(partial_len) }?;
    let mut builder = stream.launch_builder(&kernels.sums_fn);
    builder
        .arg(&rows)
        .arg(&seg_dev)
        .arg(&n_segments32)
        .arg(&n_features32)
        .arg(&mut partial);
    // SAFETY: the arguments match segment_sums_<T>. Thread idx < S F reads seg[s], seg[s + 1]
    // (s < S; seg holds S + 1 entries), which are non-decreasing with seg[S] = M (checked by
    // the caller), so rows r < M and rows[r F + f] < M F, the rows allocated; it writes
    // partial[idx] only (S F allocated).
    unsafe { builder.launch(grid(partial_len)?) }.w()?;
    drop(builder);
    Ok(BlockSpectrum::Segments(dev.clone_dtoh(&partial)?))
}
