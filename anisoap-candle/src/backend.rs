//! Backends as types: each one turns a chunk of centres (and their pairs) into output rows.
//!
//! [`ChunkBackend`] is the one interface the chunk loop ([`crate::descriptor::Calculator`])
//! drives; [`ReferenceBackend`] (plain f64, pair by pair: the oracle) and [`CandleBackend`]
//! (batched Candle ops on one device, CPU/CUDA/Metal, f64/f32) implement it. A calculator on
//! several devices simply holds several `CandleBackend`s. Both backends apply the same checks
//! (singular dilation matrices when the system is prepared, non-finite features here) with the
//! same messages.

use crate::basis::Basis;
use crate::batched::{self, BatchedBasis, BatchedOptions, ParticleTensors};
use crate::counting::PairCounter;
use crate::cuda_search::{CudaNeighborSearch, CudaPairCounter};
use crate::descriptor::Quantity;
use crate::error::{Error, Result};
use crate::fused_cuda::StagedPairs;
use crate::reference;
use crate::system::{Layout, Pairs, System};
use candle_core::{DType, Tensor};
use std::ops::Range;

/// Where each centre's row goes: block offsets and widths of the output, and the output row
/// of every sample centre. Built once per prepared system.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    /// What is computed.
    pub quantity: Quantity,
    /// Column offset of each centre block.
    pub offsets: Vec<usize>,
    /// Columns of a full row.
    pub width: usize,
    /// Output row of each particle in a per-centre output (`usize::MAX`: not a sample).
    pub row_of: Vec<usize>,
    /// Number of sample centres.
    pub n_samples: usize,
}

impl OutputPlan {
    /// The plan of `quantity` for `system`.
    pub fn new(system: &System, quantity: Quantity) -> Self {
        let layout = &system.layout;
        let (offsets, width) = layout.block_offsets(|b| block_width(layout, quantity, b));
        let mut row_of = vec![usize::MAX; system.particles.len()];
        let mut n_samples = 0;
        for (i, row) in row_of.iter_mut().enumerate() {
            if layout.is_sample[i] {
                *row = n_samples;
                n_samples += 1;
            }
        }
        OutputPlan {
            quantity,
            offsets,
            width,
            row_of,
            n_samples,
        }
    }

    /// True for outputs with one row per centre.
    pub fn per_center(&self) -> bool {
        self.quantity != Quantity::PowerSpectrumMean
    }
}

/// Width of centre block `b` for `quantity`.
pub fn block_width(layout: &Layout, quantity: Quantity, b: usize) -> usize {
    match quantity {
        Quantity::Density => layout.density_width(b),
        _ => layout.power_spectrum_width(b),
    }
}

/// What one chunk produced, on the host.
#[derive(Debug, Clone, PartialEq)]
pub enum ChunkOutput {
    /// Full rows (`plan.width` columns, zeros outside the centre's block) of the chunk's sample
    /// centres, in centre order.
    Rows(Vec<f64>),
    /// Per-frame sums of the chunk's centre rows, for frames `first_frame..` (one full row
    /// each, up to the chunk's last frame).
    FrameSums {
        /// Frame (index in the system) of the first row.
        first_frame: usize,
        /// Row-major sums.
        values: Vec<f64>,
    },
}

/// A backend prepared for one system: computes chunk after chunk. `Sync` because the chunk
/// loop's search thread stages the next chunk ([`ChunkRunner::stage`]) while another thread
/// computes the current one.
pub trait ChunkRunner: Sync {
    /// Whether [`ChunkRunner::stage`] and [`ChunkRunner::chunk`] need each chunk's pairs from
    /// the host's neighbour search (`false`: the runner finds them itself, on its device, and
    /// receives empty [`Pairs`]).
    fn host_pairs(&self) -> bool {
        true
    }

    /// The part of a chunk that needs none of the device's earlier results (on CUDA: staging
    /// the pair data and copying it to the device), run on the search thread one chunk
    /// ahead of [`ChunkRunner::chunk`], which then receives it. `None`: nothing to do ahead.
    fn stage(&self, _centers: &Range<usize>, _pairs: &Pairs) -> Result<Option<StagedPairs>> {
        Ok(None)
    }

