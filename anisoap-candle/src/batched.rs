//! The batched path: the descriptor as Candle tensor ops on any device and dtype.
//!
//! Pairs are processed in chunks of whole centres (contiguous centre ranges whose pair count
//! stays below `chunk_pairs`), so peak memory is bounded by the chunk size and each chunk
//! produces complete densities for its centres. Per chunk:
//! 1. gather the neighbours' precision matrices, form `A'`, its cofactor inverse, `μ`, `κ`
//!    and the scalar factor (element-wise ops over `[P]`);
//! 2. Cartesian moments degree by degree (`index_select` + multiply-adds);
//! 3. contraction with the packed matrix `B` (one matmul, with `ν` and `W` folded in);
//! 4. neighbour sum by type with `index_add`;
//! 5. power spectrum per centre type and channel as a batched Gram matrix, frame sums.

use crate::basis::monomials::{recurrence_plan, MonomialIndex};
use crate::basis::Basis;
use crate::error::{Error, Result};
use crate::fused_cuda::StagedPairs;
use crate::hypers::RadialBasis;
use crate::system::{Layout, Pairs, System};
use candle_core::{DType, Device, Tensor, D};

/// Where and how the batched path runs.
#[derive(Debug, Clone)]
pub struct BatchedOptions {
    /// Device holding all tensors.
    pub device: Device,
    /// Floating-point dtype of the computation (`F64` for fidelity, `F32` for speed).
    pub dtype: DType,
    /// Upper bound on pairs per chunk (a single centre with more pairs forms its own chunk).
    pub chunk_pairs: usize,
    /// On the CPU, run each chunk through the fused chunk kernel ([`crate::fused_density`])
    /// instead of degree-by-degree tensor ops (same numbers; much faster; no backward). On
    /// CUDA (built with the `cuda` feature) the same flag selects the fused CUDA kernels
    /// ([`crate::fused_cuda`]); `false` keeps the tensor ops everywhere (the oracle).
    pub fused_cpu_moments: bool,
    /// With the fused CUDA kernels, run the counting pass and find each chunk's pairs on the
    /// device ([`crate::cuda_search`]: the host's counts and pairs exactly, without the host
    /// search and the copy of the pairs); `false` counts and searches on the host and copies
    /// the pairs over. No effect on other devices or on the tensor-op path.
    pub cuda_neighbor_search: bool,
}

impl BatchedOptions {
    /// CPU, float64, 65 536 pairs per chunk.
    pub fn cpu_f64() -> Self {
        BatchedOptions {
            device: Device::Cpu,
            dtype: DType::F64,
            chunk_pairs: 1 << 16,
            fused_cpu_moments: true,
            cuda_neighbor_search: true,
        }
    }
}

/// One degree of the moment recurrence as index tensors.
struct DegreeStep {
    parent: Tensor,
    dir: Tensor,
    sigma_columns: Tensor,
    grandparents: Tensor,
    weights: Tensor,
    count: usize,
}

/// Constants of the batched path on the device.
pub struct BatchedBasis {
    contraction: Tensor,
    /// The whole-chunk CPU kernel (Gaussian parameters, moments, contraction, neighbour sum).
    fused_density: Option<crate::fused_density::FusedPairDensity>,
    /// The fused CUDA kernels (pair coefficients, neighbour sum), on CUDA devices.
    cuda: Option<crate::fused_cuda::CudaKernels>,
    /// The CUDA neighbour search kernel, with the fused CUDA kernels when
    /// `cuda_neighbor_search` is on.
    cuda_search: Option<crate::cuda_search::CudaSearchKernel>,
    steps: Vec<DegreeStep>,
    inv_width2: f64,
    /// The opt-in smooth cutoff and the cutoff radius ([`crate::cutoff`]).
    cutoff_function: crate::cutoff::CutoffFunction,
    cutoff_radius: f64,
    options: BatchedOptions,
}

fn u32_tensor(values: impl IntoIterator<Item = usize>, device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = values.into_iter().map(|x| x as u32).collect();
    let n = v.len();
    Ok(Tensor::from_vec(v, n, device)?)
}

