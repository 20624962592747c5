//! The descriptor as a differentiable function of tensors: forces and torques by autograd.
//!
//! [`Calculator`](crate::Calculator) takes frames and returns host matrices. This module
//! builds the same per-centre power spectrum from **tensors** (on any Candle device) with
//! every step that depends on positions, orientations or semi-axes written as Candle ops
//! that have a backward pass in candle 0.11. Positions, quaternions and semi-axes may be
//! [`candle_core::Var`]s, so `loss.backward()` yields `∂loss/∂positions` (minus the forces of
//! a model energy), `∂loss/∂quaternions` (torques) and `∂loss/∂semi_axes`, and the descriptor
//! can be embedded in a Candle model.
//!
//! # Pipeline
//!
//! 1. **Neighbour list on the host** ([`DifferentiableDescriptor::neighbors`]): the positions
//!    are detached and copied to the host, [`neighbors::neighbor_list`] finds all pairs
//!    (featomic's full list, self pairs unless `subtract_center_contribution`), and the pairs
//!    are stored as `u32` centre and neighbour index tensors plus the constant displacement
//!    `S · cell` of their integer cell shifts `S`. The pair set is piecewise constant in the
//!    positions, so it carries no gradient.
//! 2. **`r_ij = pos[j] - pos[i] + S·cell`** with `index_select`: gradients flow to positions.
//! 3. **Orientation** ([`rotation_matrices`], [`precision_rows`]): quaternions `(w, x, y, z)`
//!    are normalised, turned into `R` with scipy's formula (§1.2 of the maths notes), and
//!    `A = R diag(a⁻²) Rᵀ` is formed element-wise: gradients flow to quaternions and semi-axes.
//!    Only the direction of a quaternion matters, so its gradient is orthogonal to it.
//! 4. Pair coefficients and neighbour sum by `(centre, neighbour type)`. On the CPU (default):
//!    one fused op, [`FusedFrameDensity`] (per-particle rows in, density out, the pair list
//!    inside), whose analytic backward (Gaussian-moment identities, chain rule through `A'⁻¹`,
//!    `κ`, the smooth cutoff and the strain) gives the gradients without any `[P, ·]` tensor
//!    in the graph. On CUDA (default with the fused CUDA kernels): the Gaussian parameters as
//!    tensor ops, then moments and contraction as one CUDA op with an analytic backward
//!    ([`BatchedBasis::differentiable_pair_coefficients`]), and `index_add`. Elsewhere, or with
//!    [`DifferentiableDescriptor::with_fused_kernel`]`(false)` (the oracle):
//!    [`BatchedBasis::pair_coefficients`] as tensor ops and `index_add`.
//!    Then the power spectrum per centre type with [`batched::block_power_spectrum`].
//!
//! Every tensor op used (`index_select`, `index_add`, `narrow`, `cat`, `reshape`, `permute`,
//! `transpose`, `contiguous`, `matmul`, `sum`, `broadcast_*`, `affine`, `sqrt`, `exp`, `sqr`,
//! `+ - * /`) has a backward in candle-core 0.11. The fused op has no second derivatives.
//!
//! # Output
//!
//! [`DifferentiableDescriptor::power_spectrum`] returns one row per particle, `[N, F]`, in the
//! column layout of [`Quantity::PowerSpectrumPerCenter`](crate::Quantity) for one frame: the
//! centre-type blocks side by side, each row filled in its own centre type's block and zero
//! elsewhere. With [`SpeciesLayout::FromPairs`] the blocks and neighbour-type columns are those
//! the original derives from the pair list (so the values equal the calculator's to rounding);
//! with [`SpeciesLayout::Fixed`] every listed type is a centre block and a neighbour column,
//! so the width stays the same whatever the configuration (what a model needs). Particles
//! that are not samples (no pair at all, only possible with `subtract_center_contribution`)
//! get a zero row, where the calculator omits the row. [`TensorNeighbors::frame_mean`] gives
//! the original's per-frame mean `[1, F]`.
//!
//! # The cutoff
//!
//! The original has **no smooth cutoff** (§3): a neighbour's whole Gaussian counts while its
//! centre is strictly inside `r_c`, and vanishes when it crosses. The descriptor is therefore
//! discontinuous: when a neighbour crosses `r_c` the density of the centre jumps by exactly
//! that pair's coefficients, and the power spectrum by the corresponding change of its
//! quadratic form. The gradient computed here is the gradient of the smooth piece with the
//! current pair list (the jump contributes a Dirac term that no autograd can represent), so a
//! model energy built on these features is not conservative across crossings: expect energy
//! jumps in MD. With the GTO basis the contribution of a pair at `r_c` carries the radial
//! weight `e^{-r²/2σ²}` and is small when `r_c ≫ σ`; with the monomial basis it is not small.
//!
//! The opt-in smooth cutoff (`hypers.cutoff_function = ShiftedCosine { width }`,
//! [`crate::cutoff`]; a departure from the original) removes the jump: each pair's coefficients
//! are multiplied by `f(|r_ij|)`, built here from differentiable Candle ops
//! ([`BatchedBasis::smooth_cutoff`]), so `f` and `f'` are continuous at `r_c` and the forces
//! of a model energy see the smoothing (tests/smooth_cutoff.rs checks them against finite
//! differences inside the smoothing zone).
//!
//! # Example
//!
//! A linear model energy `E = Σ_i w · X_i`, its position gradient and the forces `-∂E/∂x`:
//!
//! ```
//! use anisoap_candle::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
//! use anisoap_candle::synthetic::{generate_frame, SyntheticSpec, SystemKind};
//! use anisoap_candle::Hypers;
//! use candle_core::{DType, Device, Tensor, Var};
//!
//! let spec = SyntheticSpec { kind: SystemKind::EllipsoidLiquid, n_particles: 6, n_species: 2,
//!     periodic: true, density: 0.2, seed: 3 };
//! let frame = generate_frame(&spec, 0);
//! let hypers = Hypers::gto(3, 3.0, 1.0);
//! let descriptor = DifferentiableDescriptor::new(&hypers, &Device::Cpu, DType::F64).unwrap();
//! let inputs = FrameTensors::from_frame(&frame, "c_q", &Device::Cpu, DType::F64).unwrap();
//!
//! let positions = Var::from_tensor(&inputs.positions).unwrap();
//! let quaternions = Var::from_tensor(&inputs.quaternions).unwrap();
//! let neighbors = descriptor
//!     .neighbors(&positions, &inputs.types, &inputs.cell, inputs.pbc,
//!                &SpeciesLayout::Fixed(vec![1, 6]))
//!     .unwrap();
//! let features = descriptor
//!     .power_spectrum(&positions, &quaternions, &inputs.semi_axes, &neighbors)
//!     .unwrap(); // [N, F]
//! let n_features = features.dim(1).unwrap();
//! let weights = Tensor::randn(0.0f64, 1.0, (n_features, 1), &Device::Cpu).unwrap();
//! let energy = features.matmul(&weights).unwrap().sum_all().unwrap();
//! let grads = energy.backward().unwrap();
//! let forces = grads.get(&positions).unwrap().neg().unwrap(); // [N, 3]
//! let dq = grads.get(&quaternions).unwrap(); // [N, 4]
//! assert_eq!(forces.dims(), &[6, 3]);
//! assert_eq!(dq.dims(), &[6, 4]);
//! // The total force vanishes (translation invariance).
//! let total = forces.sum(0).unwrap().to_vec1::<f64>().unwrap();
//! assert!(total.iter().all(|f| f.abs() < 1e-10));
//! ```