    /// Output of the centres `centers` (a range of [`System::center_chunks`]) from their
    /// `pairs` (and what [`ChunkRunner::stage`] prepared for them, if anything).
    fn chunk(
        &self,
        centers: Range<usize>,
        pairs: &Pairs,
        staged: Option<StagedPairs>,
        plan: &OutputPlan,
    ) -> Result<ChunkOutput>;
}

/// One implementation of the descriptor. `Send + Sync` so that several (one per device) can
/// work on the chunks of one system from their own threads.
pub trait ChunkBackend: Send + Sync {
    /// `reference`, `candle-cpu`, `candle-cuda:0`, ...
    fn name(&self) -> String;
    /// Largest number of pairs per chunk.
    fn chunk_pairs(&self) -> usize;
    /// Uploads what the chunks of `system` share (per-particle data) and returns the runner.
    fn prepare<'s>(&'s self, system: &'s System<'s>) -> Result<Box<dyn ChunkRunner + 's>>;

    /// A counting pass on this backend's device for [`System::with_counter`] (`None`: the
    /// host counts).
    fn pair_counter(&self) -> Option<&dyn PairCounter> {
        None
    }
}

/// The error for a centre whose features are not finite (never written out).
pub fn non_finite_features(system: &System, i: usize) -> Error {
    let f = system.particles.frame[i];
    Error::Frame {
        frame: f,
        message: format!(
            "particle {}: its features are not finite (NaN or infinite): positions, semi-axes \
             or hypers are too extreme for the floating-point type in use",
            i - system.particles.frame_start[f]
        ),
    }
}

/// Where a chunk's output goes: its first frame, the output row of its first sample, and the
/// zeroed rows (one per sample for per-centre outputs, one per frame spanned otherwise).
struct ChunkTarget {
    first_frame: usize,
    first_row: Option<usize>,
    out: Vec<f64>,
}

/// The sample centres of `centers` of centre type `t`, in order (one centre block's rows).
fn block_members(system: &System, plan: &OutputPlan, centers: &Range<usize>, t: i32) -> Vec<usize> {
    centers
        .clone()
        .filter(|&i| plan.row_of[i] != usize::MAX && system.particles.types[i] == t)
        .collect()
}

impl ChunkTarget {
    /// Copies per-centre rows (`width` features each, the block at column `offset`) of the
    /// sample centres `members` into their output rows (per-centre outputs only).
    fn write_center_rows(
        &mut self,
        plan: &OutputPlan,
        members: &[usize],
        offset: usize,
        width: usize,
        rows: &[f64],
    ) {
        let first = self.first_row.expect("a sample in the chunk");
        for (k, row) in rows.chunks(width).enumerate() {
            let start = (plan.row_of[members[k]] - first) * plan.width + offset;
            self.out[start..start + width].copy_from_slice(row);
        }
    }

    fn new(system: &System, centers: &Range<usize>, plan: &OutputPlan) -> Self {
        let (first_frame, n_frames) = frame_span(system, centers);
        let samples = centers.clone().filter(|&i| plan.row_of[i] != usize::MAX);
        let first_row = samples.clone().next().map(|i| plan.row_of[i]);
        let n_rows = if plan.per_center() {
            samples.count()
        } else {
            n_frames
        };
        ChunkTarget {
            first_frame,
            first_row,
            out: vec![0.0; n_rows * plan.width],
        }
    }

    /// Adds the features of sample centre `i` (its block `b`) to its row: its own row for
    /// per-centre outputs, its frame's sum otherwise. Non-finite features are refused.
    fn add(
        &mut self,
        system: &System,
        plan: &OutputPlan,
        i: usize,
        b: usize,
        features: &[f64],
    ) -> Result<()> {
        if features.iter().any(|v| !v.is_finite()) {
            return Err(non_finite_features(system, i));
        }
        let target = if plan.per_center() {
            plan.row_of[i] - self.first_row.expect("a sample in the chunk")
        } else {
            system.particles.frame[i] - self.first_frame
        };
        let start = target * plan.width + plan.offsets[b];
        for (v, x) in self.out[start..start + features.len()]
            .iter_mut()
            .zip(features)
        {
            *v += x;
        }
        Ok(())
    }

