//! Candle's `CustomOp3` side of the fused CUDA kernels: the pair-coefficient op
//! ([`CudaKernels`] itself) and the neighbour sum, their input checks and launches.

use super::{CudaKernels, FloatTables};
use candle_core::cuda_backend::cudarc::driver::CudaView;
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{CpuStorage, CustomOp3, Layout, Shape};

/// A contiguous storage's `len` elements as a view (`what` names it in errors).
pub(super) fn view<'a, T: CudaDType>(
    storage: &'a CudaStorage,
    layout: &Layout,
    what: &str,
    len: usize,
) -> candle_core::Result<CudaView<'a, T>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("anisoap-cuda: {what} must be contiguous");
    };
    if end - start != len {
        candle_core::bail!(
            "anisoap-cuda: {what} has {} elements, expected {len}",
            end - start
        );
    }
    Ok(storage.as_cuda_slice::<T>()?.slice(start..end))
}

impl CustomOp3 for CudaKernels {
    fn name(&self) -> &'static str {
        "anisoap-cuda-pair-coefficients"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("anisoap-cuda-pair-coefficients runs on CUDA devices only")
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let p = l2.shape().elem_count();
        if l1.shape().dims() != [p, 6] || l3.shape().dims() != [p, 3] {
            candle_core::bail!(
                "anisoap-cuda: expected precision [P, 6], inv [P], r [P, 3], got {:?} {:?} {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        if u32::try_from(p).is_err() {
            candle_core::bail!("anisoap-cuda: too many pairs in one call");
        }
        let dev = &s1.device;
        let storage = with_float_tables!(&self.tables, |T, t| {
            let inputs = [
                view::<T>(s1, l1, "precision", 6 * p)?,
                view::<T>(s2, l2, "inv_axes_product", p)?,
                view::<T>(s3, l3, "r", 3 * p)?,
            ];
            CudaStorage::wrap_cuda_slice(self.launch_pairs(dev, inputs, t, p)?, dev.clone())
        });
        Ok((storage, Shape::from((p, self.n_cols as usize))))
    }
}

/// The neighbour sum of one chunk: `coef [P, K]`, `seg [C + 1]` (u32), `slot [P]` (u32)
/// -> `[C n_types, K]`.
pub(super) struct NeighborSum<'a> {
    pub(super) kernels: &'a CudaKernels,
    pub(super) n_centers: usize,
    pub(super) n_types: usize,
}

impl CustomOp3 for NeighborSum<'_> {
    fn name(&self) -> &'static str {
        "anisoap-cuda-neighbor-sum"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("anisoap-cuda-neighbor-sum runs on CUDA devices only")
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let k = self.kernels.n_cols as usize;
        let p = l3.shape().elem_count();
        let (c, t) = (self.n_centers, self.n_types);
        if l1.shape().dims() != [p, k] || l2.shape().elem_count() != c + 1 {
            candle_core::bail!("anisoap-cuda: neighbour sum inputs have the wrong shapes");
        }
        let dev = &s1.device;
        let seg = view::<u32>(s2, l2, "segments", c + 1)?;
        let slot = view::<u32>(s3, l3, "slots", p)?;
        let storage = with_float_tables!(&self.kernels.tables, |T, tables| {
            let coef = view::<T>(s1, l1, "coefficients", p * k)?;
            let out = self
                .kernels
                .launch_sum(dev, (coef, seg, slot), &tables.sum_fn, c, t)?;
            CudaStorage::wrap_cuda_slice(out, dev.clone())
        });
        Ok((storage, Shape::from((c * t, k))))
    }
}