use crate::basis::monomials::recurrence_plan;
use crate::basis::Basis;
use crate::batched::{self, BatchedBasis, BatchedOptions};
use crate::error::{Error, Result};
use crate::fused_density::{
    particle_rows, FramePairs, FusedFrameDensity, FusedPairDensity, PARTICLE_COLUMNS,
};
use crate::hypers::Hypers;
use crate::neighbors;
use crate::reference;
use crate::system::Layout;
use candle_core::{DType, Device, Tensor};

mod checkpoint;
mod inputs;
pub use inputs::{precision_rows, rotation_matrices, FrameTensors};

/// Which centre blocks and neighbour-type columns the output has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeciesLayout {
    /// As the original: types present in the frame; a centre block for every type that centres
    /// a pair; neighbour-type columns for the pair types that occur. The width can change
    /// when pairs appear or disappear.
    FromPairs,
    /// Every listed type (sorted, deduplicated) is a centre block and a neighbour-type column of
    /// every block, whether or not it occurs: a fixed width, as a model needs. Every particle
    /// type must be listed.
    Fixed(Vec<i32>),
}

/// A frame's pair list and output layout, computed on the host, as device tensors.
///
/// Valid for the positions it was built from (and any displacement that moves no pair across
/// the cutoff); rebuild it when the particles move.
#[derive(Debug, Clone)]
pub struct TensorNeighbors {
    /// `u32 [P]` centre `i` of each pair.
    pub centers: Tensor,
    /// `u32 [P]` neighbour `j` of each pair.
    pub neighbors: Tensor,
    /// `[P, 3]` constant displacement `S · cell` of each pair's cell shift.
    pub shift_vectors: Tensor,
    /// Integer cell shift `S` of each pair (host).
    pub cell_shifts: Vec<[i32; 3]>,
    /// Host copy of the centres.
    pub host_centers: Vec<usize>,
    /// Host copy of the neighbours.
    pub host_neighbors: Vec<usize>,
    /// Blocks, neighbour-type columns and samples of the output.
    pub layout: Layout,
    /// `u32 [P]` row of each pair in the `[N · n_types, K]` density: `i · n_types + slot(t_j)`.
    destination: Tensor,
    /// The pair list as the fused CPU frame op reads it (empty on other devices).
    frame_pairs: std::sync::Arc<FramePairs>,
    /// For each centre block: `u32` indices of the particles of that type.
    block_members: Vec<Option<Tensor>>,
    /// Samples per centre block.
    block_counts: Vec<usize>,
    n_particles: usize,
    /// On CUDA with the fused kernels: the pairs' centre, neighbour and destination indices
    /// with their transposes, for the deterministic gathers and neighbour sum.
    cuda_gather: Option<CudaGather>,
}