fn float_tensor(values: Vec<f64>, shape: &[usize], options: &BatchedOptions) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, shape, &options.device)?.to_dtype(options.dtype)?)
}

impl BatchedBasis {
    /// Uploads `B` and the recurrence plan.
    pub fn new(basis: &Basis, options: &BatchedOptions) -> Result<Self> {
        if options.dtype != DType::F64 && options.dtype != DType::F32 {
            return Err(Error::Device(format!(
                "dtype {:?} is not supported; use f64 or f32",
                options.dtype
            )));
        }
        let device = &options.device;
        let dense_b = basis.contraction_matrix();
        let contraction = float_tensor(
            dense_b.clone(),
            &[basis.monomials.len(), basis.n_coefficients],
            options,
        )?;
        let plan = recurrence_plan(&basis.monomials);
        let mut steps = Vec::new();
        for d in 1..=basis.max_degree {
            let lo = MonomialIndex::degree_offset(d);
            let hi = MonomialIndex::degree_offset(d + 1);
            let part = &plan[lo - 1..hi - 1];
            let sigma_columns = (0..3)
                .flat_map(|j| part.iter().map(move |s| s.dir * 3 + j))
                .collect::<Vec<_>>();
            let grandparents = (0..3)
                .flat_map(|j| part.iter().map(move |s| s.grandparent[j]))
                .collect::<Vec<_>>();
            let weights = (0..3)
                .flat_map(|j| part.iter().map(move |s| s.weight[j] as f64))
                .collect::<Vec<_>>();
            let count = part.len();
            steps.push(DegreeStep {
                parent: u32_tensor(part.iter().map(|s| s.parent), device)?,
                dir: u32_tensor(part.iter().map(|s| s.dir), device)?,
                sigma_columns: u32_tensor(sigma_columns, device)?,
                grandparents: u32_tensor(grandparents, device)?,
                weights: float_tensor(weights, &[3 * count, 1], options)?,
                count,
            });
        }
        let inv_width2 = match basis.hypers.radial_basis {
            RadialBasis::Gto => {
                let w = basis.hypers.radial_gaussian_width.unwrap_or(1.0);
                1.0 / (w * w)
            }
            RadialBasis::Monomial => 0.0,
        };
        let fused_cpu = options.fused_cpu_moments && options.device.is_cpu();
        let fused_density = fused_cpu
            .then(|| crate::fused_density::FusedPairDensity::new(basis, &plan, inv_width2));
        let cuda = if options.fused_cpu_moments {
            crate::fused_cuda::CudaKernels::new(
                &plan,
                &dense_b,
                basis.n_coefficients,
                inv_width2,
                [
                    basis.hypers.cutoff_radius,
                    basis.hypers.cutoff_function.width(),
                ],
                options,
            )?
        } else {
            None
        };
        let cuda_search = if cuda.is_some() && options.cuda_neighbor_search {
            crate::cuda_search::CudaSearchKernel::new(options)?
        } else {
            None
        };
        Ok(BatchedBasis {
            contraction,
            fused_density,
            cuda,
            cuda_search,
            steps,
            inv_width2,
            cutoff_function: basis.hypers.cutoff_function,
            cutoff_radius: basis.hypers.cutoff_radius,
            options: options.clone(),
        })
    }

    /// The loaded CUDA neighbour search kernel (CUDA with the fused kernels and
    /// `cuda_neighbor_search` on).
    pub fn cuda_search_kernel(&self) -> Option<&crate::cuda_search::CudaSearchKernel> {
        self.cuda_search.as_ref()
    }

    /// Options this basis was built for.
    pub fn options(&self) -> &BatchedOptions {
        &self.options
    }