    /// The chunk's output.
    fn finish(self, plan: &OutputPlan) -> ChunkOutput {
        if plan.per_center() {
            ChunkOutput::Rows(self.out)
        } else {
            ChunkOutput::FrameSums {
                first_frame: self.first_frame,
                values: self.out,
            }
        }
    }
}

/// Frames spanned by the centres `centers`: (first frame, number of frames).
fn frame_span(system: &System, centers: &Range<usize>) -> (usize, usize) {
    let first = system.particles.frame[centers.start];
    let last = system.particles.frame[centers.end - 1];
    (first, last - first + 1)
}

/// The plain float64 oracle ([`crate::reference`]).
pub struct ReferenceBackend {
    basis: Basis,
}

impl ReferenceBackend {
    /// The reference backend for these basis constants.
    pub fn new(basis: &Basis) -> Self {
        ReferenceBackend {
            basis: basis.clone(),
        }
    }
}

impl ChunkBackend for ReferenceBackend {
    fn name(&self) -> String {
        "reference".into()
    }

    fn chunk_pairs(&self) -> usize {
        1 << 16
    }

    fn prepare<'s>(&'s self, system: &'s System<'s>) -> Result<Box<dyn ChunkRunner + 's>> {
        Ok(Box::new(ReferenceRunner {
            basis: &self.basis,
            system,
        }))
    }
}

struct ReferenceRunner<'s> {
    basis: &'s Basis,
    system: &'s System<'s>,
}

impl ChunkRunner for ReferenceRunner<'_> {
    fn chunk(
        &self,
        centers: Range<usize>,
        pairs: &Pairs,
        _staged: Option<StagedPairs>,
        plan: &OutputPlan,
    ) -> Result<ChunkOutput> {
        let _span = tracing::debug_span!("reference_chunk", pairs = pairs.len()).entered();
        let (basis, system) = (self.basis, self.system);
        let layout = &system.layout;
        let density = reference::density_of(basis, system, centers.clone(), pairs)?;
        let n_types = layout.types.len();
        let k_len = basis.n_coefficients;
        let mut target = ChunkTarget::new(system, &centers, plan);
        for i in centers.clone() {
            if plan.row_of[i] == usize::MAX {
                continue;
            }
            let local = i - centers.start;
            let b = layout
                .center_block(system.particles.types[i])
                .expect("a sample has a block");
            let features = match plan.quantity {
                Quantity::Density => {
                    let slots = &layout.neighbor_slots[b];
                    let mut v = Vec::with_capacity(layout.density_width(b));
                    for (l, &n_l) in basis.n_radial.iter().enumerate() {
                        for m_index in 0..2 * l + 1 {
                            for n in 0..n_l {
                                for &slot in slots {
                                    v.push(
                                        density[(local * n_types + slot) * k_len
                                            + basis.column(l, m_index, n)],
                                    );
                                }
                            }
                        }
                    }
                    v
                }
                _ => reference::power_spectrum_row(basis, system, &density, local, b),
            };
            target.add(system, plan, i, b, &features)?;
        }
        Ok(target.finish(plan))
    }
}

/// The batched Candle path on one device ([`crate::batched`]).
pub struct CandleBackend {
    basis: Basis,
    batched: BatchedBasis,
    /// The counting pass on the device (with the CUDA neighbour search).
    counter: Option<CudaPairCounter>,
}

impl CandleBackend {
    /// Uploads the basis constants to `options.device`.
    pub fn new(basis: &Basis, options: &BatchedOptions) -> Result<Self> {
        let batched = BatchedBasis::new(basis, options)?;
        let counter = batched
            .cuda_search_kernel()
            .map(CudaPairCounter::with_kernel);
        Ok(CandleBackend {
            basis: basis.clone(),
            batched,
            counter,
        })
    }

    /// The options this backend runs with.
    pub fn options(&self) -> &BatchedOptions {
        self.batched.options()
    }
}

impl ChunkBackend for CandleBackend {
    fn name(&self) -> String {
        format!(
            "candle-{}",
            crate::device::device_name(&self.options().device)
        )
    }

    fn chunk_pairs(&self) -> usize {
        self.options().chunk_pairs
    }

