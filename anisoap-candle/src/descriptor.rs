//! The public entry point: a calculator that turns frames into AniSOAP features with the
//! chosen backend, in exactly the original's feature layout.

use crate::basis::Basis;
use crate::batched::{self, BatchedBasis, BatchedOptions, ParticleTensors};
use crate::error::Result;
use crate::frame::Frame;
use crate::hypers::Hypers;
use crate::reference;
use crate::system::{Layout, System};
use candle_core::{DType, Tensor};

/// Which implementation computes the features.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Plain float64 Rust, pair by pair: the oracle.
    Reference,
    /// Batched Candle tensor ops on a device (CPU, CUDA, Metal) in f64 or f32.
    Batched(BatchedOptions),
}

/// What to compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Power spectrum averaged over the centres of each type, one row per frame (the
    /// original's `power_spectrum(frames)`).
    PowerSpectrumMean,
    /// Power spectrum of every sample centre, one row per centre.
    PowerSpectrumPerCenter,
    /// Density coefficients (nu = 1, `transform()`), one row per centre.
    Density,
}

/// A dense row-major matrix of f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row-major values.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// Computed features and what their rows and columns mean.
#[derive(Debug, Clone)]
pub struct Features {
    /// The values. Columns: centre-type blocks in ascending type order, each in the original's
    /// column order; a per-centre row has zeros outside its own centre type's block.
    pub values: Matrix,
    /// Frame index of each row.
    pub frame: Vec<usize>,
    /// Particle index within its frame of each row (`None` for per-frame means).
    pub center: Option<Vec<usize>>,
    /// Types, blocks and neighbour-type columns.
    pub layout: Layout,
    /// Per (frame, centre block): number of centres averaged (per-frame means only).
    pub counts: Option<Vec<usize>>,
}

/// AniSOAP calculator for one hyperparameter set and backend.
pub struct Calculator {
    basis: Basis,
    backend: Backend,
    batched: Option<BatchedBasis>,
}

/// Progress callback: `(pairs done, pairs in total)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

impl Calculator {
    /// Validates the hypers, builds the basis constants (the original's numerical-imprecision
    /// check runs here) and uploads them to the backend's device.
    pub fn new(hypers: &Hypers, backend: Backend) -> Result<Self> {
        let basis = Basis::new(hypers)?;
        let batched = match &backend {
            Backend::Batched(options) => Some(BatchedBasis::new(&basis, options)?),
            Backend::Reference => None,
        };
        Ok(Calculator {
            basis,
            backend,
            batched,
        })
    }

    /// The basis constants.
    pub fn basis(&self) -> &Basis {
        &self.basis
    }

    /// The backend in use.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Per-frame mean power spectrum, rows = frames (the original's default output).
    pub fn power_spectrum(&self, frames: &[Frame]) -> Result<Matrix> {
        Ok(self
            .compute(frames, Quantity::PowerSpectrumMean, &mut |_, _| {})?
            .values)
    }

    /// Computes `quantity` for all frames together (types and neighbour-type columns are taken
    /// from all frames, as in the original), reporting progress in pairs.
    pub fn compute(
        &self,
        frames: &[Frame],
        quantity: Quantity,
        progress: Progress,
    ) -> Result<Features> {
        let system = {
            let _span = tracing::info_span!("prepare", frames = frames.len()).entered();
            System::new(frames, &self.basis)?
        };
        self.compute_system(&system, quantity, progress)
    }

