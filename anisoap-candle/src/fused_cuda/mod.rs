//! Fused CUDA kernels for the batched path: Gaussian parameters, moments and the sparse
//! contraction in one kernel, and a deterministic neighbour sum, behind Candle's `CustomOp3`
//! `cuda_fwd`.
//!
//! On CUDA the tensor-op path runs ~80 degree-by-degree passes over `[M, P]` per chunk and a
//! dense matmul with `B`. Here one thread per pair goes from the neighbour's precision row,
//! `1/(a1 a2 a3)` and `r_ij` to its `K` coefficients: the Gaussian parameters as
//! [`crate::batched::BatchedBasis::gaussian_parameters`] computes them, the moment recurrence of
//! [`crate::basis::monomials::recurrence_plan`] in that thread's column of shared memory, then
//! the contraction with the non-zero entries of `B` only (`kernels/pair_coefficients.cu`).
//! A second kernel sums the coefficients of each centre's pairs by neighbour type, one thread
//! per (centre, coefficient), in pair order (so the result is deterministic, unlike atomics).
//!
//! The kernels are compiled with NVRTC when the first CUDA basis is built (for the device's
//! compute capability) and loaded once per device. The tensor-op path stays the fallback
//! (`--tensor-op-moments`, a kernel that cannot be compiled or whose moments do not fit in
//! shared memory) and the oracle (tests/cuda_fused.rs compares both on a GPU).
//!
//! Without the `cuda` feature [`CudaKernels`] is an empty type that is never built.

#[cfg(feature = "cuda")]
pub(crate) use imp::load_module;
#[cfg(feature = "cuda")]
pub use imp::{CudaKernels, StagedPairs};
#[cfg(not(feature = "cuda"))]
pub use stub::{CudaKernels, StagedPairs};

/// The kernel source (CUDA C++, compiled at run time).
pub const SOURCE: &str = include_str!("../kernels/pair_coefficients.cu");

/// With `ANISOAP_CUDA_PROFILE=1`, waits for the device's queued work, so that the trace span
/// around a launch (`--trace`: `cuda_search`, `cuda_pair_coefficients`, `cuda_neighbor_sum`)
/// measures the kernel's device time instead of its launch. For profiling only: it serialises
/// host and device.
pub fn profile_sync(device: &candle_core::Device) -> crate::error::Result<()> {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var("ANISOAP_CUDA_PROFILE").is_ok_and(|v| v == "1")) {
        device.synchronize()?;
    }
    Ok(())
}

/// Rows summed by one thread of the power spectrum's partial-sum kernel
/// ([`CudaKernels::block_power_spectrum`]): segments are at most this long and never cross
/// frames.
pub const SEGMENT_ROWS: usize = 256;

/// The power spectrum of one centre block of a chunk, on the host
/// ([`CudaKernels::block_power_spectrum`]).
#[derive(Debug, Clone, PartialEq)]
pub enum BlockSpectrum {
    /// One row of features per block member, in member order.
    PerCenter(Vec<f64>),
    /// One row of features per segment: the sum of the segment's member rows, in order.
    Segments(Vec<f64>),
}

#[cfg(not(feature = "cuda"))]
mod stub {
    use crate::basis::monomials::RecurrenceStep;
    use crate::batched::{BatchedOptions, ParticleTensors};
    use crate::error::Result;
    use crate::system::{Pairs, System};
    use candle_core::Tensor;

    /// Built without CUDA: no value of this type exists.
    pub enum CudaKernels {}

    /// Built without CUDA: no value of this type exists.
    pub enum StagedPairs {}

    impl CudaKernels {
        /// Always `None` without the `cuda` feature.
        pub fn new(
            _plan: &[RecurrenceStep],
            _dense_b: &[f64],
            _n_cols: usize,
            _inv_width2: f64,
            _smooth_cutoff: [f64; 2],
            _options: &BatchedOptions,
        ) -> Result<Option<Self>> {
            Ok(None)
        }

        /// Never called (no value exists).
        pub fn pair_coefficients(
            &self,
            _precision: &Tensor,
            _inv_axes_product: &Tensor,
            _r: &Tensor,
        ) -> Result<Tensor> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn chunk_density(
            &self,
            _system: &System,
            _particles: &ParticleTensors,
            _centers: std::ops::Range<usize>,
            _pairs: &Pairs,
        ) -> Result<Tensor> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn threads_per_block(&self) -> u32 {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn stage(
            &self,
            _system: &System,
            _particles: &ParticleTensors,
            _centers: std::ops::Range<usize>,
            _pairs: &Pairs,
        ) -> Result<StagedPairs> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn gather_rows(&self, _src: &Tensor, _index: &super::GatherIndex) -> Result<Tensor> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn scatter_sum_rows(
            &self,
            _src: &Tensor,
            _index: &super::GatherIndex,
        ) -> Result<Tensor> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn differentiable_coefficients(&self, _params: &Tensor) -> Result<Option<Tensor>> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn pair_density(
            &self,
            _params: &Tensor,
            _destination: &super::GatherIndex,
            _chunk_pairs: usize,
        ) -> Result<Option<Tensor>> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn block_power_spectrum(
            &self,
            _basis: &crate::basis::Basis,
            _density: &Tensor,
            _members: &[u32],
            _slots: &[usize],
            _segments: Option<&[u32]>,
        ) -> Result<super::BlockSpectrum> {
            match *self {}
        }

        /// Never called (no value exists).
        pub fn density_of_staged(&self, staged: StagedPairs) -> Result<Tensor> {
            match staged {}
        }
    }

    impl StagedPairs {
        /// Never called (no value exists).
        pub fn neighbors_and_vectors(&self) -> Result<(Vec<u32>, Vec<f64>)> {
            match *self {}
        }
    }
}

pub mod baked;
mod gather;
pub mod ptx_cache;
pub use gather::{GatherIndex, TargetChunk};
#[cfg(feature = "cuda")]
mod imp;