    fn pair_counter(&self) -> Option<&dyn PairCounter> {
        self.counter.as_ref().map(|c| c as &dyn PairCounter)
    }

    fn prepare<'s>(&'s self, system: &'s System<'s>) -> Result<Box<dyn ChunkRunner + 's>> {
        // The CUDA neighbour search uploads the per-particle data with the cell lists.
        let search = match self.batched.cuda_search_kernel() {
            Some(kernel) => {
                let _span = tracing::debug_span!("cuda_search_prepare").entered();
                CudaNeighborSearch::with_kernel(system, self.options(), kernel)?
            }
            None => None,
        };
        // The fused CPU kernel reads the per-particle data on the host: nothing to upload.
        let particles = if self.batched.uses_fused_density() || search.is_some() {
            ParticleTensors::empty(self.options())?
        } else {
            ParticleTensors::new(system, self.options())?
        };
        // Uploads ran on this thread's stream; on CUDA (per-thread default streams) the chunk
        // loop's producer thread reads them from its own, so they must have landed first.
        self.options().device.synchronize()?;
        Ok(Box::new(CandleRunner {
            backend: self,
            system,
            particles,
            search,
        }))
    }
}

struct CandleRunner<'s> {
    backend: &'s CandleBackend,
    system: &'s System<'s>,
    particles: ParticleTensors,
    /// The system on the device for the CUDA neighbour search (then no host pairs).
    search: Option<CudaNeighborSearch>,
}

impl ChunkRunner for CandleRunner<'_> {
    fn host_pairs(&self) -> bool {
        self.search.is_none()
    }

    fn stage(&self, centers: &Range<usize>, pairs: &Pairs) -> Result<Option<StagedPairs>> {
        if let Some(search) = &self.search {
            let _span = tracing::debug_span!("stage", centers = centers.len()).entered();
            return search.stage(self.system, centers.clone());
        }
        let _span = tracing::debug_span!("stage", pairs = pairs.len()).entered();
        batched::stage_chunk(
            &self.backend.batched,
            self.system,
            &self.particles,
            centers.clone(),
            pairs,
        )
    }

    fn chunk(
        &self,
        centers: Range<usize>,
        pairs: &Pairs,
        staged: Option<StagedPairs>,
        plan: &OutputPlan,
    ) -> Result<ChunkOutput> {
        let _span = tracing::debug_span!("chunk", pairs = pairs.len()).entered();
        let (basis, system) = (&self.backend.basis, self.system);
        if self.search.is_some()
            && staged.is_none()
            && system.pair_counts[centers.clone()].iter().any(|&c| c > 0)
        {
            return Err(Error::Device(
                "a chunk with pairs reached the device without being staged".into(),
            ));
        }
        let options = self.backend.options();
        let device = &options.device;
        let layout = &system.layout;
        let density = batched::chunk_density_staged(
            &self.backend.batched,
            system,
            &self.particles,
            centers.clone(),
            pairs,
            staged,
            basis.n_coefficients,
        )?;
        let mut target = ChunkTarget::new(system, &centers, plan);
        if self.backend.batched.uses_fused_density() && plan.quantity != Quantity::Density {
            // CPU: the chunk's density is already on the host; the small per-centre Gram
            // matrices are cheaper there than as batched gemm calls.
            let host = to_host(&density)?;
            host_power_spectra(basis, system, &host, &centers, plan, &mut target)?;
            return Ok(target.finish(plan));
        }
        if let (Some(kernels), false) = (
            self.backend.batched.cuda_kernels(),
            plan.quantity == Quantity::Density,
        ) {
            device_power_spectra(
                kernels,
                basis,
                system,
                &density,
                &centers,
                plan,
                &mut target,
            )?;
            return Ok(target.finish(plan));
        }
        let first_frame = target.first_frame;
        for (b, (&t, &offset)) in layout.center_types.iter().zip(&plan.offsets).enumerate() {
            let members = block_members(system, plan, &centers, t);
            if members.is_empty() {
                continue;
            }
            let local = Tensor::from_vec(
                members
                    .iter()
                    .map(|&i| (i - centers.start) as u32)
                    .collect::<Vec<_>>(),
                members.len(),
                device,
            )?;
            let block = match plan.quantity {
                Quantity::Density => density_block(basis, layout, &density, &local, b)?,
                _ => batched::block_power_spectrum(basis, layout, &density, &local, b)?,
            };
            let width = block.dim(1)?;
            if plan.per_center() {
                let host = to_host(&block)?;
                if let Some(bad) = host.iter().position(|v| !v.is_finite()) {
                    return Err(non_finite_features(system, members[bad / width]));
                }
                target.write_center_rows(plan, &members, offset, width, &host);
                continue;
            }
            // NaN and ±inf survive the row sum: one value per centre tells whether its row is
            // finite before it disappears into the frame sum.
            let row_sums = to_host(&block.sum(1)?)?;
            if let Some(k) = row_sums.iter().position(|v| !v.is_finite()) {
                return Err(non_finite_features(system, members[k]));
            }
            let n_frames = frame_span(system, &centers).1;
            let local_frames: Vec<usize> = members
                .iter()
                .map(|&i| system.particles.frame[i] - first_frame)
                .collect();
            // Frame sums: index_add on the CPU; a one-hot matmul on GPUs (their index_add is
            // serial over the index list), unless the one-hot matrix would be large.
            let sums = if device.is_cpu() || n_frames.saturating_mul(members.len()) > 1 << 24 {
                let index = Tensor::from_vec(
                    local_frames.iter().map(|&f| f as u32).collect::<Vec<_>>(),
                    members.len(),
                    device,
                )?;
                Tensor::zeros((n_frames, width), options.dtype, device)?
                    .index_add(&index, &block, 0)?
            } else {
                let mut one_hot = vec![0.0f64; n_frames * members.len()];
                for (k, &f) in local_frames.iter().enumerate() {
                    one_hot[f * members.len() + k] = 1.0;
                }
                Tensor::from_vec(one_hot, (n_frames, members.len()), device)?
                    .to_dtype(options.dtype)?
                    .matmul(&block)?
            };
            for (k, row) in to_host(&sums)?.chunks(width).enumerate() {
                let start = k * plan.width + offset;
                target.out[start..start + width].copy_from_slice(row);
            }
        }
        Ok(target.finish(plan))
    }
}

