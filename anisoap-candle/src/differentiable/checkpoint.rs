//! The CUDA neighbour sum of [`super::DifferentiableDescriptor::density`] with memory bounded
//! by a chunk of pairs, not by the frame ([`CheckpointedDensity`]).
//!
//! Autograd through the Gaussian parameters' tensor ops would keep every intermediate of every
//! pair (about 4 KB per pair in f64) until the backward. Instead the forward runs chunk by
//! chunk of destination targets without a graph, and the backward recomputes each chunk's
//! graph from its pairs' inputs (`r_ij` and the neighbour's precision row with `1/(a1 a2 a3)`:
//! ten numbers per pair), back-propagates the chunk's rows of the incoming gradient through
//! it, and drops it: gradient checkpointing. Kept for the backward: the inputs and their
//! gradients, `[P, 10]` each. The pairs of a chunk are taken in the order of the destination
//! index's transpose, so each target's pairs are summed in the same order as unchunked.

use crate::batched::BatchedBasis;
use crate::error::Result;
use crate::fused_cuda::{GatherIndex, TargetChunk};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, Var};
use std::ops::Range;
use std::sync::Arc;

/// Columns of a pair's input row: the neighbour's six precision entries and `1/(a1 a2 a3)`.
pub(super) const ORIENTATION_COLUMNS: usize = 7;

/// See the module documentation. Applied as `values.apply_op3(r, orientation, op)` with
/// `values` from [`CheckpointedDensity::evaluate`] (detached): the op passes `values` through
/// and gives `r` `[P, 3]` and `orientation` `[P, 7]` their gradients.
pub(super) struct CheckpointedDensity {
    basis: Arc<BatchedBasis>,
    /// Columns `K` of the density.
    n_cols: usize,
    /// The chunks, built once for the forward and the backward.
    chunks: Vec<Chunk>,
    /// `[P]` u32: the position of each pair in the destination's `perm`.
    inverse_perm: Tensor,
}

/// One chunk: its targets and, unless it has no pairs, its pairs (in `perm` order) with a
/// destination index relative to the chunk's first target.
struct Chunk {
    targets: Range<usize>,
    pairs: Option<(Tensor, GatherIndex)>,
}

impl CheckpointedDensity {
    /// Chunks of at most `chunk_pairs` pairs (a target with more is a chunk alone); `n_cols`
    /// the density's columns `K`.
    pub(super) fn new(
        basis: Arc<BatchedBasis>,
        n_cols: usize,
        destination: &GatherIndex,
        chunk_pairs: usize,
    ) -> Result<Self> {
        let mut inverse = vec![0u32; destination.n_rows];
        for (s, &q) in destination.host_perm.iter().enumerate() {
            inverse[q as usize] = s as u32;
        }
        let device = destination.perm.device().clone();
        let seg = &destination.host_seg;
        let chunks = destination
            .target_chunks(chunk_pairs)
            .into_iter()
            .map(|TargetChunk { targets, pairs }| -> Result<Chunk> {
                if pairs.is_empty() {
                    return Ok(Chunk {
                        targets,
                        pairs: None,
                    });
                }
                let local: Vec<usize> = targets
                    .clone()
                    .flat_map(|t| {
                        std::iter::repeat_n(t - targets.start, (seg[t + 1] - seg[t]) as usize)
                    })
                    .collect();
                let perm = destination.perm.narrow(0, pairs.start, pairs.len())?;
                let local = GatherIndex::new(&local, targets.len(), &device)?;
                Ok(Chunk {
                    targets,
                    pairs: Some((perm, local)),
                })
            })
            .collect::<Result<_>>()?;
        Ok(CheckpointedDensity {
            basis,
            n_cols,
            chunks,
            inverse_perm: Tensor::from_vec(inverse, destination.n_rows, &device)?,
        })
    }