    /// Moments `m` `[M_D, P]` (monomial-major) of N(μ, Σ) from `mu` `[3, P]` and `sigma`
    /// `[9, P]`. The monomial-major layout makes every gather a copy of contiguous rows.
    pub fn moments(&self, mu: &Tensor, sigma: &Tensor) -> Result<Tensor> {
        let _span = tracing::trace_span!("moments").entered();
        let mut m = Tensor::ones((1, mu.dim(1)?), mu.dtype(), mu.device())?;
        for step in &self.steps {
            let lead = mu
                .index_select(&step.dir, 0)?
                .mul(&m.index_select(&step.parent, 0)?)?;
            // Σ_j Σ[dir][j] · parent_j · m[parent − e_j], summed j = 0, 1, 2 in order; the
            // weights are per-row scalars, applied to the gathered Σ rows.
            let terms = sigma
                .index_select(&step.sigma_columns, 0)?
                .broadcast_mul(&step.weights)?
                .mul(&m.index_select(&step.grandparents, 0)?)?;
            let n = step.count;
            let coupling = ((terms.narrow(0, 0, n)? + terms.narrow(0, n, n)?)?
                + terms.narrow(0, 2 * n, n)?)?;
            m = Tensor::cat(&[&m, &(lead + coupling)?], 0)?;
        }
        Ok(m)
    }

    /// Pair coefficients `[P, K]` from moments `[M_D, P]` and the scalar factor `[1, P]`:
    /// one matmul with the packed matrix `B` (radial normalisation and Löwdin folded in).
    pub fn contract(&self, moments: &Tensor, scale: &Tensor) -> Result<Tensor> {
        let _span = tracing::trace_span!("contraction").entered();
        Ok(moments
            .broadcast_mul(scale)?
            .t()?
            .matmul(&self.contraction)?)
    }

    /// The scalar factor `[1, P]` times the smooth cutoff `f(|r_ij|)` of each pair
    /// ([`crate::cutoff::CutoffFunction::factor_tensor`], differentiable in `r` `[P, 3]`);
    /// unchanged (the same tensor) for the original's step.
    pub fn smooth_cutoff(&self, scale: &Tensor, r: &Tensor) -> Result<Tensor> {
        match self.cutoff_function.factor_tensor(r, self.cutoff_radius)? {
            None => Ok(scale.clone()),
            Some(f) => Ok(scale.mul(&f.t()?)?),
        }
    }

    /// Normalised pair coefficients `[P, K]` from the neighbours' precision rows
    /// `[P, 6]` (a00, a01, a02, a11, a12, a22), `1/(a1 a2 a3)` `[P]` and `r_ij` `[P, 3]`.
    pub fn pair_coefficients(
        &self,
        precision: &Tensor,
        inv_axes_product: &Tensor,
        r: &Tensor,
    ) -> Result<Tensor> {
        if let Some(cuda) = &self.cuda {
            return cuda.pair_coefficients(precision, inv_axes_product, r);
        }
        self.tensor_op_pair_coefficients(precision, inv_axes_product, r)
    }

    /// [`BatchedBasis::pair_coefficients`] for autograd: with the fused CUDA kernels, the
    /// Gaussian parameters as tensor ops and the moments and contraction as one CUDA op with
    /// an analytic backward ([`crate::fused_cuda::CudaKernels::differentiable_coefficients`]);
    /// elsewhere (or when that op does not fit the basis) the tensor ops throughout. The fused
    /// forward of [`BatchedBasis::pair_coefficients`] has no backward.
    pub fn differentiable_pair_coefficients(
        &self,
        precision: &Tensor,
        inv_axes_product: &Tensor,
        r: &Tensor,
    ) -> Result<Tensor> {
        let Some(cuda) = &self.cuda else {
            return self.tensor_op_pair_coefficients(precision, inv_axes_product, r);
        };
        let params = self.parameter_rows(precision, inv_axes_product, r)?;
        match cuda.differentiable_coefficients(&params)? {
            Some(coefficients) => Ok(coefficients),
            None => self.tensor_op_pair_coefficients(precision, inv_axes_product, r),
        }
    }