/// [`TensorNeighbors`]' indices for the differentiable CUDA path
/// ([`crate::fused_cuda::GatherIndex`]).
#[derive(Debug, Clone)]
struct CudaGather {
    centers: crate::fused_cuda::GatherIndex,
    neighbors: crate::fused_cuda::GatherIndex,
    destination: crate::fused_cuda::GatherIndex,
}

impl TensorNeighbors {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.host_centers.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.host_centers.is_empty()
    }

    /// Number of particles of the frame.
    pub fn n_particles(&self) -> usize {
        self.n_particles
    }

    /// Column offset of each centre block and the total width `F` of a power-spectrum row.
    pub fn power_spectrum_offsets(&self) -> (Vec<usize>, usize) {
        self.layout
            .block_offsets(|b| self.layout.power_spectrum_width(b))
    }

    /// Number of sample centres of each centre block (the divisors of the per-frame mean).
    pub fn block_counts(&self) -> &[usize] {
        &self.block_counts
    }

    /// The original's per-frame mean `[1, F]` of a per-centre power spectrum `[N, F]`: each
    /// centre block averaged over the sample centres of its type (a block without samples
    /// stays zero). Differentiable.
    pub fn frame_mean(&self, per_center: &Tensor) -> Result<Tensor> {
        let (offsets, total) = self.power_spectrum_offsets();
        let mut scale = vec![0.0; total];
        for (b, &offset) in offsets.iter().enumerate() {
            let count = self.block_counts[b];
            if count > 0 {
                let width = self.layout.power_spectrum_width(b);
                scale[offset..offset + width].fill(1.0 / count as f64);
            }
        }
        let scale = Tensor::from_vec(scale, (1, total), per_center.device())?
            .to_dtype(per_center.dtype())?;
        Ok(per_center.sum_keepdim(0)?.broadcast_mul(&scale)?)
    }
}

/// The fused CPU kernel of `basis` (dilation shift `1/σ²` for GTO, 0 for monomials).
fn fused_kernel(basis: &Basis) -> FusedPairDensity {
    let h = &basis.hypers;
    let shift = reference::dilation_shift(h.radial_basis, h.radial_gaussian_width);
    FusedPairDensity::new(basis, &recurrence_plan(&basis.monomials), shift)
}