    /// The density `[n_targets, K]` of pairs with inputs `r` `[P, 3]` and `orientation`
    /// `[P, 7]`, chunk by chunk, without a graph.
    pub(super) fn evaluate(&self, r: &Tensor, orientation: &Tensor) -> Result<Tensor> {
        let (r, orientation) = (r.detach(), orientation.detach());
        let k = self.n_cols;
        let mut rows = Vec::with_capacity(self.chunks.len());
        for chunk in &self.chunks {
            rows.push(match &chunk.pairs {
                Some((pairs, local)) => {
                    let (r_c, o_c) = (
                        r.index_select(pairs, 0)?,
                        orientation.index_select(pairs, 0)?,
                    );
                    self.chunk_density(&r_c, &o_c, local)?.detach()
                }
                None => Tensor::zeros((chunk.targets.len(), k), r.dtype(), r.device())?,
            });
        }
        if rows.is_empty() {
            return Ok(Tensor::zeros((0, k), r.dtype(), r.device())?);
        }
        Ok(Tensor::cat(&rows, 0)?)
    }

    fn chunk_density(
        &self,
        r: &Tensor,
        orientation: &Tensor,
        local: &GatherIndex,
    ) -> Result<Tensor> {
        let precision = orientation.narrow(1, 0, 6)?;
        let inv_product = orientation.narrow(1, 6, 1)?.squeeze(1)?;
        self.basis
            .differentiable_pair_density(&precision, &inv_product, r, local, usize::MAX)
    }

    /// Gradients `[P, 3]` and `[P, 7]` of `Σ grad_out ⊙ density` with respect to `r` and
    /// `orientation`, recomputing each chunk's graph.
    fn gradients(
        &self,
        r: &Tensor,
        orientation: &Tensor,
        grad_out: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let mut grads_r = Vec::with_capacity(self.chunks.len());
        let mut grads_o = Vec::with_capacity(self.chunks.len());
        for chunk in &self.chunks {
            let Some((pairs, local)) = &chunk.pairs else {
                continue;
            };
            let r_c = Var::from_tensor(&r.index_select(pairs, 0)?)?;
            let o_c = Var::from_tensor(&orientation.index_select(pairs, 0)?)?;
            let density = self.chunk_density(r_c.as_tensor(), o_c.as_tensor(), local)?;
            let upstream = grad_out.narrow(0, chunk.targets.start, chunk.targets.len())?;
            let grads = (density * upstream)?.sum_all()?.backward()?;
            for (v, out) in [(&r_c, &mut grads_r), (&o_c, &mut grads_o)] {
                out.push(match grads.get(v.as_tensor()) {
                    Some(g) => g.clone(),
                    None => v.as_tensor().zeros_like()?,
                });
            }
        }
        let (p, dtype, device) = (r.dim(0)?, r.dtype(), r.device());
        if grads_r.is_empty() {
            return Ok((
                Tensor::zeros((p, 3), dtype, device)?,
                Tensor::zeros((p, ORIENTATION_COLUMNS), dtype, device)?,
            ));
        }
        // The chunks hold the pairs in perm order; row q of the result is pair q's.
        let unpermute = |rows: Vec<Tensor>| -> Result<Tensor> {
            Ok(Tensor::cat(&rows, 0)?.index_select(&self.inverse_perm, 0)?)
        };
        Ok((unpermute(grads_r)?, unpermute(grads_o)?))
    }
}

impl CustomOp3 for CheckpointedDensity {
    fn name(&self) -> &'static str {
        "anisoap-checkpointed-density"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        // The values were computed by `evaluate`; the op only passes them on.
        match l1.contiguous_offsets() {
            Some((0, end)) if end == l1.shape().elem_count() => {
                Ok((s1.clone(), l1.shape().clone()))
            }
            _ => candle_core::bail!("anisoap-checkpointed-density: values must be contiguous"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        Ok((s1.try_clone(l1)?, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _values: &Tensor,
        r: &Tensor,
        orientation: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (g_r, g_o) = self
            .gradients(&r.detach(), &orientation.detach(), &grad_res.contiguous()?)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok((None, Some(g_r), Some(g_o)))
    }
}