    /// The density `[n_targets, K]` of the pairs' coefficients summed over `destination`
    /// (pair `q` into target `destination.index[q]`), differentiable, with the CUDA kernels
    /// (an error without them): the chunked fused op
    /// ([`crate::fused_cuda::CudaKernels::pair_density`], at most `chunk_pairs` pairs'
    /// coefficients at once), or the tensor-op coefficients and one scatter sum when that op
    /// does not fit the basis.
    pub fn differentiable_pair_density(
        &self,
        precision: &Tensor,
        inv_axes_product: &Tensor,
        r: &Tensor,
        destination: &crate::fused_cuda::GatherIndex,
        chunk_pairs: usize,
    ) -> Result<Tensor> {
        let Some(cuda) = &self.cuda else {
            return Err(Error::Device(
                "the chunked pair density needs the CUDA kernels".into(),
            ));
        };
        let params = self.parameter_rows(precision, inv_axes_product, r)?;
        match cuda.pair_density(&params, destination, chunk_pairs)? {
            Some(density) => Ok(density),
            None => {
                let coefficients =
                    self.tensor_op_pair_coefficients(precision, inv_axes_product, r)?;
                cuda.scatter_sum_rows(&coefficients, destination)
            }
        }
    }

    /// Gaussian parameter rows `[P, 10]` (`μ`, the six entries of `Σ`, the scale times the
    /// smooth cutoff) as the differentiable CUDA ops take them.
    fn parameter_rows(
        &self,
        precision: &Tensor,
        inv_axes_product: &Tensor,
        r: &Tensor,
    ) -> Result<Tensor> {
        let (mu, sigma, scale) = self.cutoff_gaussian_parameters(precision, inv_axes_product, r)?;
        let unique = u32_tensor([0, 1, 2, 4, 5, 8], sigma.device())?;
        Ok(Tensor::cat(&[&mu, &sigma.index_select(&unique, 0)?, &scale], 0)?.t()?)
    }

    /// The tensor-op pair coefficients (the oracle), whatever kernels are loaded.
    fn tensor_op_pair_coefficients(
        &self,
        precision: &Tensor,
        inv_axes_product: &Tensor,
        r: &Tensor,
    ) -> Result<Tensor> {
        let (mu, sigma, scale) = self.cutoff_gaussian_parameters(precision, inv_axes_product, r)?;
        let m = self.moments(&mu, &sigma)?;
        self.contract(&m, &scale)
    }

    /// [`BatchedBasis::gaussian_parameters`] with the scalar factor times the smooth cutoff.
    fn cutoff_gaussian_parameters(
        &self,
        precision: &Tensor,
        inv_axes_product: &Tensor,
        r: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (mu, sigma, scale) = {
            let _span = tracing::trace_span!("gaussian_parameters").entered();
            self.gaussian_parameters(precision, inv_axes_product, r)?
        };
        Ok((mu, sigma, self.smooth_cutoff(&scale, r)?))
    }

    /// True when chunks run through the whole-chunk CPU kernel ([`crate::fused_density`]),
    /// which reads per-particle data on the host.
    pub fn uses_fused_density(&self) -> bool {
        self.fused_density.is_some()
    }

    /// True when the fused CUDA kernels are in use.
    pub fn uses_cuda_kernels(&self) -> bool {
        self.cuda.is_some()
    }

    /// The fused CUDA kernels, when in use.
    pub fn cuda_kernels(&self) -> Option<&crate::fused_cuda::CudaKernels> {
        self.cuda.as_ref()
    }