/// Builds AniSOAP features from tensors, differentiably (see the module documentation).
pub struct DifferentiableDescriptor {
    basis: Basis,
    batched: BatchedBasis,
    options: BatchedOptions,
    /// On the CPU: the fused pair kernel with its analytic backward
    /// ([`crate::fused_density`]); `None` runs the tensor ops (the oracle).
    fused: Option<FusedPairDensity>,
    /// On CUDA, the basis with the fused CUDA kernels: its differentiable pair op
    /// ([`BatchedBasis::differentiable_pair_coefficients`]) has an analytic backward; `None`
    /// runs the tensor ops (the oracle).
    cuda: Option<std::sync::Arc<BatchedBasis>>,
    /// Pairs per chunk of the CUDA neighbour sum (`None`: [`PAIR_CHUNK_BYTES`] of pair
    /// coefficients).
    pair_chunk: Option<usize>,
}

/// Bytes of per-pair values (coefficients and the Gaussian parameters' graph) the CUDA
/// neighbour sum of [`DifferentiableDescriptor::density`] holds at once: the chunk that
/// bounds its memory (`differentiable/checkpoint.rs`).
pub const PAIR_CHUNK_BYTES: usize = 1 << 30;

/// Values per pair of the Gaussian parameters' graph in a chunk's backward (measured: about
/// 4 KB per pair in f64 before chunking).
const PAIR_GRAPH_VALUES: usize = 512;

/// The smallest default chunk (pairs), so that a chunk fills the device.
const MIN_PAIR_CHUNK: usize = 1 << 14;

/// The basis with the fused CUDA kernels on `options.device`, when it is a CUDA device and they
/// load.
fn cuda_kernels(
    basis: &Basis,
    options: &BatchedOptions,
) -> Result<Option<std::sync::Arc<BatchedBasis>>> {
    if !options.device.is_cuda() {
        return Ok(None);
    }
    let fused = BatchedOptions {
        fused_cpu_moments: true,
        ..options.clone()
    };
    let batched = BatchedBasis::new(basis, &fused)?;
    Ok(batched
        .uses_cuda_kernels()
        .then(|| std::sync::Arc::new(batched)))
}

impl DifferentiableDescriptor {
    /// Validates `hypers`, builds the basis constants and uploads them to `device` in `dtype`
    /// (`F64` or `F32`). Only quaternion orientations are supported.
    pub fn new(hypers: &Hypers, device: &Device, dtype: DType) -> Result<Self> {
        let basis = Basis::new(hypers)?;
        let options = BatchedOptions {
            device: device.clone(),
            dtype,
            chunk_pairs: usize::MAX,
            fused_cpu_moments: false,
            cuda_neighbor_search: true,
        };
        let batched = BatchedBasis::new(&basis, &options)?;
        let fused = device.is_cpu().then(|| fused_kernel(&basis));
        let cuda = cuda_kernels(&basis, &options)?;
        Ok(DifferentiableDescriptor {
            basis,
            batched,
            options,
            fused,
            cuda,
            pair_chunk: None,
        })
    }

    /// Pairs per chunk of the CUDA neighbour sum (forward and backward hold the coefficients
    /// and the Gaussian parameters' graph of this many pairs at once, not of all pairs); the
    /// default holds about [`PAIR_CHUNK_BYTES`].
    /// The density does not depend on it (the sums run in the same order). No effect on other
    /// devices (the fused CPU op chunks by itself) or with the tensor-op oracle.
    pub fn with_pair_chunk(mut self, pairs: usize) -> Self {
        self.pair_chunk = Some(pairs.max(1));
        self
    }

    /// With `on = false`, pair coefficients and neighbour sum run as Candle tensor ops (the
    /// autograd oracle) instead of the fused CPU op with its analytic backward, or on CUDA the
    /// fused moments-and-contraction op with its analytic backward, which
    /// [`DifferentiableDescriptor::new`] selects. Both give the same values and gradients to
    /// rounding (`tests/fused_backward.rs`, `tests/cuda_fused.rs`); only the tensor ops have
    /// second derivatives. `on = true` has no effect on other devices.
    pub fn with_fused_kernel(mut self, on: bool) -> Self {
        if !on {
            self.fused = None;
            self.cuda = None;
        } else {
            if self.fused.is_none() && self.options.device.is_cpu() {
                self.fused = Some(fused_kernel(&self.basis));
            }
            if self.cuda.is_none() {
                self.cuda = cuda_kernels(&self.basis, &self.options).ok().flatten();
            }
        }
        self
    }