/// Power spectra of every sample centre of a chunk from its density on the host, in the
/// reference's summation order (per channel the Gram matrix `(-1)^l/sqrt(2l+1) cᵀc`, summed
/// over `m` in order), written as per-centre rows or added to per-frame sums in centre order.
/// `density` is the chunk's `[C, n_types, K]` on the host.
fn host_power_spectra(
    basis: &Basis,
    system: &System,
    density: &[f64],
    centers: &Range<usize>,
    plan: &OutputPlan,
    target: &mut ChunkTarget,
) -> Result<()> {
    let _span = tracing::trace_span!("power_spectrum").entered();
    let layout = &system.layout;
    let n_types = layout.types.len();
    let k_len = basis.n_coefficients;
    let mut x = Vec::new();
    let mut row = Vec::new();
    for i in centers.clone() {
        if plan.row_of[i] == usize::MAX {
            continue;
        }
        let local = i - centers.start;
        let b = layout
            .center_block(system.particles.types[i])
            .expect("a sample has a block");
        let slots = &layout.neighbor_slots[b];
        let e_t = slots.len();
        row.clear();
        for (l, &n_l) in basis.n_radial.iter().enumerate() {
            let width = n_l * e_t;
            let n_m = 2 * l + 1;
            x.clear();
            for m_index in 0..n_m {
                for p in 0..width {
                    let (n, e) = (p / e_t, p % e_t);
                    x.push(
                        density[(local * n_types + slots[e]) * k_len + basis.column(l, m_index, n)],
                    );
                }
            }
            let sign = if l % 2 == 0 { 1.0 } else { -1.0 };
            let factor = sign / (n_m as f64).sqrt();
            for p in 0..width {
                for q in 0..width {
                    let mut sum = 0.0;
                    for m_index in 0..n_m {
                        sum += x[m_index * width + p] * x[m_index * width + q];
                    }
                    row.push(factor * sum);
                }
            }
        }
        target.add(system, plan, i, b, &row)?;
    }
    Ok(())
}