    /// `μ` `[3, P]`, `Σ` `[9, P]` (row-major 3×3 entries) and the scalar factor `[1, P]` of
    /// every pair, from precision rows `[P, 6]`, `1/(a1 a2 a3)` `[P]` and `r_ij` `[P, 3]`.
    /// Everything is computed component-major, so each entry is a contiguous row.
    pub fn gaussian_parameters(
        &self,
        precision: &Tensor,
        inv_axes_product: &Tensor,
        r: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let precision = precision.t()?.contiguous()?;
        let r = r.t()?.contiguous()?;
        let row = |t: &Tensor, k: usize| t.narrow(0, k, 1);
        let (a00, a01, a02) = (
            row(&precision, 0)?,
            row(&precision, 1)?,
            row(&precision, 2)?,
        );
        let (a11, a12, a22) = (
            row(&precision, 3)?,
            row(&precision, 4)?,
            row(&precision, 5)?,
        );
        let s = self.inv_width2;
        let (b00, b11, b22) = if s != 0.0 {
            (
                a00.affine(1.0, s)?,
                a11.affine(1.0, s)?,
                a22.affine(1.0, s)?,
            )
        } else {
            (a00.clone(), a11.clone(), a22.clone())
        };
        let c00 = ((&b11 * &b22)? - (&a12 * &a12)?)?;
        let c01 = ((&a02 * &a12)? - (&a01 * &b22)?)?;
        let c02 = ((&a01 * &a12)? - (&a02 * &b11)?)?;
        let c11 = ((&b00 * &b22)? - (&a02 * &a02)?)?;
        let c12 = ((&a01 * &a02)? - (&b00 * &a12)?)?;
        let c22 = ((&b00 * &b11)? - (&a01 * &a01)?)?;
        let det = (((&b00 * &c00)? + (&a01 * &c01)?)? + (&a02 * &c02)?)?;
        let sigma = Tensor::cat(&[&c00, &c01, &c02, &c01, &c11, &c12, &c02, &c12, &c22], 0)?
            .broadcast_div(&det)?;
        let (rx, ry, rz) = (row(&r, 0)?, row(&r, 1)?, row(&r, 2)?);
        let inv_prod = inv_axes_product.unsqueeze(0)?;
        let scale_base = inv_prod.div(&det.sqrt()?)?;
        if s == 0.0 {
            return Ok((r, sigma, scale_base));
        }
        let sc = |k: usize| sigma.narrow(0, k, 1);
        let sr_x = (((sc(0)? * &rx)? + (sc(1)? * &ry)?)? + (sc(2)? * &rz)?)?;
        let sr_y = (((sc(3)? * &rx)? + (sc(4)? * &ry)?)? + (sc(5)? * &rz)?)?;
        let sr_z = (((sc(6)? * &rx)? + (sc(7)? * &ry)?)? + (sc(8)? * &rz)?)?;
        let ar_x = (((&a00 * &rx)? + (&a01 * &ry)?)? + (&a02 * &rz)?)?;
        let ar_y = (((&a01 * &rx)? + (&a11 * &ry)?)? + (&a12 * &rz)?)?;
        let ar_z = (((&a02 * &rx)? + (&a12 * &ry)?)? + (&a22 * &rz)?)?;
        let mu = Tensor::cat(
            &[
                (&rx - sr_x.affine(s, 0.0)?)?,
                (&ry - sr_y.affine(s, 0.0)?)?,
                (&rz - sr_z.affine(s, 0.0)?)?,
            ],
            0,
        )?;
        let kappa =
            ((((&sr_x * &ar_x)? + (&sr_y * &ar_y)?)? + (&sr_z * &ar_z)?)?).affine(s, 0.0)?;
        let scale = kappa.affine(-0.5, 0.0)?.exp()?.mul(&scale_base)?;
        Ok((mu, sigma, scale))
    }
}

/// Type slots as the `u32` the device kernels index with, each checked below `n_types` (so
/// that a kernel indexing a `[.., n_types, ..]` output with them stays inside it).
pub(crate) fn checked_type_slots(slots: &[usize], n_types: usize) -> Result<Vec<u32>> {
    use rayon::prelude::*;
    slots
        .par_iter()
        .map(|&t| {
            (t < n_types)
                .then_some(t as u32)
                .ok_or_else(|| Error::Device("particle type slot out of range".into()))
        })
        .collect()
}

/// Device-side per-particle data of a system.
pub struct ParticleTensors {
    /// `[N, 6]` upper triangle of each precision matrix.
    pub precision: Tensor,
    /// `[N]` `1/(a1 a2 a3)`.
    pub inv_axes_product: Tensor,
    /// `[N]` u32: index into `layout.types` of each particle's type (every value checked
    /// below the number of types), gathered per pair on the device by the CUDA kernels.
    pub type_slots: Tensor,
}

