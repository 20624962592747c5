//! The counting pass: every centre's pairs counted (not stored) before a system's chunks are
//! planned, with the neighbour types seen (the feature columns) and the first singular
//! neighbour (the error). [`System::with_counter`](crate::system::System::with_counter) runs it
//! on the host (`host_count`) or through a [`PairCounter`] a backend provides (the CUDA
//! neighbour search's, [`crate::cuda_search::CudaPairCounter`]).

use crate::error::{Error, Result};
use crate::neighbors;
use crate::system::{reframe, Particles};

/// What the counting pass over every centre finds.
pub struct PairCount {
    /// Pairs of each particle as a centre.
    pub counts: Vec<usize>,
    /// `seen[a][b]`: some pair has a centre of type slot `a` and a neighbour of slot `b`.
    pub seen: Vec<Vec<bool>>,
    /// The first centre (in particle order) with a singular neighbour, and its smallest
    /// singular neighbour (global indices): the error the system reports.
    pub first_singular: Option<(usize, usize)>,
    /// Data a device counter uploaded and the chunk loop can reuse (the CUDA neighbour
    /// search's cell lists), handed to it through [`System::take_device_state`](crate::system::System::take_device_state).
    pub device_state: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// What a counting pass reads: the frames' cell-list searches and what each particle is.
pub struct CountingInput<'s> {
    /// Per-particle data of all frames.
    pub particles: &'s Particles,
    /// The cell-list search of each frame.
    pub searches: &'s [neighbors::NeighborSearch<'s>],
    /// Index into the system's types of each particle's type.
    pub type_slots: &'s [usize],
    /// Number of types.
    pub n_types: usize,
    /// Whether each particle's dilation matrix is singular (refused as a neighbour).
    pub singular: &'s [bool],
    /// Whether each centre is its own neighbour.
    pub self_pairs: bool,
    /// Most pairs the whole system may have ([`Error::TooLarge`] beyond).
    pub max_pairs: usize,
}

/// A counting pass run somewhere else than on the host's cores (a backend's device): the
/// same counts, types seen, singular neighbour and errors as the host's.
pub trait PairCounter: Send + Sync {
    /// Counts the pairs of every centre of `input`.
    fn count(&self, input: &CountingInput) -> Result<PairCount>;
}

/// The host's counting pass: every centre's pairs visited (in parallel over blocks of centres)
/// without being stored.
pub(crate) fn host_count(input: &CountingInput) -> Result<PairCount> {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let CountingInput {
        particles,
        searches,
        type_slots,
        n_types,
        singular,
        self_pairs,
        max_pairs: limit,
    } = *input;
    let n = particles.len();
    // Running total over all blocks: the pass stops as soon as the limit is passed (an open
    // system with a huge cutoff would otherwise enumerate N² pairs first).
    let running = AtomicUsize::new(0);
    let blocks: Vec<std::ops::Range<usize>> =
        (0..n).step_by(1024).map(|s| s..(s + 1024).min(n)).collect();
    type BlockCount = (Vec<usize>, Vec<bool>, Option<(usize, usize)>);
    let parts: Vec<BlockCount> = blocks
        .into_par_iter()
        .map(|block| {
            let mut counts = Vec::with_capacity(block.len());
            let mut seen = vec![false; n_types * n_types];
            let mut first_singular = None;
            for i in block {
                let f = particles.frame[i];
                let start = particles.frame_start[f];
                let ti = type_slots[i];
                // The first singular neighbour in (neighbour, shift) order, as the sorted
                // list would meet it: the smallest such index.
                let mut singular_j: Option<usize> = None;
                let count = searches[f]
                    .visit_center_pairs(i - start, self_pairs, |j| {
                        seen[ti * n_types + type_slots[start + j]] = true;
                        if singular[start + j] {
                            singular_j = Some(singular_j.map_or(j, |k| k.min(j)));
                        }
                    })
                    .map_err(reframe(f))?;
                if first_singular.is_none() {
                    first_singular = singular_j.map(|j| (i, start + j));
                }
                let so_far = running.fetch_add(count, Ordering::Relaxed) + count;
                if so_far > limit {
                    return Err(too_many_pairs(limit));
                }
                counts.push(count);
            }
            Ok((counts, seen, first_singular))
        })
        .collect::<Result<_>>()?;
    let mut counts = Vec::with_capacity(n);
    let mut seen = vec![vec![false; n_types]; n_types];
    let mut first_singular = None;
    for (c, s, bad) in parts {
        counts.extend(c);
        for (k, v) in s.into_iter().enumerate() {
            seen[k / n_types][k % n_types] |= v;
        }
        first_singular = first_singular.or(bad);
    }
    Ok(PairCount {
        counts,
        seen,
        first_singular,
        device_state: None,
    })
}

/// The error for a system with more than `limit` pairs.
pub fn too_many_pairs(limit: usize) -> Error {
    Error::TooLarge(format!(
        "more than {limit} pairs in all frames (the limit); lower the cutoff or split the input"
    ))
}
