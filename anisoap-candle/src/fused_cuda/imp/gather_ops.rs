//! The deterministic gather and scatter-sum ops of the differentiable CUDA path, each the
//! other's backward ([`crate::fused_cuda::GatherIndex`], `gather_rows_<T>` and
//! `segment_sum_rows_<T>` in `kernels/pair_coefficients.cu`).

use crate::fused_cuda::GatherIndex;
use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, WrapErr};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};

/// Threads per block.
const THREADS: u32 = 256;

/// The row kernels of one dtype.
#[derive(Clone)]
pub(crate) struct GatherKernels {
    pub(crate) gather_fn: CudaFunction,
    pub(crate) sum_fn: CudaFunction,
    /// `segment_sum_chunk_<T>` and `scatter_rows_<T>` ([`super::pair_density`]).
    pub(crate) chunk_sum_fn: CudaFunction,
    pub(crate) scatter_fn: CudaFunction,
    pub(crate) dtype: DType,
}

/// Which way a [`RowsOp`] maps rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `out[q] = src[index[q]]`: `[P, W]` from `[n_targets, W]`.
    Gather,
    /// `out[t] = Σ_{q: index[q] = t} src[q]` in row order: `[n_targets, W]` from `[P, W]`.
    ScatterSum,
}

/// A gather or scatter sum over a [`GatherIndex`]; the backward of each is the other.
pub(crate) struct RowsOp {
    pub(crate) kernels: GatherKernels,
    pub(crate) index: GatherIndex,
    pub(crate) direction: Direction,
}

pub(super) fn u32_view<'a>(
    storage: &'a Storage,
    layout: &Layout,
) -> candle_core::Result<CudaView<'a, u32>> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cuda(s), Some((a, b))) => Ok(s.as_cuda_slice::<u32>()?.slice(a..b)),
        _ => candle_core::bail!("anisoap-cuda: index tensors must be contiguous on CUDA"),
    }
}

fn src_view<'a, T: CudaDType>(
    s: &'a CudaStorage,
    l: &Layout,
    len: usize,
) -> candle_core::Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((a, b)) if b - a == len => Ok(s.as_cuda_slice::<T>()?.slice(a..b)),
        _ => {
            candle_core::bail!("anisoap-cuda: gather input must be contiguous with {len} elements")
        }
    }
}

pub(super) fn grid(total: usize) -> candle_core::Result<LaunchConfig> {
    let blocks = u32::try_from(total.div_ceil(THREADS as usize))
        .map_err(|_| candle_core::Error::Msg("gather grid too large".into()))?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// `out[q] = src[index[q]]` for the `index.len()` rows of `index`, `width` columns; every
/// entry of `index` must be below the rows of `src` (the callers' indices are built so:
/// [`GatherIndex::new`] checks `index` below `n_targets`, and its `perm` and `sorted_targets`
/// are a permutation of the rows and targets in range).
pub(super) fn launch_gather<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    f: &CudaFunction,
    src: CudaView<'_, T>,
    index: &CudaView<'_, u32>,
    width: usize,
) -> candle_core::Result<CudaSlice<T>> {
    let total = index.len() * width;
    // SAFETY: thread idx < n W writes out[idx]; the grid covers every idx.
    let mut out = unsafe { dev.alloc::<T>(total.max(1)) }?;
    if total == 0 {
        return Ok(out);
    }
    let (rows, w) = (index.len() as u32, width as u32);
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(f);
    b.arg(&src).arg(index).arg(&rows).arg(&w).arg(&mut out);
    // SAFETY: matches gather_rows_<T>. Thread idx < n W reads index[q] (q < n; n entries),
    // below the rows of src (the contract above), so src[index[q] W + c] with c < W lies in
    // src; it writes out[idx] only.
    unsafe { b.launch(grid(total)?) }.w()?;
    drop(b);
    Ok(out)
}

fn launch_sum<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    f: &CudaFunction,
    src: CudaView<'_, T>,
    index: &GatherIndex,
    width: usize,
) -> candle_core::Result<CudaSlice<T>> {
    let total = index.n_targets * width;
    // SAFETY: thread idx < n_targets W writes out[idx]; the grid covers every idx.
    let mut out = unsafe { dev.alloc::<T>(total.max(1)) }?;
    if total == 0 {
        return Ok(out);
    }
    let (ps, pl) = index.perm.storage_and_layout();
    let (ss, sl) = index.seg.storage_and_layout();
    let (perm, seg) = (u32_view(&ps, pl)?, u32_view(&ss, sl)?);
    let (n, w) = (index.n_targets as u32, width as u32);
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(f);
    b.arg(&src)
        .arg(&perm)
        .arg(&seg)
        .arg(&n)
        .arg(&w)
        .arg(&mut out);
    // SAFETY: matches segment_sum_rows_<T>. Thread idx < n_targets W reads seg[t], seg[t + 1]
    // (n_targets + 1 entries, a prefix sum ending at P by construction in GatherIndex::new),
    // perm[p] for p < P (a permutation of 0..P), and src[perm[p] W + c] inside the P W
    // elements of src (checked by the caller); it writes out[idx] only.
    unsafe { b.launch(grid(total)?) }.w()?;
    drop(b);
    Ok(out)
}

impl RowsOp {
    /// Rows of the input and of the output.
    fn rows(&self) -> (usize, usize) {
        match self.direction {
            Direction::Gather => (self.index.n_targets, self.index.n_rows),
            Direction::ScatterSum => (self.index.n_rows, self.index.n_targets),
        }
    }

    fn launch<T: CudaDType + DeviceRepr>(
        &self,
        s: &CudaStorage,
        l: &Layout,
        len: usize,
        width: usize,
    ) -> candle_core::Result<CudaStorage> {
        let dev = &s.device;
        let src = src_view::<T>(s, l, len)?;
        let out = match self.direction {
            Direction::Gather => {
                let (storage, layout) = self.index.index.storage_and_layout();
                let index = u32_view(&storage, layout)?;
                launch_gather(dev, &self.kernels.gather_fn, src, &index, width)?
            }
            Direction::ScatterSum => {
                launch_sum(dev, &self.kernels.sum_fn, src, &self.index, width)?
            }
        };
        Ok(CudaStorage::wrap_cuda_slice(out, dev.clone()))
    }
}

impl CustomOp1 for RowsOp {
    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Gather => "anisoap-cuda-gather-rows",
            Direction::ScatterSum => "anisoap-cuda-scatter-sum-rows",
        }
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("{} runs on CUDA devices only", self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (rows, w) = l.shape().dims2()?;
        let (rows_in, rows_out) = self.rows();
        if rows != rows_in {
            candle_core::bail!(
                "{}: input has {rows} rows, the index expects {rows_in}",
                self.name()
            );
        }
        let out = match self.kernels.dtype {
            DType::F64 => self.launch::<f64>(s, l, rows * w, w)?,
            _ => self.launch::<f32>(s, l, rows * w, w)?,
        };
        Ok((out, Shape::from((rows_out, w))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let transposed = RowsOp {
            kernels: self.kernels.clone(),
            index: self.index.clone(),
            direction: match self.direction {
                Direction::Gather => Direction::ScatterSum,
                Direction::ScatterSum => Direction::Gather,
            },
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&transposed)?))
    }
}