impl ParticleTensors {
    /// No per-particle data (for kernels that read it on the host).
    pub fn empty(options: &BatchedOptions) -> Result<Self> {
        // Made in the target dtype directly: an f64 -> f32 cast of an empty tensor launches a
        // zero-size grid on CUDA, which the driver refuses (CUDA_ERROR_INVALID_VALUE).
        let (dtype, device) = (options.dtype, &options.device);
        Ok(ParticleTensors {
            precision: Tensor::zeros((0, 6), dtype, device)?,
            inv_axes_product: Tensor::zeros(0, dtype, device)?,
            type_slots: Tensor::zeros(0, DType::U32, device)?,
        })
    }

    /// Uploads per-particle data.
    pub fn new(system: &System, options: &BatchedOptions) -> Result<Self> {
        let p = &system.particles;
        let precision: Vec<f64> = p.precision_rows().into_flattened();
        let inv: Vec<f64> = p.inverse_axes_products();
        let n_types = system.layout.types.len();
        let type_slots = checked_type_slots(&system.type_slots, n_types)?;
        Ok(ParticleTensors {
            precision: float_tensor(precision, &[p.len(), 6], options)?,
            inv_axes_product: float_tensor(inv, &[p.len()], options)?,
            type_slots: Tensor::from_vec(type_slots, p.len(), &options.device)?,
        })
    }
}

/// Normalised density of the centres `centers`, from their `pairs`: `[C, n_types, K]`.
///
/// The neighbour sum is an `index_add` on the CPU. On GPUs, candle's `index_add` kernel walks
/// the index list serially per output column, so there the sum is a padded batched matmul
/// instead ([`padded_neighbor_sum`]); both are tested to agree.
pub fn chunk_density(
    basis: &BatchedBasis,
    system: &System,
    particles: &ParticleTensors,
    centers: std::ops::Range<usize>,
    pairs: &Pairs,
    n_coefficients: usize,
) -> Result<Tensor> {
    chunk_density_staged(
        basis,
        system,
        particles,
        centers,
        pairs,
        None,
        n_coefficients,
    )
}

/// The part of [`chunk_density`] that can run ahead of the device, on the chunk loop's search
/// thread: on CUDA the pair data staged and copied to the device ([`StagedPairs`]); `None` on
/// the other paths (nothing to do ahead) and for chunks without pairs.
pub fn stage_chunk(
    basis: &BatchedBasis,
    system: &System,
    particles: &ParticleTensors,
    centers: std::ops::Range<usize>,
    pairs: &Pairs,
) -> Result<Option<StagedPairs>> {
    match &basis.cuda {
        Some(cuda) if !pairs.is_empty() => Ok(Some(cuda.stage(system, particles, centers, pairs)?)),
        _ => Ok(None),
    }
}

/// [`chunk_density`] of a chunk [`stage_chunk`] may already have staged.
pub fn chunk_density_staged(
    basis: &BatchedBasis,
    system: &System,
    particles: &ParticleTensors,
    centers: std::ops::Range<usize>,
    pairs: &Pairs,
    staged: Option<StagedPairs>,
    n_coefficients: usize,
) -> Result<Tensor> {
    let options = basis.options();
    let device = &options.device;
    let n_types = system.layout.types.len();
    let n_centers = centers.len();
    if let (Some(cuda), Some(staged)) = (&basis.cuda, staged) {
        return cuda.density_of_staged(staged);
    }
    if pairs.is_empty() {
        return Ok(Tensor::zeros(
            (n_centers, n_types, n_coefficients),
            options.dtype,
            device,
        )?);
    }
    if let Some(kernel) = &basis.fused_density {
        return fused_chunk_density(kernel, options, system, centers, pairs);
    }
    if let Some(cuda) = &basis.cuda {
        return cuda.chunk_density(system, particles, centers, pairs);
    }
    let neighbors = u32_tensor(pairs.neighbors.iter().copied(), device)?;
    let r: Vec<f64> = pairs.vectors.iter().flatten().copied().collect();
    let r = float_tensor(r, &[pairs.len(), 3], options)?;
    let coefficients = basis.pair_coefficients(
        &particles.precision.index_select(&neighbors, 0)?,
        &particles.inv_axes_product.index_select(&neighbors, 0)?,
        &r,
    )?;
    let _span = tracing::trace_span!("neighbor_sum").entered();
    let type_slots: Vec<usize> = pairs
        .neighbors
        .iter()
        .map(|&j| system.type_slots[j])
        .collect();
    // The padded form allocates [C, W, K] with W the most pairs of any centre: when the
    // centres' pair counts are very uneven that is many times the pairs themselves, so it is
    // used only while the padding stays within 4× the pair rows.
    let padded_rows = padded_rows(pairs, &centers);
    if device.is_cpu() || padded_rows.is_none_or(|rows| rows > 4 * pairs.len()) {
        index_add_neighbor_sum(&coefficients, pairs, &type_slots, centers, n_types)
    } else {
        padded_neighbor_sum(&coefficients, pairs, &type_slots, centers, n_types)
    }
}

