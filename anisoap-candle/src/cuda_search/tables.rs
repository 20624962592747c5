//! [`SearchTables`]: the cell lists of a system's frames in the layout the CUDA search kernels
//! read (`kernels/neighbor_search.cu`), plain host data built and checked without CUDA.

use crate::error::{Error, Result};
use crate::neighbors::NeighborSearch;
use crate::system::{Particles, System};
use std::borrow::Cow;

/// Columns of the per-frame `u32` table: bins per direction, periodic flags, first bin, first
/// particle.
const FRAME_U: usize = 8;
/// Columns of the per-frame `f64` table: the cell rows, the squared pre-filter radius.
const FRAME_F: usize = 10;

/// The cell lists of all frames of a system as flat arrays (the layout
/// `kernels/neighbor_search.cu` documents): particles in global order, "slots" in each frame's
/// bin-sorted order (a frame's slots are its particle range), bins of all frames concatenated.
/// A one-frame system borrows its cell list's own arrays (already in this layout: nothing is
/// copied on the host); several frames are concatenated with their particle, slot and bin
/// offsets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchTables<'a> {
    /// Frame of each particle, `[N]`.
    pub frame_of: Vec<u32>,
    /// Per frame: bins a/b/c, pbc a/b/c, first bin, first particle, `[F, 8]`.
    pub frame_u: Vec<u32>,
    /// Per frame: bins searched each way per direction, `[F, 3]`.
    pub frame_reach: Vec<i32>,
    /// Per frame: cell rows (zeros for open frames) and the squared pre-filter radius, `[F, 10]`.
    pub frame_f: Vec<f64>,
    /// 3-D bin of each particle, `[N, 3]`.
    pub bin_of: Cow<'a, [[u32; 3]]>,
    /// Image of each particle's wrapped position, `[N, 3]`.
    pub image: Cow<'a, [[i32; 3]]>,
    /// Slot of each particle, `[N]`.
    pub slot: Cow<'a, [u32]>,
    /// Positions as given, `[N, 3]`.
    pub positions: Cow<'a, [[f64; 3]]>,
    /// Global slot ranges of the bins, `nbins + 1` entries per frame, `[bins + F]`.
    pub bin_start: Cow<'a, [u32]>,
    /// Wrapped positions by slot, `[N, 3]`.
    pub wrapped: Cow<'a, [[f64; 3]]>,
    /// Images by slot, `[N, 3]`.
    pub slot_image: Cow<'a, [[i32; 3]]>,
    /// Particle of each slot, `[N]`.
    pub slot_particle: Cow<'a, [u32]>,
    /// Squared cutoff of the final pair test.
    pub cutoff2: f64,
}

fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::TooLarge(format!(
            "{what} ({v}) does not fit the 32-bit indices of the CUDA neighbour search"
        ))
    })
}

fn to_i32(v: i64, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::TooLarge(format!(
            "{what} ({v}) does not fit the 32-bit indices of the CUDA neighbour search"
        ))
    })
}

/// `base` plus `offset` on every element (owned), in parallel.
fn offset_u32(
    base: &[u32],
    offset: u32,
) -> impl rayon::iter::IndexedParallelIterator<Item = u32> + '_ {
    use rayon::prelude::*;
    base.par_iter().map(move |&v| v + offset)
}

impl<'a> SearchTables<'a> {
    /// Flattens the cell lists of `system`'s frames. Errors ([`Error::TooLarge`]) when a count
    /// or index does not fit in 32 bits.
    pub fn new(system: &'a System) -> Result<Self> {
        Self::from_parts(&system.particles, system.searches())
    }