    /// True when pairs run through a fused kernel with an analytic backward (the CPU frame op,
    /// or the CUDA moments-and-contraction op).
    pub fn uses_fused_kernel(&self) -> bool {
        self.fused.is_some() || self.cuda.is_some()
    }

    /// The basis constants.
    pub fn basis(&self) -> &Basis {
        &self.basis
    }

    /// The device the descriptor was built for.
    pub fn device(&self) -> &Device {
        &self.options.device
    }

    /// The dtype the descriptor was built for.
    pub fn dtype(&self) -> DType {
        self.options.dtype
    }

    /// Computes the pair list of one frame on the host from the (detached) `positions` `[N, 3]`
    /// and builds the index tensors and the output layout. `cell` (rows a, b, c) is used only
    /// when some `pbc` is true.
    pub fn neighbors(
        &self,
        positions: &Tensor,
        types: &[i32],
        cell: &[[f64; 3]; 3],
        pbc: [bool; 3],
        species: &SpeciesLayout,
    ) -> Result<TensorNeighbors> {
        let hypers = &self.basis.hypers;
        let device = &self.options.device;
        let host: Vec<[f64; 3]> = positions
            .detach()
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?
            .into_iter()
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        let n = host.len();
        if types.len() != n {
            return Err(Error::Frame {
                frame: 0,
                message: format!("{} types for {n} positions", types.len()),
            });
        }
        let periodic = pbc.iter().any(|&p| p);
        let (cell, pbc) = if periodic {
            (*cell, pbc)
        } else {
            ([[0.0; 3]; 3], [false; 3])
        };
        let list = neighbors::neighbor_list(
            &host,
            &cell,
            pbc,
            hypers.cutoff_radius,
            !hypers.subtract_center_contribution,
        )?;
        let layout = self.layout(types, &list, species)?;
        let n_types = layout.types.len();
        let u32s = |v: Vec<u32>| -> Result<Tensor> {
            let len = v.len();
            Ok(Tensor::from_vec(v, len, device)?)
        };
        let destination: Vec<u32> = list
            .centers
            .iter()
            .zip(&list.neighbors)
            .map(|(&i, &j)| (i * n_types + layout.type_slot(types[j])) as u32)
            .collect();
        let shift_vectors: Vec<f64> = list
            .shifts
            .iter()
            .flat_map(|s| {
                (0..3).map(move |d| {
                    (0..3)
                        .map(|k| s[k] as f64 * cell[k][d])
                        .fold(0.0, |acc, v| acc + v)
                })
            })
            .collect();
        let mut block_members = Vec::new();
        let mut block_counts = Vec::new();
        for &t in &layout.center_types {
            let members: Vec<u32> = (0..n)
                .filter(|&i| types[i] == t)
                .map(|i| i as u32)
                .collect();
            block_counts.push(
                (0..n)
                    .filter(|&i| types[i] == t && layout.is_sample[i])
                    .count(),
            );
            block_members.push(if members.is_empty() {
                None
            } else {
                Some(u32s(members)?)
            });
        }
        let n_pairs = list.len();
        let frame_pairs = std::sync::Arc::new(if device.is_cpu() {
            FramePairs {
                centers: list.centers.iter().map(|&i| i as u32).collect(),
                neighbors: list.neighbors.iter().map(|&j| j as u32).collect(),
                shifts: shift_vectors
                    .chunks(3)
                    .map(|s| [s[0], s[1], s[2]])
                    .collect(),
                dest: destination.clone(),
            }
        } else {
            FramePairs::default()
        });
        let cuda_gather = match &self.cuda {
            Some(_) => {
                use crate::fused_cuda::GatherIndex;
                let dest: Vec<usize> = destination.iter().map(|&d| d as usize).collect();
                Some(CudaGather {
                    centers: GatherIndex::new(&list.centers, n, device)?,
                    neighbors: GatherIndex::new(&list.neighbors, n, device)?,
                    destination: GatherIndex::new(&dest, n * n_types, device)?,
                })
            }
            None => None,
        };
        Ok(TensorNeighbors {
            cuda_gather,
            centers: u32s(list.centers.iter().map(|&i| i as u32).collect())?,
            neighbors: u32s(list.neighbors.iter().map(|&j| j as u32).collect())?,
            shift_vectors: Tensor::from_vec(shift_vectors, (n_pairs, 3), device)?
                .to_dtype(self.options.dtype)?,
            cell_shifts: list.shifts,
            host_centers: list.centers,
            host_neighbors: list.neighbors,
            destination: u32s(destination)?,
            frame_pairs,
            block_members,
            block_counts,
            layout,
            n_particles: n,
        })
    }

