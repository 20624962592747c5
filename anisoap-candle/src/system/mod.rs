//! Turning frames into what the descriptor needs: per-particle Gaussian data, the pair list
//! of all frames, and the feature layout (which types exist, which neighbour-type columns).

use crate::basis::Basis;
use crate::counting::{host_count, CountingInput, PairCount, PairCounter};
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::hypers::{Hypers, RotationType};
use crate::neighbors;
use crate::reference;
use crate::rotation::{self, Mat3};

mod layout;
pub use layout::Layout;

/// Per-particle data of all frames, concatenated (global particle index).
#[derive(Debug, Clone, Default)]
pub struct Particles {
    /// First global index of each frame, plus the total at the end (`n_frames + 1` entries).
    pub frame_start: Vec<usize>,
    /// Frame of each particle.
    pub frame: Vec<usize>,
    /// Type (atomic number) of each particle.
    pub types: Vec<i32>,
    /// Precision matrix `A = R diag(a⁻²) Rᵀ` of each particle.
    pub precision: Vec<Mat3>,
    /// Semi-axes `a = c_diameter / 2` of each particle.
    pub semi_axes: Vec<[f64; 3]>,
}

impl Particles {
    /// Total number of particles.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when there are no particles at all.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// Number of frames.
    pub fn n_frames(&self) -> usize {
        self.frame_start.len().saturating_sub(1)
    }

    /// The upper triangle `a00 a01 a02 a11 a12 a22` of each precision matrix: the rows the
    /// batched and CUDA kernels read.
    pub fn precision_rows(&self) -> Vec<[f64; 6]> {
        use rayon::prelude::*;
        self.precision
            .par_iter()
            .map(|a| [a[0][0], a[0][1], a[0][2], a[1][1], a[1][2], a[2][2]])
            .collect()
    }

    /// `1/(a1 a2 a3)` of each particle.
    pub fn inverse_axes_products(&self) -> Vec<f64> {
        use rayon::prelude::*;
        self.semi_axes
            .par_iter()
            .map(|a| 1.0 / (a[0] * a[1] * a[2]))
            .collect()
    }
}

/// Pairs of all frames, with global particle indices.
#[derive(Debug, Clone, Default)]
pub struct Pairs {
    /// Centre `i` of each pair.
    pub centers: Vec<usize>,
    /// Neighbour `j` of each pair.
    pub neighbors: Vec<usize>,
    /// `r_ij` (from the centre to the neighbour's image).
    pub vectors: Vec<[f64; 3]>,
}

impl Pairs {
    /// Empties the lists (keeping their buffers).
    pub fn clear(&mut self) {
        self.centers.clear();
        self.neighbors.clear();
        self.vectors.clear();
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.centers.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.centers.is_empty()
    }
}

/// A prepared batch of frames: particles and layout, with pairs streamed per centre range
/// (the full pair list is never held, so memory stays bounded for large systems).
pub struct System<'a> {
    /// Per-particle data.
    pub particles: Particles,
    /// Output layout.
    pub layout: Layout,
    /// Number of pairs of each particle as a centre.
    pub pair_counts: Vec<usize>,
    /// Index into `layout.types` of each particle's type (looked up once, used per pair).
    pub type_slots: Vec<usize>,
    searches: Vec<neighbors::NeighborSearch<'a>>,
    self_pairs: bool,
    /// What a device counting pass left on the device for the chunk loop
    /// ([`PairCount::device_state`]), taken once by the first runner that can use it.
    device_state: std::sync::Mutex<Option<Box<dyn std::any::Any + Send + Sync>>>,
}

/// Re-labels a frame error of the search of frame `f` (searches report frame 0).
pub(crate) fn reframe(f: usize) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Frame { message, .. } => frame_error(f, message),
        other => other,
    }
}

fn frame_error(frame: usize, message: String) -> Error {
    Error::Frame { frame, message }
}

/// Frames with at least this many particles read their per-particle data in parallel.
const PARALLEL_PARTICLES: usize = 4096;