/// `C × W` of the padded neighbour sum (centres × most pairs of any centre), `None` if it
/// overflows.
fn padded_rows(pairs: &Pairs, centers: &std::ops::Range<usize>) -> Option<usize> {
    let mut counts = vec![0usize; centers.len()];
    let mut width = 1;
    for &i in &pairs.centers {
        let c = &mut counts[i - centers.start];
        *c += 1;
        width = width.max(*c);
    }
    centers.len().checked_mul(width)
}

/// The whole chunk through the fused CPU kernel ([`crate::fused_density`]): geometry rows of
/// every pair built on the host from the system's per-particle data, then one custom op.
fn fused_chunk_density(
    kernel: &crate::fused_density::FusedPairDensity,
    options: &BatchedOptions,
    system: &System,
    centers: std::ops::Range<usize>,
    pairs: &Pairs,
) -> Result<Tensor> {
    use crate::fused_density::GEOMETRY_COLUMNS;
    let _span = tracing::trace_span!("fused_pair_density").entered();
    let n_types = system.layout.types.len();
    let particles = &system.particles;
    let mut geometry = Vec::with_capacity(pairs.len() * GEOMETRY_COLUMNS);
    let mut dest = Vec::with_capacity(pairs.len());
    for ((&i, &j), r) in pairs
        .centers
        .iter()
        .zip(&pairs.neighbors)
        .zip(&pairs.vectors)
    {
        let a = &particles.precision[j];
        let s = particles.semi_axes[j];
        geometry.extend_from_slice(&[
            a[0][0],
            a[0][1],
            a[0][2],
            a[1][1],
            a[1][2],
            a[2][2],
            1.0 / (s[0] * s[1] * s[2]),
            r[0],
            r[1],
            r[2],
        ]);
        dest.push(((i - centers.start) * n_types + system.type_slots[j]) as u32);
    }
    let p = pairs.len();
    let geometry = float_tensor(geometry, &[p, GEOMETRY_COLUMNS], options)?;
    let dest = Tensor::from_vec(dest, p, &options.device)?;
    let op = kernel.for_chunk(centers.len(), n_types);
    let k = op.n_rows / n_types.max(1);
    let density = geometry.apply_op2_no_bwd(&dest, &op)?;
    let k_len = density.dim(1)?;
    debug_assert_eq!(k, centers.len());
    Ok(density.reshape((centers.len(), n_types, k_len))?)
}

/// Neighbour sum `[C, n_types, K]` of pair coefficients `[P, K]` with `index_add`.
pub fn index_add_neighbor_sum(
    coefficients: &Tensor,
    pairs: &Pairs,
    type_slots: &[usize],
    centers: std::ops::Range<usize>,
    n_types: usize,
) -> Result<Tensor> {
    let k = coefficients.dim(1)?;
    let destination = u32_tensor(
        pairs
            .centers
            .iter()
            .zip(type_slots)
            .map(|(&i, &t)| (i - centers.start) * n_types + t),
        coefficients.device(),
    )?;
    let density = Tensor::zeros(
        (centers.len() * n_types, k),
        coefficients.dtype(),
        coefficients.device(),
    )?
    .index_add(&destination, coefficients, 0)?;
    Ok(density.reshape((centers.len(), n_types, k))?)
}