    /// [`SearchTables::new`] from a system's parts (its particles and the cell-list search of
    /// each frame), before the system exists (the counting pass).
    pub fn from_parts(particles: &Particles, searches: &'a [NeighborSearch<'a>]) -> Result<Self> {
        use rayon::prelude::*;
        let _span = tracing::debug_span!("search_tables").entered();
        let n = particles.len();
        to_u32(n, "number of particles")?;
        if searches.len() != particles.n_frames() {
            return Err(Error::Device(
                "one cell-list search per frame expected".into(),
            ));
        }
        let mut t = SearchTables {
            frame_of: particles
                .frame
                .par_iter()
                .map(|&f| to_u32(f, "frame index"))
                .collect::<Result<_>>()?,
            cutoff2: searches.first().map_or(0.0, |search| search.cutoff2()),
            ..Default::default()
        };
        let mut bins = 0usize;
        for (f, search) in searches.iter().enumerate() {
            let first = particles.frame_start[f];
            let Some(grid) = search.grid() else {
                // A frame without particles: no centre ever reads its row.
                t.frame_u.extend([0; FRAME_U]);
                t.frame_reach.extend([0; 3]);
                t.frame_f.extend([0.0; FRAME_F]);
                continue;
            };
            if search.cutoff2() != t.cutoff2 {
                return Err(Error::Device(
                    "frames were searched with different cutoffs".into(),
                ));
            }
            for k in 0..3 {
                to_u32(grid.nbins[k], "bins per direction")?;
            }
            t.frame_u.extend([
                grid.nbins[0] as u32,
                grid.nbins[1] as u32,
                grid.nbins[2] as u32,
                u32::from(grid.pbc[0]),
                u32::from(grid.pbc[1]),
                u32::from(grid.pbc[2]),
                to_u32(bins, "number of bins")?,
                to_u32(first, "particle index")?,
            ]);
            for k in 0..3 {
                t.frame_reach.push(to_i32(grid.reach[k], "bin reach")?);
            }
            t.frame_f.extend(grid.cell.iter().flatten());
            t.frame_f.push(grid.radius2);
            bins = bins
                .checked_add(grid.start.len())
                .ok_or_else(|| Error::TooLarge("number of bins".into()))?;
            to_u32(bins, "number of bins")?;
        }
        let grids: Vec<_> = searches
            .iter()
            .filter_map(|s| s.grid().map(|g| (s, g)))
            .collect();
        if let [(search, grid)] = grids.as_slice() {
            // One frame with particles holds all of them (checked below): its arrays are
            // already the tables (first particle, slot and bin 0).
            t.bin_of = Cow::Borrowed(&grid.bin_of);
            t.image = Cow::Borrowed(&grid.image);
            t.slot = Cow::Borrowed(&grid.slot);
            t.positions = Cow::Borrowed(search.positions());
            t.bin_start = Cow::Borrowed(&grid.start);
            t.wrapped = Cow::Borrowed(&grid.wrapped);
            t.slot_image = Cow::Borrowed(&grid.sorted_image);
            t.slot_particle = Cow::Borrowed(&grid.sorted);
        } else {
            // Rows are collected with indexed parallel iterators, which write straight into
            // the reserved vectors from every thread (a flat_map would gather per-thread
            // pieces and copy them on one thread: ~0.1 s for 10^6 particles on the H200 host).
            let (mut bin_of, mut image, mut slot, mut positions) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut wrapped, mut slot_image, mut slot_particle, mut bin_start) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(bins),
            );
            for (f, search) in searches.iter().enumerate() {
                let Some(grid) = search.grid() else { continue };
                // Every particle index and slot is below n, checked to fit 32 bits above.
                let first = particles.frame_start[f] as u32;
                bin_of.par_extend(grid.bin_of.par_iter().copied());
                image.par_extend(grid.image.par_iter().copied());
                slot.par_extend(offset_u32(&grid.slot, first));
                positions.par_extend(search.positions().par_iter().copied());
                wrapped.par_extend(grid.wrapped.par_iter().copied());
                slot_image.par_extend(grid.sorted_image.par_iter().copied());
                slot_particle.par_extend(offset_u32(&grid.sorted, first));
                bin_start.par_extend(offset_u32(&grid.start, first));
            }
            t.bin_of = Cow::Owned(bin_of);
            t.image = Cow::Owned(image);
            t.slot = Cow::Owned(slot);
            t.positions = Cow::Owned(positions);
            t.bin_start = Cow::Owned(bin_start);
            t.wrapped = Cow::Owned(wrapped);
            t.slot_image = Cow::Owned(slot_image);
            t.slot_particle = Cow::Owned(slot_particle);
        }
        if t.slot.len() != n || t.positions.len() != n || t.slot_particle.len() != n {
            return Err(Error::Device(
                "the frames' cell lists do not cover every particle".into(),
            ));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basis::Basis;
    use crate::synthetic::{generate, SyntheticSpec, SystemKind};
    use crate::Hypers;

    /// Every particle's slot holds it, bins hold increasing slot ranges of their frame, one
    /// frame borrows its cell list and several are offset; frames of 1 and 3 frames agree on
    /// the first frame's rows.
    #[test]
    fn tables_index_every_particle_once() {
        let mut spec = SyntheticSpec::new(SystemKind::EllipsoidLiquid, 40);
        spec.n_species = 2;
        spec.periodic = true;
        spec.seed = 9;
        let frames = generate(&spec, 3);
        let basis = Basis::new(&Hypers::gto(2, 3.0, 1.0)).unwrap();
        let one = System::new(&frames[..1], &basis).unwrap();
        let all = System::new(&frames, &basis).unwrap();
        let t1 = SearchTables::new(&one).unwrap();
        let t3 = SearchTables::new(&all).unwrap();
        assert!(matches!(t1.slot, Cow::Borrowed(_)) && matches!(t1.wrapped, Cow::Borrowed(_)));
        assert!(matches!(t3.slot, Cow::Owned(_)));
        for t in [&t1, &t3] {
            let n = t.slot.len();
            for i in 0..n {
                assert_eq!(t.slot_particle[t.slot[i] as usize] as usize, i);
            }
            assert_eq!(t.frame_of.len(), n);
        }
        let n1 = t1.slot.len();
        assert_eq!(&t3.slot[..n1], &t1.slot[..]);
        assert_eq!(&t3.wrapped[..n1], &t1.wrapped[..]);
        // The second frame's slots and bins are offset by the first frame's particles and bins.
        let first_bin = t3.frame_u[8 + 6] as usize;
        let first_particle = t3.frame_u[8 + 7] as usize;
        assert_eq!(first_particle, n1);
        assert_eq!(first_bin, t1.bin_start.len());
        assert_eq!(t3.bin_start[first_bin] as usize, n1);
        assert!(t1.bin_start.windows(2).all(|w| w[0] <= w[1]));
        assert!(t3.slot[n1..].iter().all(|&slot| slot as usize >= n1));
    }
}