    fn layout(
        &self,
        types: &[i32],
        list: &neighbors::PairList,
        species: &SpeciesLayout,
    ) -> Result<Layout> {
        let mut is_sample = vec![false; types.len()];
        for &i in &list.centers {
            is_sample[i] = true;
        }
        let n_radial = self.basis.n_radial.clone();
        match species {
            SpeciesLayout::FromPairs => {
                let mut all = types.to_vec();
                all.sort_unstable();
                all.dedup();
                let slot = |t: i32| all.binary_search(&t).expect("known type");
                let mut seen = vec![vec![false; all.len()]; all.len()];
                for (&i, &j) in list.centers.iter().zip(&list.neighbors) {
                    seen[slot(types[i])][slot(types[j])] = true;
                }
                Ok(Layout::from_pair_keys(all, &seen, n_radial, is_sample, 1))
            }
            SpeciesLayout::Fixed(list_types) => {
                let mut all = list_types.clone();
                all.sort_unstable();
                all.dedup();
                if let Some(t) = types.iter().find(|t| all.binary_search(t).is_err()) {
                    return Err(Error::Frame {
                        frame: 0,
                        message: format!("particle type {t} is not in the fixed species list"),
                    });
                }
                let e = all.len();
                Ok(Layout {
                    center_types: all.clone(),
                    neighbor_slots: vec![(0..e).collect(); e],
                    types: all,
                    n_radial,
                    is_sample,
                    n_frames: 1,
                })
            }
        }
    }

    /// Pair vectors `r_ij = pos[j] - pos[i] + S·cell` `[P, 3]` (differentiable in `positions`).
    pub fn pair_vectors(&self, positions: &Tensor, neighbors: &TensorNeighbors) -> Result<Tensor> {
        let xj = positions.index_select(&neighbors.neighbors, 0)?;
        let xi = positions.index_select(&neighbors.centers, 0)?;
        Ok(((xj - xi)? + &neighbors.shift_vectors)?)
    }

    /// Normalised density coefficients `[N, n_types, K]` (columns of `K` in the
    /// [`Basis::column`] layout, types as in `neighbors.layout.types`), differentiable in
    /// positions `[N, 3]`, quaternions `[N, 4]` and semi-axes `[N, 3]`.
    pub fn density(
        &self,
        positions: &Tensor,
        quaternions: &Tensor,
        semi_axes: &Tensor,
        neighbors: &TensorNeighbors,
    ) -> Result<Tensor> {
        self.density_impl(positions, quaternions, semi_axes, neighbors, None)
    }

    /// [`DifferentiableDescriptor::density`] of the frame under a homogeneous strain `ε`
    /// `[3, 3]`: every pair vector becomes `(I + ε) r_ij` (centres move with the strain,
    /// orientations and shapes stay rigid, as in a molecular virial). Evaluated at `ε = 0` (a
    /// zero `Var`), the gradient of an energy with respect to `strain` is `∂E/∂ε =
    /// Σ_pairs (∂E/∂r_ij) ⊗ r_ij`; the virial stress is that divided by the cell volume.
    pub fn density_with_strain(
        &self,
        positions: &Tensor,
        quaternions: &Tensor,
        semi_axes: &Tensor,
        neighbors: &TensorNeighbors,
        strain: &Tensor,
    ) -> Result<Tensor> {
        if strain.dims() != [3, 3] {
            return Err(Error::Frame {
                frame: 0,
                message: format!("strain has shape {:?}, expected [3, 3]", strain.dims()),
            });
        }
        self.density_impl(positions, quaternions, semi_axes, neighbors, Some(strain))
    }