    /// Like [`Calculator::compute`] on an already prepared system.
    pub fn compute_system(
        &self,
        system: &System,
        quantity: Quantity,
        progress: Progress,
    ) -> Result<Features> {
        let layout = &system.layout;
        let width = |b: usize| match quantity {
            Quantity::Density => layout.density_width(b),
            _ => layout.power_spectrum_width(b),
        };
        let (offsets, total) = layout.block_offsets(width);
        let samples: Vec<usize> = (0..system.particles.len())
            .filter(|&i| layout.is_sample[i])
            .collect();
        let per_center = quantity != Quantity::PowerSpectrumMean;
        let mut values = if per_center {
            Matrix::zeros(samples.len(), total)
        } else {
            Matrix::zeros(layout.n_frames, total)
        };
        let mut counts = vec![0usize; layout.n_frames * layout.center_types.len()];
        for &i in &samples {
            let b = layout
                .center_block(system.particles.types[i])
                .expect("sample has a block");
            counts[system.particles.frame[i] * layout.center_types.len() + b] += 1;
        }
        // Row of each sample centre in a per-centre output.
        let mut row_of = vec![usize::MAX; system.particles.len()];
        for (row, &i) in samples.iter().enumerate() {
            row_of[i] = row;
        }
        match (&self.backend, &self.batched) {
            (Backend::Batched(options), Some(batched)) => self.run_batched(
                system,
                quantity,
                options,
                batched,
                &offsets,
                &row_of,
                &mut values,
                progress,
            )?,
            _ => self.run_reference(system, quantity, &offsets, &row_of, &mut values, progress)?,
        }
        if !per_center {
            let n_blocks = layout.center_types.len();
            for f in 0..layout.n_frames {
                for b in 0..n_blocks {
                    let count = counts[f * n_blocks + b];
                    if count == 0 {
                        tracing::warn!(
                            frame = f,
                            center_type = layout.center_types[b],
                            "frame has no centre of this type: its block is left at zero"
                        );
                        continue;
                    }
                    let start = f * total + offsets[b];
                    for v in &mut values.data[start..start + width(b)] {
                        *v /= count as f64;
                    }
                }
            }
        }
        let (frame, center) = if per_center {
            let frame: Vec<usize> = samples.iter().map(|&i| system.particles.frame[i]).collect();
            let center = samples
                .iter()
                .map(|&i| i - system.particles.frame_start[system.particles.frame[i]])
                .collect();
            (frame, Some(center))
        } else {
            ((0..layout.n_frames).collect(), None)
        };
        Ok(Features {
            values,
            frame,
            center,
            layout: layout.clone(),
            counts: (!per_center).then_some(counts),
        })
    }

