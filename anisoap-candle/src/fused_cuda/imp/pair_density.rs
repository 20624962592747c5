//! The neighbour sum of the differentiable CUDA path in chunks ([`PairDensity`]): Gaussian
//! parameters `[P, 10]` in, the density `[n_targets, K]` out, without the pair coefficients
//! `[P, K]` of all pairs ever existing at once. Forward, per chunk of targets (at most
//! `chunk_pairs` pairs): gather the chunk's parameter rows in the order of the destination
//! index's transpose, the pair kernel (`moments_contract_<T>`), and the segment sums of its
//! targets (`segment_sum_chunk_<T>`, in the order the unchunked `segment_sum_rows_<T>` sums, so
//! the density is the same to the bit). Backward, per chunk: the incoming gradient's rows of
//! the chunk's targets, the analytic backward (`moments_contract_bwd_<T>`), and the parameter
//! gradients scattered back to their pairs (`scatter_rows_<T>`, a permutation: no sums).
//! Memory beyond the inputs and outputs: `chunk_pairs · (K + 10)` values, twice in the
//! backward.

use super::differentiable::{Coefficients, DifferentiableKernels, PARAMS};
use super::gather_ops::{grid, launch_gather, u32_view, GatherKernels};
use super::ops::view;
use crate::fused_cuda::{GatherIndex, TargetChunk};
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, CudaViewMut, DeviceRepr, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, WrapErr};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use std::sync::Arc;

/// Density `[n_targets, K]` from Gaussian parameters `[P, 10]` over a destination
/// [`GatherIndex`] (pair `q` adds to target `index[q]`), in chunks of at most `chunk_pairs`
/// pairs (a target with more pairs is one chunk alone); differentiable in the parameters.
#[derive(Clone)]
pub(crate) struct PairDensity {
    pub(crate) kernels: Arc<DifferentiableKernels>,
    pub(crate) rows: GatherKernels,
    pub(crate) destination: GatherIndex,
    pub(crate) chunk_pairs: usize,
}

/// The gradient of [`PairDensity`] with respect to its parameters: `(params, grad_out)` ->
/// `[P, 10]`.
struct PairDensityBwd(PairDensity);

impl PairDensity {
    fn n_cols(&self) -> usize {
        self.kernels.n_cols as usize
    }

    fn forward<T: CudaDType + DeviceRepr + ValidAsZeroBits>(
        &self,
        dev: &CudaDevice,
        params: CudaView<'_, T>,
        weights: &CudaSlice<T>,
        values: &CudaSlice<T>,
    ) -> candle_core::Result<CudaSlice<T>> {
        let (k, index) = (self.n_cols(), &self.destination);
        let mut out = dev.alloc_zeros::<T>((index.n_targets * k).max(1))?;
        let (ps, pl) = index.perm.storage_and_layout();
        let (ss, sl) = index.seg.storage_and_layout();
        let (perm, seg) = (u32_view(&ps, pl)?, u32_view(&ss, sl)?);
        let stream = dev.cuda_stream();
        for TargetChunk { targets, pairs } in index.target_chunks(self.chunk_pairs) {
            if pairs.is_empty() {
                continue; // targets without pairs keep their zeros
            }
            let (s0, s1) = (pairs.start, pairs.end);
            let chunk_params = launch_gather(
                dev,
                &self.rows.gather_fn,
                params.slice(..),
                &perm.slice(s0..s1),
                PARAMS,
            )?;
            let coefficients =
                self.kernels
                    .forward(dev, chunk_params.slice(..), weights, values, s1 - s0)?;
            let n_out = targets.len();
            let mut rows: CudaViewMut<'_, T> = out.slice_mut(targets.start * k..targets.end * k);
            let chunk_seg = seg.slice(targets.start..targets.end + 1);
            let (base, n32, w32) = (s0 as u32, n_out as u32, k as u32);
            let mut b = stream.launch_builder(&self.rows.chunk_sum_fn);
            b.arg(&coefficients)
                .arg(&chunk_seg)
                .arg(&base)
                .arg(&n32)
                .arg(&w32)
                .arg(&mut rows);
            // SAFETY: matches segment_sum_chunk_<T>. Thread idx < n_out K reads chunk_seg[n],
            // chunk_seg[n + 1] (n_out + 1 entries of seg, non-decreasing from s0 to s1 by
            // construction in GatherIndex::new), so p - base runs over 0 .. s1 - s0, the rows
            // of `coefficients` ((s1 - s0) K elements); it writes rows[idx], inside the n_out K
            // elements of this chunk's targets.
            unsafe { b.launch(grid(n_out * k)?) }.w()?;
        }
        Ok(out)
    }