    fn density_impl(
        &self,
        positions: &Tensor,
        quaternions: &Tensor,
        semi_axes: &Tensor,
        neighbors: &TensorNeighbors,
        strain: Option<&Tensor>,
    ) -> Result<Tensor> {
        let n = neighbors.n_particles;
        for (name, t, cols) in [
            ("positions", positions, 3),
            ("quaternions", quaternions, 4),
            ("semi_axes", semi_axes, 3),
        ] {
            if t.dims() != [n, cols] {
                return Err(Error::Frame {
                    frame: 0,
                    message: format!("{name} has shape {:?}, expected [{n}, {cols}]", t.dims()),
                });
            }
            if t.dtype() != self.options.dtype || !t.device().same_device(&self.options.device) {
                return Err(Error::Device(format!(
                    "{name} is {:?} on {:?}; the descriptor was built for {:?} on {:?}",
                    t.dtype(),
                    t.device(),
                    self.options.dtype,
                    self.options.device
                )));
            }
        }
        let n_types = neighbors.layout.types.len();
        let k = self.basis.n_coefficients;
        let zeros = Tensor::zeros((n * n_types, k), self.options.dtype, &self.options.device)?;
        if neighbors.is_empty() {
            return Ok(zeros.reshape((n, n_types, k))?);
        }
        if let Some(kernel) = &self.fused {
            // The fused frame op: positions and orientation rows in, density out; its backward
            // gives the gradients of positions, quaternions, semi-axes and strain analytically.
            let orientations = Tensor::cat(&[quaternions, semi_axes], 1)?;
            let host = orientations.detach().to_dtype(DType::F64)?.flatten_all()?;
            let rows = particle_rows(&host.to_vec1::<f64>()?);
            self.check_dilations(rows.chunks(PARTICLE_COLUMNS), neighbors)?;
            let strain_input = match strain {
                Some(e) => e.to_dtype(self.options.dtype)?.contiguous()?,
                None => Tensor::zeros((3, 3), self.options.dtype, &self.options.device)?,
            };
            let op = FusedFrameDensity::new(
                kernel.for_chunk(n, n_types),
                neighbors.frame_pairs.clone(),
                strain.is_some(),
            );
            return Ok(positions
                .contiguous()?
                .apply_op3(&orientations, &strain_input, op)?
                .reshape((n, n_types, k))?);
        }
        let (precision, inv_product) = precision_rows(&rotation_matrices(quaternions)?, semi_axes)?;
        let rows = precision.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
        self.check_dilations(rows.iter().map(|r| r.as_slice()), neighbors)?;
        // On CUDA, gathers and the neighbour sum run as deterministic ops whose backward is
        // parallel over its outputs (`fused_cuda::GatherIndex`): candle's CUDA `index_add`
        // (the neighbour sum, and the backward of every `index_select` by pair) runs one thread
        // per column over all pairs.
        let gather = match (&self.cuda, &neighbors.cuda_gather) {
            (Some(cuda), Some(g)) => cuda.cuda_kernels().map(|kernels| (cuda, kernels, g)),
            _ => None,
        };
        let mut r = match gather {
            Some((_, kernels, g)) => {
                ((kernels.gather_rows(positions, &g.neighbors)?
                    - kernels.gather_rows(positions, &g.centers)?)?
                    + &neighbors.shift_vectors)?
            }
            None => self.pair_vectors(positions, neighbors)?,
        };
        if let Some(strain) = strain {
            // Row vectors: ((I + ε) r)ᵀ = rᵀ + rᵀ εᵀ.
            let strain = strain.to_dtype(r.dtype())?;
            r = (&r + r.matmul(&strain.t()?)?)?;
        }
        if let Some((cuda, kernels, g)) = gather {
            let precision_j = kernels.gather_rows(&precision, &g.neighbors)?;
            let inv_j = kernels
                .gather_rows(&inv_product.unsqueeze(1)?, &g.neighbors)?
                .squeeze(1)?;
            let chunk = self.pair_chunk.unwrap_or_else(|| {
                let elem = self.options.dtype.size_in_bytes();
                (PAIR_CHUNK_BYTES / ((k + PAIR_GRAPH_VALUES) * elem)).max(MIN_PAIR_CHUNK)
            });
            let orientation = Tensor::cat(&[&precision_j, &inv_j.unsqueeze(1)?], 1)?;
            let op = checkpoint::CheckpointedDensity::new(cuda.clone(), k, &g.destination, chunk)?;
            let values = op.evaluate(&r, &orientation)?;
            return Ok(values
                .apply_op3(&r.contiguous()?, &orientation, op)?
                .reshape((n, n_types, k))?);
        }
        let (precision_j, inv_j) = (
            precision.index_select(&neighbors.neighbors, 0)?,
            inv_product.index_select(&neighbors.neighbors, 0)?,
        );
        let coefficients = match &self.cuda {
            Some(cuda) => cuda.differentiable_pair_coefficients(&precision_j, &inv_j, &r)?,
            None => self.batched.pair_coefficients(&precision_j, &inv_j, &r)?,
        };
        Ok(zeros
            .index_add(&neighbors.destination, &coefficients, 0)?
            .reshape((n, n_types, k))?)
    }