/// Reads one frame's orientation and shape columns into `particles`.
fn push_frame_particles(
    particles: &mut Particles,
    frame: &Frame,
    f: usize,
    hypers: &Hypers,
) -> Result<()> {
    let diameters: Vec<_> = (1..=3)
        .map(|k| {
            let name = format!("c_diameter[{k}]");
            frame
                .arrays
                .get(&name)
                .filter(|a| a.ncols == 1)
                .ok_or_else(|| {
                    frame_error(
                        f,
                        format!("missing required per-particle column '{name}' (1 real column)"),
                    )
                })
        })
        .collect::<Result<_>>()?;
    let key = &hypers.rotation_key;
    let ncols = match hypers.rotation_type {
        RotationType::Quaternion => 4,
        RotationType::Matrix => 9,
    };
    let orientation = frame.arrays.get(key).ok_or_else(|| {
        frame_error(
            f,
            format!(
                "missing orientation column '{key}' (rotation_key); available columns: {}",
                frame.arrays.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    if orientation.ncols != ncols {
        return Err(frame_error(
            f,
            format!(
                "orientation column '{key}' has {} columns, rotation_type needs {ncols}",
                orientation.ncols
            ),
        ));
    }
    // Per particle: semi-axes, rotation, precision matrix (independent, so in parallel for
    // large frames; errors are reported for the first bad particle in order either way).
    let particle = |i: usize| -> Result<(Mat3, [f64; 3])> {
        let mut semi = [0.0; 3];
        for k in 0..3 {
            let d = diameters[k].values[i];
            if !(d.is_finite() && d > 0.0) {
                return Err(frame_error(
                    f,
                    format!(
                        "particle {i}: c_diameter[{}] must be positive and finite, got {d}",
                        k + 1
                    ),
                ));
            }
            semi[k] = d / 2.0;
        }
        let row = orientation.row(i);
        let r: Mat3 = match hypers.rotation_type {
            RotationType::Quaternion => {
                rotation::quaternion_to_matrix([row[0], row[1], row[2], row[3]]).ok_or_else(
                    || {
                        frame_error(
                            f,
                            format!("particle {i}: '{key}' is a zero or non-finite quaternion"),
                        )
                    },
                )?
            }
            RotationType::Matrix => {
                let m = [
                    [row[0], row[1], row[2]],
                    [row[3], row[4], row[5]],
                    [row[6], row[7], row[8]],
                ];
                rotation::check_rotation_matrix(&m, 1e-6)
                    .map_err(|e| frame_error(f, format!("particle {i}: '{key}': {e}")))?;
                m
            }
        };
        let precision = rotation::precision_matrix(&r, semi);
        let inv_volume = 1.0 / (semi[0] * semi[1] * semi[2]);
        if !(precision.iter().flatten().all(|v| v.is_finite()) && inv_volume.is_finite()) {
            return Err(frame_error(
                f,
                format!(
                    "particle {i}: semi-axes {semi:?} (c_diameter / 2) are too extreme: the \
                     precision matrix or 1/(a1 a2 a3) is not finite in float64"
                ),
            ));
        }
        Ok((precision, semi))
    };
    // The error reported is the first bad particle's whatever the order of evaluation. Large
    // frames are collected in parallel straight into fresh vectors (a serial zero-fill first
    // would fault in ~100 bytes per particle of new pages on one thread).
    let n = frame.len();
    if n >= PARALLEL_PARTICLES {
        use rayon::prelude::*;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let first_bad = AtomicUsize::new(usize::MAX);
        let (precision, semi_axes): (Vec<Mat3>, Vec<[f64; 3]>) = (0..n)
            .into_par_iter()
            .map(|i| {
                particle(i).unwrap_or_else(|_| {
                    first_bad.fetch_min(i, Ordering::Relaxed);
                    ([[0.0; 3]; 3], [0.0; 3])
                })
            })
            .unzip();
        let bad = first_bad.into_inner();
        if bad != usize::MAX {
            return Err(particle(bad).expect_err("this particle failed"));
        }
        if particles.precision.is_empty() {
            particles.precision = precision;
            particles.semi_axes = semi_axes;
        } else {
            particles.precision.extend_from_slice(&precision);
            particles.semi_axes.extend_from_slice(&semi_axes);
        }
    } else {
        particles.precision.reserve(n);
        particles.semi_axes.reserve(n);
        for i in 0..n {
            let (precision, semi) = particle(i)?;
            particles.precision.push(precision);
            particles.semi_axes.push(semi);
        }
    }
    particles.types.extend_from_slice(&frame.numbers);
    particles.frame.extend(std::iter::repeat_n(f, n));
    Ok(())
}

impl<'a> System<'a> {
    /// Validates the frames, reads per-particle data, and runs one pass of the neighbour
    /// search to find the types, pair-type keys and samples (pairs are not stored).
    pub fn new(frames: &'a [Frame], basis: &Basis) -> Result<Self> {
        Self::build(frames, basis, None, None)
    }

    /// Like [`System::new`], with the feature columns fixed in advance (`columns`: its types,
    /// centre blocks and neighbour columns; its `is_sample` and `n_frames` are ignored), so
    /// that batches of one stream, or shards of one run, share the same columns. Every
    /// particle type must be in `columns.types` and every pair's (centre type, neighbour type)
    /// must have a column, else the error names the frame and particle.
    pub fn with_columns(frames: &'a [Frame], basis: &Basis, columns: &Layout) -> Result<Self> {
        Self::build(frames, basis, Some(columns), None)
    }

    /// [`System::new`] (`columns: None`) or [`System::with_columns`], with the counting pass
    /// run by `counter` when given (e.g. the CUDA neighbour search,
    /// [`crate::cuda_search::CudaPairCounter`]) instead of on the host: the same counts, types
    /// seen and errors.
    pub fn with_counter(
        frames: &'a [Frame],
        basis: &Basis,
        columns: Option<&Layout>,
        counter: Option<&dyn PairCounter>,
    ) -> Result<Self> {
        Self::build(frames, basis, columns, counter)
    }

    fn build(
        frames: &'a [Frame],
        basis: &Basis,
        columns: Option<&Layout>,
        counter: Option<&dyn PairCounter>,
    ) -> Result<Self> {
        let hypers = &basis.hypers;
        let self_pairs = !hypers.subtract_center_contribution;
        let mut particles = Particles::default();
        let mut searches = Vec::with_capacity(frames.len());
        for (f, frame) in frames.iter().enumerate() {
            particles.frame_start.push(particles.len());
            if frame.numbers.len() != frame.len() {
                return Err(frame_error(
                    f,
                    "types and positions differ in length".into(),
                ));
            }
            let not_finite = |p: &[f64; 3]| p.iter().any(|v| !v.is_finite());
            let first_bad = if frame.len() >= PARALLEL_PARTICLES {
                use rayon::prelude::*;
                frame.positions.par_iter().position_first(not_finite)
            } else {
                frame.positions.iter().position(not_finite)
            };
            if let Some((i, p)) = first_bad.map(|i| (i, frame.positions[i])) {
                return Err(frame_error(
                    f,
                    format!("particle {i}: non-finite position {p:?}"),
                ));
            }
            {
                let _span = tracing::debug_span!("particle_data", frame = f).entered();
                push_frame_particles(&mut particles, frame, f, hypers)?;
            }
            let (cell, pbc) = if frame.is_periodic() {
                (frame.cell, frame.pbc)
            } else {
                ([[0.0; 3]; 3], [false; 3])
            };
            let _span = tracing::debug_span!("neighbor_grid", frame = f).entered();
            searches.push(
                neighbors::NeighborSearch::new(
                    &frame.positions,
                    &cell,
                    pbc,
                    hypers.cutoff_radius,
                    neighbors::DEFAULT_MAX_PAIRS,
                )
                .map_err(reframe(f))?,
            );
        }
        particles.frame_start.push(particles.len());
        let types = match columns {
            None => {
                // Distinct types without sorting a copy of every particle's type.
                let distinct: std::collections::BTreeSet<i32> =
                    particles.types.iter().copied().collect();
                distinct.into_iter().collect()
            }
            Some(columns) => {
                if let Some(i) = (0..particles.len())
                    .find(|&i| columns.types.binary_search(&particles.types[i]).is_err())
                {
                    let f = particles.frame[i];
                    return Err(frame_error(
                        f,
                        format!(
                            "particle {}: type {} is not among the fixed species {:?}",
                            i - particles.frame_start[f],
                            particles.types[i],
                            columns.types
                        ),
                    ));
                }
                columns.types.clone()
            }
        };
        let slot = |t: i32| types.binary_search(&t).expect("known type");
        let n_types = types.len();
        // Index into `types` (= the layout's types) of each particle.
        let type_slots: Vec<usize> = {
            use rayon::prelude::*;
            particles.types.par_iter().map(|&t| slot(t)).collect()
        };
        // The original's singularity rule depends only on the neighbour particle (A' = A + I/σ²):
        // evaluated once per particle, enforced for every particle that is some pair's
        // neighbour, so that all backends refuse the same inputs with the same message.
        let shift = reference::dilation_shift(hypers.radial_basis, hypers.radial_gaussian_width);
        let singular: Vec<bool> = {
            use rayon::prelude::*;
            particles
                .precision
                .par_iter()
                .map(|a| {
                    reference::singular_dilation(reference::dilation_matrix(a, shift).2).is_some()
                })
                .collect()
        };
        let input = CountingInput {
            particles: &particles,
            searches: &searches,
            type_slots: &type_slots,
            n_types,
            singular: &singular,
            self_pairs,
            max_pairs: neighbors::DEFAULT_MAX_PAIRS,
        };
        let count = {
            let _span = tracing::info_span!("neighbor_list_pass").entered();
            match counter {
                Some(counter) => counter.count(&input)?,
                None => host_count(&input)?,
            }
        };
        let PairCount {
            counts: pair_counts,
            seen: key_seen,
            first_singular,
            device_state,
        } = count;
        if pair_counts.len() != particles.len() {
            return Err(Error::Device(
                "the counting pass returned a count per particle of another system".into(),
            ));
        }
        if let Some((i, j)) = first_singular {
            let f = particles.frame[i];
            let start = particles.frame_start[f];
            let det = reference::dilation_matrix(&particles.precision[j], shift).2;
            let message = reference::singular_dilation(det).unwrap_or_default();
            return Err(frame_error(
                f,
                format!(
                    "pair (centre {}, neighbour {}): {message}",
                    i - start,
                    j - start
                ),
            ));
        }
        let is_sample = pair_counts.iter().map(|&c| c > 0).collect();
        let layout = match columns {
            None => Layout::from_pair_keys(
                types,
                &key_seen,
                basis.n_radial.clone(),
                is_sample,
                frames.len(),
            ),
            Some(columns) => {
                for (a, row) in key_seen.iter().enumerate() {
                    for (b, _) in row.iter().enumerate().filter(|(_, &seen)| seen) {
                        let covered = columns
                            .center_block(types[a])
                            .is_some_and(|block| columns.neighbor_slots[block].contains(&b));
                        if !covered {
                            return Err(Error::Hypers(format!(
                                "species layout: a pair with centre type {} and neighbour type \
                                 {} has no column in the fixed layout",
                                types[a], types[b]
                            )));
                        }
                    }
                }
                Layout {
                    is_sample,
                    n_frames: frames.len(),
                    ..columns.clone()
                }
            }
        };
        // `layout.types` is `types`: the slots found before the counting pass are the layout's.
        if layout.types.len() != n_types {
            return Err(Error::Device(
                "the layout's types differ from the system's".into(),
            ));
        }
        Ok(System {
            particles,
            layout,
            pair_counts,
            type_slots,
            searches,
            self_pairs,
            device_state: std::sync::Mutex::new(device_state),
        })
    }

    /// The cell-list search of each frame (read by the CUDA neighbour search).
    pub(crate) fn searches(&self) -> &[neighbors::NeighborSearch<'a>] {
        &self.searches
    }

    /// Whether each centre is its own neighbour (`(i, i, 0)`, `r = 0`): the original's
    /// default, off when the centre contribution is subtracted.
    pub fn self_pairs(&self) -> bool {
        self.self_pairs
    }

    /// What a device counting pass left for the chunk loop (once; later calls get `None`).
    pub fn take_device_state(&self) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        self.device_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Total number of pairs.
    pub fn n_pairs(&self) -> usize {
        self.pair_counts.iter().sum()
    }

    /// Pairs of the centres in `centers` (global indices), centre by centre. The search runs
    /// in parallel over blocks of centres (rayon); the order is deterministic.
    pub fn pairs(&self, centers: std::ops::Range<usize>) -> Result<Pairs> {
        let mut pairs = Pairs::default();
        self.pairs_into(centers, &mut pairs)?;
        Ok(pairs)
    }

    /// Like [`System::pairs`], writing into `pairs` and reusing its buffers: a chunk loop
    /// that hands the same buffers back keeps touching memory that is already mapped (fresh
    /// buffers of ~40 bytes per pair cost a page fault per 4 KiB, which dominated the search
    /// on large systems). Each block of centres writes straight into its slice of the output,
    /// at offsets known from the counting pass (`pair_counts`), so nothing is concatenated.
    pub fn pairs_into(&self, centers: std::ops::Range<usize>, pairs: &mut Pairs) -> Result<()> {
        use rayon::prelude::*;
        const BLOCK: usize = 1024;
        let counts = self.pair_counts.get(centers.clone()).ok_or_else(|| {
            Error::Device(format!(
                "centre range {centers:?} is outside the system's {} particles",
                self.particles.len()
            ))
        })?;
        let total = counts
            .iter()
            .try_fold(0usize, |acc, &c| acc.checked_add(c))
            .ok_or_else(|| Error::TooLarge("pair count of a chunk overflows".into()))?;
        // Buffers only ever grow; every element below `total` is overwritten below.
        pairs.centers.resize(total, 0);
        pairs.neighbors.resize(total, 0);
        pairs.vectors.resize(total, [0.0; 3]);
        let mut slices = Vec::with_capacity(counts.len().div_ceil(BLOCK));
        let (mut c_rest, mut n_rest, mut v_rest) = (
            &mut pairs.centers[..],
            &mut pairs.neighbors[..],
            &mut pairs.vectors[..],
        );
        for (k, block) in counts.chunks(BLOCK).enumerate() {
            let len: usize = block.iter().sum();
            let (c, cr) = std::mem::take(&mut c_rest).split_at_mut(len);
            let (n, nr) = std::mem::take(&mut n_rest).split_at_mut(len);
            let (v, vr) = std::mem::take(&mut v_rest).split_at_mut(len);
            (c_rest, n_rest, v_rest) = (cr, nr, vr);
            let first = centers.start + k * BLOCK;
            slices.push((first..first + block.len(), c, n, v));
        }
        slices.into_par_iter().try_for_each(|(block, c, n, v)| {
            let mut row = Vec::new();
            let mut at = 0;
            for i in block {
                let f = self.particles.frame[i];
                let start = self.particles.frame_start[f];
                self.searches[f]
                    .center_pairs(i - start, self.self_pairs, &mut row)
                    .map_err(reframe(f))?;
                if row.len() != self.pair_counts[i] {
                    return Err(Error::Device(format!(
                        "centre {i}: the neighbour search found {} pairs, the counting pass {}",
                        row.len(),
                        self.pair_counts[i]
                    )));
                }
                for (q, &(j, _, r)) in row.iter().enumerate() {
                    c[at + q] = i;
                    n[at + q] = j + start;
                    v[at + q] = r;
                }
                at += row.len();
            }
            Ok(())
        })
    }

    /// All pairs of all frames (for small systems and tests; large inputs should stream
    /// with [`System::pairs`] over centre ranges).
    pub fn all_pairs(&self) -> Result<Pairs> {
        self.pairs(0..self.particles.len())
    }

    /// Splits the centres into contiguous ranges with at most `chunk_pairs` pairs each (a
    /// centre with more pairs gets a range of its own).
    ///
    /// Chunks are frame-aligned: whole frames are packed together, and a frame that does not
    /// fit in what is left of a chunk starts a new one, so where a frame is cut depends on that
    /// frame alone. Per-frame sums are then accumulated in the same order whatever frames come
    /// before it, which makes shards of a run equal the whole run bit for bit.
    pub fn center_chunks(&self, chunk_pairs: usize) -> Vec<std::ops::Range<usize>> {
        let limit = chunk_pairs.max(1);
        // A chunk's per-centre tensors (density, power spectrum) grow with its centres: each
        // centre counts as at least `CENTER_WEIGHT` pairs, so chunks of tiny frames (few pairs
        // per centre) stay as small in memory as chunks of dense ones.
        const CENTER_WEIGHT: usize = 16;
        let weight = |i: usize| self.pair_counts[i].max(CENTER_WEIGHT);
        let starts = &self.particles.frame_start;
        let mut chunks = Vec::new();
        let mut open: Option<(usize, usize)> = None; // (start, pairs) of the chunk being packed
        for f in 0..self.particles.n_frames() {
            let (lo, hi) = (starts[f], starts[f + 1]);
            let frame_pairs: usize = (lo..hi).map(weight).sum();
            if let Some((start, count)) = open {
                if count + frame_pairs <= limit {
                    open = Some((start, count + frame_pairs));
                    continue;
                }
                chunks.push(start..lo);
                open = None;
            }
            if frame_pairs <= limit {
                open = Some((lo, frame_pairs));
                continue;
            }
            // A frame larger than a chunk: cut greedily from its first centre.
            let mut start = lo;
            while start < hi {
                let mut end = start;
                let mut count = 0;
                while end < hi && (end == start || count + weight(end) <= limit) {
                    count += weight(end);
                    end += 1;
                }
                chunks.push(start..end);
                start = end;
            }
        }
        if let Some((start, _)) = open {
            chunks.push(start..self.particles.len());
        }
        chunks.retain(|c| !c.is_empty());
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{generate, SyntheticSpec, SystemKind};

    /// One reused buffer, chunk after chunk (largest first, so it shrinks and grows again),
    /// holds exactly each chunk's pairs in the full neighbour list's order.
    #[test]
    fn reused_pair_buffers_hold_exactly_each_chunks_pairs() {
        let frames = generate(&SyntheticSpec::new(SystemKind::EllipsoidLiquid, 400), 1);
        let cutoff = 2.5;
        let hypers = Hypers::from_toml_str(&format!(
            "max_angular = 1\nmax_radial = 1\ncutoff_radius = {cutoff}\nradial_gaussian_width = 0.5"
        ))
        .expect("hypers");
        let basis = Basis::new(&hypers).expect("basis");
        let system = System::new(&frames, &basis).expect("system");
        let frame = &frames[0];
        let (cell, pbc) = if frame.is_periodic() {
            (frame.cell, frame.pbc)
        } else {
            ([[0.0; 3]; 3], [false; 3])
        };
        let full = neighbors::neighbor_list(&frame.positions, &cell, pbc, cutoff, true)
            .expect("full list");
        assert_eq!(full.len(), system.n_pairs());
        let mut chunks = system.center_chunks(300);
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        let pairs_of =
            |c: &std::ops::Range<usize>| system.pair_counts[c.clone()].iter().sum::<usize>();
        chunks.sort_by_key(|c| std::cmp::Reverse(pairs_of(c)));
        assert!(pairs_of(&chunks[0]) > pairs_of(chunks.last().expect("chunks")));
        chunks.push(chunks[0].clone());
        let mut buffer = Pairs::default();
        for c in &chunks {
            system.pairs_into(c.clone(), &mut buffer).expect("pairs");
            let expected: Vec<usize> = (0..full.len())
                .filter(|&q| c.contains(&full.centers[q]))
                .collect();
            assert_eq!(buffer.len(), expected.len(), "chunk {c:?}");
            for (k, &q) in expected.iter().enumerate() {
                assert_eq!(buffer.centers[k], full.centers[q]);
                assert_eq!(buffer.neighbors[k], full.neighbors[q]);
                assert_eq!(buffer.vectors[k], full.vectors[q]);
            }
        }
        // A range past the last particle is an error, not a panic.
        let past = 0..system.particles.len() + 1;
        assert!(system.pairs_into(past, &mut buffer).is_err());
    }
}