/// Power spectra of every sample centre of a chunk with the fused CUDA kernels
/// ([`crate::fused_cuda::CudaKernels::block_power_spectrum`]) from the chunk's density on the
/// device: per-centre rows, or per-frame sums added segment by segment (at most
/// [`crate::fused_cuda::SEGMENT_ROWS`] centres of one frame each) in centre order.
fn device_power_spectra(
    kernels: &crate::fused_cuda::CudaKernels,
    basis: &Basis,
    system: &System,
    density: &Tensor,
    centers: &Range<usize>,
    plan: &OutputPlan,
    target: &mut ChunkTarget,
) -> Result<()> {
    use crate::fused_cuda::{BlockSpectrum, SEGMENT_ROWS};
    let layout = &system.layout;
    for (b, (&t, &offset)) in layout.center_types.iter().zip(&plan.offsets).enumerate() {
        let members = block_members(system, plan, centers, t);
        if members.is_empty() {
            continue;
        }
        let local: Vec<u32> = members
            .iter()
            .map(|&i| u32::try_from(i - centers.start))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::TooLarge("too many centres in one chunk".into()))?;
        let slots = &layout.neighbor_slots[b];
        let width = layout.power_spectrum_width(b);
        let first_bad = |rows: &[f64], base: usize| {
            rows.chunks(width)
                .position(|row| row.iter().any(|v| !v.is_finite()))
                .map(|k| non_finite_features(system, members[base + k]))
        };
        if plan.per_center() {
            let BlockSpectrum::PerCenter(rows) =
                kernels.block_power_spectrum(basis, density, &local, slots, None)?
            else {
                return Err(Error::Device("per-centre power spectrum expected".into()));
            };
            if let Some(e) = first_bad(&rows, 0) {
                return Err(e);
            }
            target.write_center_rows(plan, &members, offset, width, &rows);
            continue;
        }
        // Segments: runs of at most SEGMENT_ROWS members of one frame.
        let mut segments = vec![0u32];
        let mut segment_frame = Vec::new();
        for (k, &i) in members.iter().enumerate() {
            let frame = system.particles.frame[i];
            let start = *segments.last().unwrap_or(&0) as usize;
            if k > start && (k - start == SEGMENT_ROWS || segment_frame.last() != Some(&frame)) {
                segments.push(k as u32);
            }
            if segments.len() > segment_frame.len() {
                segment_frame.push(frame);
            }
        }
        segments.push(members.len() as u32);
        let BlockSpectrum::Segments(sums) =
            kernels.block_power_spectrum(basis, density, &local, slots, Some(&segments))?
        else {
            return Err(Error::Device("power-spectrum segment sums expected".into()));
        };
        for (s, row) in sums.chunks(width).enumerate() {
            if row.iter().any(|v| !v.is_finite()) {
                // Name the first centre of the segment whose own row is not finite.
                let range = segments[s] as usize..segments[s + 1] as usize;
                let BlockSpectrum::PerCenter(rows) = kernels.block_power_spectrum(
                    basis,
                    density,
                    &local[range.clone()],
                    slots,
                    None,
                )?
                else {
                    return Err(Error::Device("per-centre power spectrum expected".into()));
                };
                return Err(first_bad(&rows, range.start)
                    .unwrap_or_else(|| non_finite_features(system, members[range.start])));
            }
            let start = (segment_frame[s] - target.first_frame) * plan.width + offset;
            for (o, v) in target.out[start..start + width].iter_mut().zip(row) {
                *o += v;
            }
        }
    }
    Ok(())
}

/// Density rows `[C_t, Σ_l (2l+1) N_l E_t]` of centre block `b` in the original's value layout
/// (l, then m, then p = n E_t + e).
fn density_block(
    basis: &Basis,
    layout: &Layout,
    density: &Tensor,
    local: &Tensor,
    b: usize,
) -> Result<Tensor> {
    let parts = batched::block_channels(basis, layout, density, local, b)?
        .into_iter()
        .map(|x| x.flatten_from(1))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 1)?)
}

/// Copies a tensor to the host as f64, row-major.
fn to_host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}