    fn run_reference(
        &self,
        system: &System,
        quantity: Quantity,
        offsets: &[usize],
        row_of: &[usize],
        values: &mut Matrix,
        progress: Progress,
    ) -> Result<()> {
        let basis = &self.basis;
        let layout = &system.layout;
        let density = {
            let _span = tracing::info_span!("reference_density").entered();
            reference::density(basis, system)?
        };
        progress(system.n_pairs(), system.n_pairs());
        let _span = tracing::info_span!("reference_output").entered();
        let n_types = layout.types.len();
        let k_len = basis.n_coefficients;
        for (i, &row) in row_of.iter().enumerate() {
            if row == usize::MAX {
                continue;
            }
            let b = layout
                .center_block(system.particles.types[i])
                .expect("block");
            let features = match quantity {
                Quantity::Density => {
                    let slots = &layout.neighbor_slots[b];
                    let mut out = Vec::with_capacity(layout.density_width(b));
                    for (l, &n_l) in basis.n_radial.iter().enumerate() {
                        for m_index in 0..2 * l + 1 {
                            for n in 0..n_l {
                                for &slot in slots {
                                    out.push(
                                        density[(i * n_types + slot) * k_len
                                            + basis.column(l, m_index, n)],
                                    );
                                }
                            }
                        }
                    }
                    out
                }
                _ => reference::power_spectrum_row(basis, system, &density, i, b),
            };
            let target_row = match quantity {
                Quantity::PowerSpectrumMean => system.particles.frame[i],
                _ => row,
            };
            let start = target_row * values.cols + offsets[b];
            for (v, x) in values.data[start..start + features.len()]
                .iter_mut()
                .zip(&features)
            {
                *v += x;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_batched(
        &self,
        system: &System,
        quantity: Quantity,
        options: &BatchedOptions,
        batched: &BatchedBasis,
        offsets: &[usize],
        row_of: &[usize],
        values: &mut Matrix,
        progress: Progress,
    ) -> Result<()> {
        let basis = &self.basis;
        let layout = &system.layout;
        let device = &options.device;
        let particles = ParticleTensors::new(system, options)?;
        let total_pairs = system.n_pairs();
        let mut done_pairs = 0;
        for chunk in system.center_chunks(options.chunk_pairs) {
            let pairs = {
                let _span = tracing::debug_span!("neighbor_list").entered();
                system.pairs(chunk.clone())?
            };
            let _span = tracing::debug_span!("chunk", pairs = pairs.len()).entered();
            let density = batched::chunk_density(
                batched,
                system,
                &particles,
                chunk.clone(),
                &pairs,
                basis.n_coefficients,
            )?;
            for (b, (&t, &offset)) in layout.center_types.iter().zip(offsets).enumerate() {
                let centers: Vec<usize> = (chunk.clone())
                    .filter(|&i| row_of[i] != usize::MAX && system.particles.types[i] == t)
                    .collect();
                if centers.is_empty() {
                    continue;
                }
                let local = Tensor::from_vec(
                    centers
                        .iter()
                        .map(|&i| (i - chunk.start) as u32)
                        .collect::<Vec<_>>(),
                    centers.len(),
                    device,
                )?;
                let block = match quantity {
                    Quantity::Density => density_block(basis, layout, &density, &local, b)?,
                    _ => batched::block_power_spectrum(basis, layout, &density, &local, b)?,
                };
                let block_width = block.dim(1)?;
                match quantity {
                    Quantity::PowerSpectrumMean => {
                        let first_frame = system.particles.frame[centers[0]];
                        let last_frame = system.particles.frame[*centers.last().expect("nonempty")];
                        // Frame sums: index_add on the CPU; a one-hot matmul on GPUs (their
                        // index_add is serial over the index list), unless the one-hot matrix
                        // would be large (many tiny frames in one chunk).
                        let n_local = last_frame - first_frame + 1;
                        let local_frames: Vec<usize> = centers
                            .iter()
                            .map(|&i| system.particles.frame[i] - first_frame)
                            .collect();
                        let sums = if device.is_cpu() || n_local * centers.len() > 1 << 24 {
                            let index = Tensor::from_vec(
                                local_frames.iter().map(|&f| f as u32).collect::<Vec<_>>(),
                                centers.len(),
                                device,
                            )?;
                            Tensor::zeros((n_local, block_width), options.dtype, device)?
                                .index_add(&index, &block, 0)?
                        } else {
                            let mut one_hot = vec![0.0f64; n_local * centers.len()];
                            for (k, &f) in local_frames.iter().enumerate() {
                                one_hot[f * centers.len() + k] = 1.0;
                            }
                            Tensor::from_vec(one_hot, (n_local, centers.len()), device)?
                                .to_dtype(options.dtype)?
                                .matmul(&block)?
                        };
                        let sums = to_host(&sums)?;
                        for (k, row) in sums.chunks(block_width).enumerate() {
                            let start = (first_frame + k) * values.cols + offset;
                            for (v, x) in
                                values.data[start..start + block_width].iter_mut().zip(row)
                            {
                                *v += x;
                            }
                        }
                    }
                    _ => {
                        let host = to_host(&block)?;
                        for (k, row) in host.chunks(block_width).enumerate() {
                            let start = row_of[centers[k]] * values.cols + offset;
                            values.data[start..start + block_width].copy_from_slice(row);
                        }
                    }
                }
            }
            done_pairs += pairs.len();
            progress(done_pairs, total_pairs);
        }
        Ok(())
    }
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

/// Copies a 2-D tensor to the host as f64, row-major.
fn to_host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}