    fn backward<T: CudaDType + DeviceRepr + ValidAsZeroBits>(
        &self,
        dev: &CudaDevice,
        params: CudaView<'_, T>,
        grad_out: CudaView<'_, T>,
        weights: &CudaSlice<T>,
        values: &CudaSlice<T>,
    ) -> candle_core::Result<CudaSlice<T>> {
        let (k, index) = (self.n_cols(), &self.destination);
        let mut grad = dev.alloc_zeros::<T>((index.n_rows * PARAMS).max(1))?;
        let (ps, pl) = index.perm.storage_and_layout();
        let (ts, tl) = index.sorted_targets.storage_and_layout();
        let (perm, targets_of) = (u32_view(&ps, pl)?, u32_view(&ts, tl)?);
        let stream = dev.cuda_stream();
        for TargetChunk { pairs, .. } in index.target_chunks(self.chunk_pairs) {
            if pairs.is_empty() {
                continue;
            }
            let (s0, s1) = (pairs.start, pairs.end);
            let chunk_perm = perm.slice(s0..s1);
            let chunk_params = launch_gather(
                dev,
                &self.rows.gather_fn,
                params.slice(..),
                &chunk_perm,
                PARAMS,
            )?;
            let chunk_grad = launch_gather(
                dev,
                &self.rows.gather_fn,
                grad_out.slice(..),
                &targets_of.slice(s0..s1),
                k,
            )?;
            let grad_params = self.kernels.backward(
                dev,
                chunk_params.slice(..),
                chunk_grad.slice(..),
                weights,
                values,
                s1 - s0,
            )?;
            let (n32, w32) = ((s1 - s0) as u32, PARAMS as u32);
            let mut b = stream.launch_builder(&self.rows.scatter_fn);
            b.arg(&grad_params)
                .arg(&chunk_perm)
                .arg(&n32)
                .arg(&w32)
                .arg(&mut grad);
            // SAFETY: matches scatter_rows_<T>. Thread idx < (s1 - s0) 10 reads grad_params[idx]
            // ((s1 - s0) 10 elements) and chunk_perm[q], a pair index < P (perm is a
            // permutation of 0 .. P), and writes grad[perm[q] 10 + c] inside the P 10
            // elements; distinct q have distinct perm[q], so no two threads write one element.
            unsafe { b.launch(grid((s1 - s0) * PARAMS)?) }.w()?;
        }
        Ok(grad)
    }

    /// Checks the parameter rows against the index: `[P, 10]` with `P` its rows.
    fn check_params(&self, l: &Layout) -> candle_core::Result<usize> {
        let (p, c) = l.shape().dims2()?;
        if c != PARAMS || p != self.destination.n_rows {
            candle_core::bail!(
                "anisoap-cuda: expected parameters [{}, {PARAMS}], got {:?}",
                self.destination.n_rows,
                l.shape()
            );
        }
        Ok(p)
    }
}

impl CustomOp1 for PairDensity {
    fn name(&self) -> &'static str {
        "anisoap-cuda-pair-density"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("anisoap-cuda-pair-density runs on CUDA devices only")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let p = self.check_params(l)?;
        let dev = &s.device;
        let out = with_coefficients!(&self.kernels.coefficients, |T, weights, values| {
            let params = view::<T>(s, l, "parameters", p * PARAMS)?;
            CudaStorage::wrap_cuda_slice(self.forward(dev, params, weights, values)?, dev.clone())
        });
        Ok((
            out,
            Shape::from((self.destination.n_targets, self.n_cols())),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &PairDensityBwd(self.clone()),
        )?))
    }
}

impl CustomOp2 for PairDensityBwd {
    fn name(&self) -> &'static str {
        "anisoap-cuda-pair-density-bwd"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("anisoap-cuda-pair-density-bwd runs on CUDA devices only")
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let op = &self.0;
        let p = op.check_params(l1)?;
        let (t, k) = (op.destination.n_targets, op.n_cols());
        if l2.shape().dims() != [t, k] {
            candle_core::bail!(
                "anisoap-cuda: the density gradient has shape {:?}, expected [{t}, {k}]",
                l2.shape()
            );
        }
        let dev = &s1.device;
        let out = with_coefficients!(&op.kernels.coefficients, |T, weights, values| {
            let params = view::<T>(s1, l1, "parameters", p * PARAMS)?;
            let gradient = view::<T>(s2, l2, "gradient", t * k)?;
            CudaStorage::wrap_cuda_slice(
                op.backward(dev, params, gradient, weights, values)?,
                dev.clone(),
            )
        });
        Ok((out, Shape::from((p, PARAMS))))
    }
}

/// Checks at build time that the op can live in Candle's graph (shared between threads).
const _: fn() = || {
    fn check<T: Send + Sync + 'static>() {}
    check::<PairDensity>();
};
