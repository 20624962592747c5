//! [`GatherIndex`]: a row index with its transpose (rows grouped by target, stable), for the
//! deterministic gather and scatter-sum ops of the differentiable CUDA path
//! ([`crate::fused_cuda::CudaKernels::gather_rows`], [`crate::fused_cuda::CudaKernels::scatter_sum_rows`]).
//! Candle's CUDA `index_add` (the backward of `index_select`, and the neighbour sum) runs one
//! thread per column over the whole index list; these run one thread per output element.

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};

/// `index[q]` (each below `n_targets`) on the device, with `perm` (the rows `q` grouped by
/// `index[q]`, ascending within a group) and `seg` (`[n_targets + 1]` group starts in `perm`).
#[derive(Debug, Clone)]
// The tensors are read by the CUDA kernels only (`cuda` feature).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub struct GatherIndex {
    /// `[P]` u32.
    pub(crate) index: Tensor,
    /// `[P]` u32.
    pub(crate) perm: Tensor,
    /// `[n_targets + 1]` u32.
    pub(crate) seg: Tensor,
    /// `[P]` u32: `index[perm[s]]`, the target of each position of `perm`.
    pub(crate) sorted_targets: Tensor,
    /// `seg` on the host (the chunks of [`crate::fused_cuda::CudaKernels::pair_density`]).
    pub(crate) host_seg: std::sync::Arc<Vec<u32>>,
    /// `perm` on the host.
    pub(crate) host_perm: std::sync::Arc<Vec<u32>>,
    /// Number of rows `P`.
    pub(crate) n_rows: usize,
    /// Number of targets.
    pub(crate) n_targets: usize,
}

impl GatherIndex {
    /// Builds the index and its transpose (a counting sort on the host) and uploads them.
    pub fn new(index: &[usize], n_targets: usize, device: &Device) -> Result<Self> {
        let too_large = || Error::TooLarge("a gather index needs 32-bit rows and targets".into());
        if u32::try_from(index.len()).is_err() || u32::try_from(n_targets).is_err() {
            return Err(too_large());
        }
        if let Some(&bad) = index.iter().find(|&&t| t >= n_targets) {
            return Err(Error::Device(format!(
                "gather index {bad} outside {n_targets} targets"
            )));
        }
        let mut seg = vec![0u32; n_targets + 1];
        for &t in index {
            seg[t + 1] += 1;
        }
        for t in 0..n_targets {
            seg[t + 1] += seg[t];
        }
        let mut fill = seg.clone();
        let mut perm = vec![0u32; index.len()];
        for (q, &t) in index.iter().enumerate() {
            perm[fill[t] as usize] = q as u32;
            fill[t] += 1;
        }
        let index32: Vec<u32> = index.iter().map(|&t| t as u32).collect();
        let sorted_targets: Vec<u32> = perm.iter().map(|&q| index32[q as usize]).collect();
        let n = index.len();
        Ok(GatherIndex {
            index: Tensor::from_vec(index32, n, device)?,
            perm: Tensor::from_vec(perm.clone(), n, device)?,
            host_perm: std::sync::Arc::new(perm),
            seg: Tensor::from_vec(seg.clone(), n_targets + 1, device)?,
            sorted_targets: Tensor::from_vec(sorted_targets, n, device)?,
            host_seg: std::sync::Arc::new(seg),
            n_rows: n,
            n_targets,
        })
    }

    /// Number of rows `P`.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of targets.
    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    /// Consecutive target ranges `[t0, t1)` covering all targets, each with at most
    /// `max_rows` rows (`perm` positions `seg[t0] .. seg[t1]`) unless one target alone has
    /// more; empty when there are no targets.
    pub fn target_chunks(&self, max_rows: usize) -> Vec<TargetChunk> {
        let seg = &self.host_seg;
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < self.n_targets {
            let mut end = start + 1;
            while end < self.n_targets && (seg[end + 1] - seg[start]) as usize <= max_rows {
                end += 1;
            }
            chunks.push(TargetChunk {
                targets: start..end,
                pairs: seg[start] as usize..seg[end] as usize,
            });
            start = end;
        }
        chunks
    }
}

/// One chunk of [`GatherIndex::target_chunks`]: consecutive targets and their rows' positions
/// in `perm` (the rows of these targets and no others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChunk {
    /// Targets `t0 .. t1`.
    pub targets: std::ops::Range<usize>,
    /// Positions `seg[t0] .. seg[t1]` of `perm`.
    pub pairs: std::ops::Range<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The transpose lists every row once, grouped by target, ascending within a group.
    #[test]
    fn transpose_groups_rows_by_target() {
        let index = [2usize, 0, 2, 1, 0, 2];
        let g = GatherIndex::new(&index, 4, &Device::Cpu).unwrap();
        assert_eq!(g.seg.to_vec1::<u32>().unwrap(), vec![0, 2, 3, 6, 6]);
        assert_eq!(g.perm.to_vec1::<u32>().unwrap(), vec![1, 4, 3, 0, 2, 5]);
        assert_eq!(
            g.sorted_targets.to_vec1::<u32>().unwrap(),
            vec![0, 0, 1, 2, 2, 2]
        );
        // Targets 0 (2 rows), 1 (1), 2 (3), 3 (0): chunks of at most 3 rows; target 2 alone
        // fills one, the empty target 3 joins it.
        let targets = |max: usize| -> Vec<_> {
            g.target_chunks(max)
                .into_iter()
                .map(|c| c.targets)
                .collect()
        };
        assert_eq!(targets(3), vec![0..2, 2..4]);
        assert_eq!(targets(1), vec![0..1, 1..2, 2..3, 3..4]);
        assert_eq!(targets(100), vec![0..4]);
        let pairs: Vec<_> = g.target_chunks(1).into_iter().map(|c| c.pairs).collect();
        assert_eq!(pairs, vec![0..2, 2..3, 3..6, 6..6]);
        assert!(GatherIndex::new(&[4], 4, &Device::Cpu).is_err());
    }
}