    /// The original's singularity rule (and finiteness), as the calculator applies it: every
    /// particle that is some pair's neighbour must have a usable `A' = A + I/σ²`
    /// ([`reference::singular_dilation`]), from the host precision rows (6 leading entries used).
    fn check_dilations<'a>(
        &self,
        rows: impl Iterator<Item = &'a [f64]>,
        neighbors: &TensorNeighbors,
    ) -> Result<()> {
        let hypers = &self.basis.hypers;
        let shift = reference::dilation_shift(hypers.radial_basis, hypers.radial_gaussian_width);
        let rows: Vec<&[f64]> = rows.collect();
        let mut checked = vec![false; rows.len()];
        for (&i, &j) in neighbors.host_centers.iter().zip(&neighbors.host_neighbors) {
            if std::mem::replace(&mut checked[j], true) {
                continue;
            }
            let a = &rows[j];
            let matrix = [[a[0], a[1], a[2]], [a[1], a[3], a[4]], [a[2], a[4], a[5]]];
            let det = reference::dilation_matrix(&matrix, shift).2;
            if let Some(message) = reference::singular_dilation(det) {
                return Err(Error::Frame {
                    frame: 0,
                    message: format!("pair (centre {i}, neighbour {j}): {message}"),
                });
            }
        }
        Ok(())
    }

    /// Per-centre power spectrum `[N, F]` in the layout of
    /// [`Quantity::PowerSpectrumPerCenter`](crate::Quantity) for one frame (see the module
    /// documentation), differentiable in positions, quaternions and semi-axes.
    pub fn power_spectrum(
        &self,
        positions: &Tensor,
        quaternions: &Tensor,
        semi_axes: &Tensor,
        neighbors: &TensorNeighbors,
    ) -> Result<Tensor> {
        let density = self.density(positions, quaternions, semi_axes, neighbors)?;
        self.power_spectrum_of_density(&density, neighbors)
    }

    /// Per-centre power spectrum `[N, F]` of a density `[N, n_types, K]` from
    /// [`DifferentiableDescriptor::density`].
    pub fn power_spectrum_of_density(
        &self,
        density: &Tensor,
        neighbors: &TensorNeighbors,
    ) -> Result<Tensor> {
        let n = neighbors.n_particles;
        let (offsets, total) = neighbors.power_spectrum_offsets();
        let (dtype, device) = (density.dtype(), density.device());
        let mut out = Tensor::zeros((n, total), dtype, device)?;
        for (b, members) in neighbors.block_members.iter().enumerate() {
            let Some(members) = members else { continue };
            let block =
                batched::block_power_spectrum(&self.basis, &neighbors.layout, density, members, b)?;
            let (rows, width) = block.dims2()?;
            let mut parts = Vec::with_capacity(3);
            if offsets[b] > 0 {
                parts.push(Tensor::zeros((rows, offsets[b]), dtype, device)?);
            }
            parts.push(block);
            let right = total - offsets[b] - width;
            if right > 0 {
                parts.push(Tensor::zeros((rows, right), dtype, device)?);
            }
            let padded = Tensor::cat(&parts, 1)?;
            out = out.index_add(members, &padded, 0)?;
        }
        Ok(out)
    }
}