/// Neighbour sum `[C, n_types, K]` as dense GPU-friendly ops: the (centre-sorted) pair rows are
/// gathered into a zero-padded `[C, W, K]` block (W = most pairs of any centre), and a batched
/// matmul with a one-hot neighbour-type mask `[C, n_types, W]` sums them by type.
pub fn padded_neighbor_sum(
    coefficients: &Tensor,
    pairs: &Pairs,
    type_slots: &[usize],
    centers: std::ops::Range<usize>,
    n_types: usize,
) -> Result<Tensor> {
    let (p, k) = coefficients.dims2()?;
    let n_centers = centers.len();
    let mut counts = vec![0usize; n_centers];
    for &i in &pairs.centers {
        counts[i - centers.start] += 1;
    }
    let width = counts.iter().copied().max().unwrap_or(0).max(1);
    // Gather index into [coefficients; zero row], and the one-hot type mask.
    let mut gather = vec![p as u32; n_centers * width];
    let mut mask = vec![0.0f64; n_centers * n_types * width];
    let mut filled = vec![0usize; n_centers];
    for (q, (&i, &t)) in pairs.centers.iter().zip(type_slots).enumerate() {
        let c = i - centers.start;
        let w = filled[c];
        filled[c] += 1;
        gather[c * width + w] = q as u32;
        mask[(c * n_types + t) * width + w] = 1.0;
    }
    let device = coefficients.device();
    let dtype = coefficients.dtype();
    let padded = Tensor::cat(&[coefficients, &Tensor::zeros((1, k), dtype, device)?], 0)?;
    let gather = Tensor::from_vec(gather, n_centers * width, device)?;
    let blocks = padded
        .index_select(&gather, 0)?
        .reshape((n_centers, width, k))?;
    let mask = Tensor::from_vec(mask, (n_centers, n_types, width), device)?.to_dtype(dtype)?;
    Ok(mask.matmul(&blocks)?)
}

/// Density of the centres `local` (indices into the chunk's density `[C, n_types, K]`) of
/// centre block `b`, channel by channel in the original's value layout: for each `l`, a tensor
/// `[C_t, 2l+1, N_l E_t]` with columns `p = n E_t + e` over the block's neighbour types.
pub fn block_channels(
    basis: &Basis,
    layout: &Layout,
    density: &Tensor,
    local: &Tensor,
    b: usize,
) -> Result<Vec<Tensor>> {
    let slots = u32_tensor(layout.neighbor_slots[b].iter().copied(), density.device())?;
    let e_t = layout.neighbor_slots[b].len();
    let selected = density.index_select(local, 0)?.index_select(&slots, 1)?;
    let c_t = selected.dim(0)?;
    basis
        .n_radial
        .iter()
        .enumerate()
        .map(|(l, &n_l)| {
            Ok(selected
                .narrow(2, basis.channel_offsets[l], (2 * l + 1) * n_l)?
                .reshape((c_t, e_t, 2 * l + 1, n_l))?
                .permute((0, 2, 3, 1))?
                .contiguous()?
                .reshape((c_t, 2 * l + 1, n_l * e_t))?)
        })
        .collect()
}

/// Per-centre power spectrum `[C_t, F_t]` of the centres `local` (indices into the chunk's
/// density) of centre block `b`: per channel the Gram matrix `(-1)^l/sqrt(2l+1) cᵀc`.
pub fn block_power_spectrum(
    basis: &Basis,
    layout: &Layout,
    density: &Tensor,
    local: &Tensor,
    b: usize,
) -> Result<Tensor> {
    let _span = tracing::trace_span!("power_spectrum").entered();
    let mut parts = Vec::with_capacity(basis.n_radial.len());
    for (l, x) in block_channels(basis, layout, density, local, b)?
        .into_iter()
        .enumerate()
    {
        let (c_t, _, width) = x.dims3()?;
        let sign = if l % 2 == 0 { 1.0 } else { -1.0 };
        let factor = sign / ((2 * l + 1) as f64).sqrt();
        let gram = x.transpose(1, 2)?.contiguous()?.matmul(&x)?;
        parts.push(gram.affine(factor, 0.0)?.reshape((c_t, width * width))?);
    }
    Ok(Tensor::cat(&parts, D::Minus1)?)
}
