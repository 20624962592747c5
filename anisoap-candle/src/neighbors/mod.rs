//! Full neighbour lists with periodic images, in linear time through a cell list.
//!
//! The pair set follows featomic's full `NeighborList` (see §3 of the math notes): every ordered
//! triple `(i, j, S)` with `S ∈ Z³` a cell shift (zero along non-periodic directions) and
//!
//! ```text
//! r_ij = (x_j - x_i) + (S_a a + S_b b + S_c c),   r_ij · r_ij < cutoff²   (strict)
//! ```
//!
//! excluding `(i, i, 0)`, which is added once per particle with `r = 0` when `self_pairs` is
//! set. Every periodic image within the cutoff is its own pair (no minimum-image convention),
//! positions may lie outside the cell, and the list is full: `(i, j, S)` and `(j, i, -S)` both
//! appear. Pairs are sorted by `(center, neighbor, shift)`.

use crate::error::{Error, Result};

/// Default bound on the number of pairs [`neighbor_list`] may produce (about 26 GB of pairs).
pub const DEFAULT_MAX_PAIRS: usize = 500_000_000;

/// Relative slack on the cutoff used to size bins, so that rounding in fractional coordinates
/// never hides a pair; the final test always uses the exact cutoff.
const BIN_SLACK: f64 = 1e-8;

/// Largest fractional coordinate (in cell lengths from the origin) accepted along a periodic
/// direction, keeping shifts far from `i32` overflow.
const MAX_FRACTIONAL: f64 = 1e8;

/// A full neighbour list: parallel arrays with one entry per ordered pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairList {
    /// Index of the centre particle `i` of each pair.
    pub centers: Vec<usize>,
    /// Index of the neighbour particle `j` of each pair.
    pub neighbors: Vec<usize>,
    /// `r_ij = (x_j - x_i) + S · cell` of each pair.
    pub vectors: Vec<[f64; 3]>,
    /// Cell shift `S` (multiples of a, b, c) of each pair; zero along non-periodic directions.
    pub shifts: Vec<[i32; 3]>,
}

impl PairList {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.centers.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.centers.is_empty()
    }

    fn push(&mut self, i: usize, j: usize, r: [f64; 3], s: [i32; 3]) {
        self.centers.push(i);
        self.neighbors.push(j);
        self.vectors.push(r);
        self.shifts.push(s);
    }
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

/// `r = (x_j - x_i) + S · cell`, evaluated in this exact order (shared by both algorithms so
/// that they agree bit for bit, including at the cutoff boundary).
fn pair_vector(xi: [f64; 3], xj: [f64; 3], s: [i32; 3], cell: &[[f64; 3]; 3]) -> [f64; 3] {
    let mut r = [0.0; 3];
    for (c, rc) in r.iter_mut().enumerate() {
        let shift = f64::from(s[0]) * cell[0][c]
            + f64::from(s[1]) * cell[1][c]
            + f64::from(s[2]) * cell[2][c];
        *rc = (xj[c] - xi[c]) + shift;
    }
    r
}

/// Validated geometry: fractional coordinates in a basis `B` (the cell when any direction is
/// periodic, the identity otherwise) and the perpendicular widths of `B`.
struct Geometry {
    /// `s_k = x · recip[k]` so that `x = Σ_k s_k B_k`.
    frac: Vec<[f64; 3]>,
    /// Perpendicular width of the basis along each direction (distance between the faces).
    widths: [f64; 3],
    /// |det B| (1 for open systems).
    volume: f64,
    pbc: [bool; 3],
    /// The cell used for shift vectors: the given one when any direction is periodic, zeros
    /// otherwise (so that an arbitrary cell of an open system never enters the vectors).
    cell: [[f64; 3]; 3],
}

fn validate(
    positions: &[[f64; 3]],
    cell: &[[f64; 3]; 3],
    pbc: [bool; 3],
    cutoff: f64,
) -> Result<Geometry> {
    if !(cutoff.is_finite() && cutoff > 0.0) {
        return Err(Error::Hypers(format!(
            "cutoff_radius must be positive and finite, got {cutoff}"
        )));
    }
    let not_finite = |x: &[f64; 3]| x.iter().any(|v| !v.is_finite());
    let first_bad = if positions.len() >= PARALLEL_ITEMS {
        use rayon::prelude::*;
        positions.par_iter().position_first(not_finite)
    } else {
        positions.iter().position(not_finite)
    };
    if let Some((i, x)) = first_bad.map(|i| (i, positions[i])) {
        return Err(Error::Frame {
            frame: 0,
            message: format!("position of particle {i} is not finite: {x:?}"),
        });
    }
    let periodic = pbc.iter().any(|&p| p);
    let (recip, widths, volume) = if periodic {
        if cell.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::Frame {
                frame: 0,
                message: format!("cell is not finite: {cell:?}"),
            });
        }
        let [a, b, c] = *cell;
        let (bc, ca, ab) = (cross(b, c), cross(c, a), cross(a, b));
        let det = dot(a, bc);
        let lengths = norm(a) * norm(b) * norm(c);
        if det.abs().partial_cmp(&(1e-12 * lengths)) != Some(std::cmp::Ordering::Greater) {
            return Err(Error::Frame {
                frame: 0,
                message: format!(
                    "cell is singular (determinant {det:e}, |a||b||c| = {lengths:e}) but pbc is {pbc:?}"
                ),
            });
        }
        let recip = [bc, ca, ab].map(|v| v.map(|x| x / det));
        let volume = det.abs();
        let widths = [bc, ca, ab].map(|v| volume / norm(v));
        (recip, widths, volume)
    } else {
        (
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [1.0; 3],
            1.0,
        )
    };
    let _span = tracing::trace_span!("fractional_coordinates").entered();
    let frac: Vec<[f64; 3]> = map_items(positions, |&x| {
        [dot(x, recip[0]), dot(x, recip[1]), dot(x, recip[2])]
    });
    let far =
        |s: &[f64; 3]| (0..3).any(|k| pbc[k] && (s[k].is_nan() || s[k].abs() > MAX_FRACTIONAL));
    let first_far = if frac.len() >= PARALLEL_ITEMS {
        use rayon::prelude::*;
        frac.par_iter().position_first(far)
    } else {
        frac.iter().position(far)
    };
    if let Some(i) = first_far {
        let s = frac[i];
        for k in 0..3 {
            if pbc[k] && (s[k].is_nan() || s[k].abs() > MAX_FRACTIONAL) {
                return Err(Error::Frame {
                    frame: 0,
                    message: format!(
                        "particle {i} lies {:e} cell vectors away from the origin along direction {k}",
                        s[k]
                    ),
                });
            }
        }
    }
    Ok(Geometry {
        frac,
        widths,
        volume,
        pbc,
        cell: if periodic { *cell } else { [[0.0; 3]; 3] },
    })
}

/// Frames with at least this many particles are binned on rayon's pool.
const PARALLEL_ITEMS: usize = 4096;

/// `items.iter().map(f).collect()`, on rayon's pool when there are enough items to pay for
/// it (one large frame); in order either way.
fn map_items<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync + Send) -> Vec<U> {
    use rayon::prelude::*;
    if items.len() >= PARALLEL_ITEMS {
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}

/// Particles sorted by linear bin, stably (by index within a bin), with the bins' start
/// offsets (`total + 1`) and each particle's slot: a counting sort. Needs `n` and `total`
/// below 2³² (checked by [`Grid::new`]).
fn bin_sort_serial(
    bin_of: &[[u32; 3]],
    total: usize,
    linear: impl Fn([u32; 3]) -> usize,
) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let n = bin_of.len();
    let mut start = vec![0u32; total + 1];
    for &b in bin_of {
        start[linear(b) + 1] += 1;
    }
    for l in 0..total {
        start[l + 1] += start[l];
    }
    let mut fill = start.clone();
    let mut sorted = vec![0u32; n];
    let mut slot = vec![0u32; n];
    for (i, &b) in bin_of.iter().enumerate() {
        let l = linear(b);
        sorted[fill[l] as usize] = i as u32;
        slot[i] = fill[l];
        fill[l] += 1;
    }
    (sorted, start, slot)
}

/// [`bin_sort_serial`]'s result on rayon's pool: the keys `(linear bin << 32) | index` are
/// distinct, so an unstable sort of them is the stable order. (The serial counting sort
/// scatters into every bin at once: ~26 ms for 10⁶ particles on the H200 host,
/// `results/logs/cuda_h200_s11/run4_trace_count_l6_f64.json.xz`.)
fn bin_sort_parallel(
    bin_of: &[[u32; 3]],
    total: usize,
    linear: impl Fn([u32; 3]) -> usize + Sync,
) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    use rayon::prelude::*;
    let n = bin_of.len();
    let mut keys: Vec<u64> = bin_of
        .par_iter()
        .enumerate()
        .map(|(i, &b)| ((linear(b) as u64) << 32) | i as u64)
        .collect();
    keys.par_sort_unstable();
    let sorted: Vec<u32> = keys.par_iter().map(|&k| k as u32).collect();
    // start[l] = first slot whose bin is >= l: one pass over the sorted keys.
    let mut start = Vec::with_capacity(total + 1);
    for (p, &k) in keys.iter().enumerate() {
        let l = (k >> 32) as usize;
        while start.len() <= l {
            start.push(p as u32);
        }
    }
    start.resize(total + 1, n as u32);
    let mut slot = vec![0u32; n];
    for (p, &i) in sorted.iter().enumerate() {
        slot[i as usize] = p as u32;
    }
    (sorted, start, slot)
}

/// The bins of the cell list and the particles in them (read, as plain arrays, by the CUDA
/// neighbour search, [`crate::cuda_search`], which repeats [`Grid::for_each_candidate`] and the
/// pair test of [`NeighborSearch`] on the device). Indices are 32-bit, the layout the device
/// reads, so a one-frame system's arrays are uploaded as they are ([`Grid::new`] refuses
/// frames of 2³¹ particles or more; images fit because fractional coordinates are bounded by
/// `MAX_FRACTIONAL`).
pub(crate) struct Grid {
    /// Bins per direction.
    pub(crate) nbins: [usize; 3],
    /// Bin offsets searched along each direction (bins of size ≥ cutoff give 1).
    pub(crate) reach: [i64; 3],
    /// Periodic directions.
    pub(crate) pbc: [bool; 3],
    /// 3-D bin of every particle.
    pub(crate) bin_of: Vec<[u32; 3]>,
    /// Image of the wrapped position holding each particle: `x = w + image · cell`.
    pub(crate) image: Vec<[i32; 3]>,
    /// Particles sorted by linear bin index.
    pub(crate) sorted: Vec<u32>,
    /// `sorted[start[b]..start[b + 1]]` are the particles of linear bin `b`.
    pub(crate) start: Vec<u32>,
    /// Slot of every particle in `sorted`.
    pub(crate) slot: Vec<u32>,
    /// Wrapped Cartesian positions `x - image · cell`, in `sorted` order.
    pub(crate) wrapped: Vec<[f64; 3]>,
    /// `image` in `sorted` order.
    pub(crate) sorted_image: Vec<[i32; 3]>,
    /// Cell used for shifts (zeros for open systems).
    pub(crate) cell: [[f64; 3]; 3],
    /// Squared search radius of the pre-filter (the cutoff with [`BIN_SLACK`]).
    pub(crate) radius2: f64,
}

impl Grid {
    fn new(geo: &Geometry, positions: &[[f64; 3]], cutoff: f64) -> Result<Self> {
        let n = positions.len();
        if n >= 1 << 31 {
            return Err(Error::TooLarge(format!(
                "a frame of {n} particles: the cell lists index at most 2^31 - 1"
            )));
        }
        let largest = |m: f64, x: &[f64; 3]| x.iter().fold(m, |m, v| m.max(v.abs()));
        let mut scale = if n >= PARALLEL_ITEMS {
            use rayon::prelude::*;
            positions
                .par_iter()
                .fold(|| 0.0f64, largest)
                .reduce(|| 0.0f64, f64::max)
        } else {
            positions.iter().fold(0.0f64, largest)
        };
        if geo.pbc.iter().any(|&p| p) {
            scale += geo.cell.iter().flatten().map(|v| v.abs()).sum::<f64>();
        }
        let rc = cutoff * (1.0 + BIN_SLACK) + BIN_SLACK * scale;

        // Extent of each direction in fractional units: [0, 1) when periodic, the bounding
        // range otherwise.
        let mut lo = [0.0f64; 3];
        let mut extent = [1.0f64; 3];
        let max_bins = (2 * n + 27) as f64;
        let mut nb_f = [1.0f64; 3];
        for k in 0..3 {
            if !geo.pbc[k] {
                let (mn, mx) = geo
                    .frac
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
                        (a.min(s[k]), b.max(s[k]))
                    });
                lo[k] = mn;
                extent[k] = mx - mn;
            }
            nb_f[k] = (extent[k] * geo.widths[k] / rc)
                .floor()
                .clamp(1.0, max_bins);
        }
        let mut nbins = nb_f.map(|v| v as usize);
        while nbins.iter().map(|&v| v as f64).product::<f64>() > max_bins {
            let k = (0..3).max_by_key(|&k| nbins[k]).unwrap_or(0);
            nbins[k] = (nbins[k] / 2).max(1);
        }
        let mut reach = [1i64; 3];
        for k in 0..3 {
            if geo.pbc[k] {
                let t = rc * nbins[k] as f64 / geo.widths[k] * (1.0 - 1e-12);
                let m = t.ceil().max(1.0);
                if m > f64::from(i32::MAX / 4) {
                    return Err(Error::TooLarge(format!(
                        "cutoff {cutoff} spans about {m:e} periodic images of a cell of width {}",
                        geo.widths[k]
                    )));
                }
                reach[k] = m as i64;
            }
        }

        let _span = tracing::trace_span!("grid_bins", particles = n).entered();
        // Bins per direction are at most 2n + 27 < 2^32, images at most MAX_FRACTIONAL in
        // magnitude (checked in `validate`): both casts below are exact.
        let place = |s: &[f64; 3]| {
            let mut b = [0u32; 3];
            let mut img = [0i32; 3];
            for k in 0..3 {
                let nb = nbins[k];
                let t = if geo.pbc[k] {
                    let f = s[k].floor();
                    img[k] = f as i32;
                    (s[k] - f) * nb as f64
                } else if extent[k] > 0.0 {
                    (s[k] - lo[k]) / extent[k] * nb as f64
                } else {
                    0.0
                };
                b[k] = (t.max(0.0) as usize).min(nb - 1) as u32;
            }
            (b, img)
        };
        let (bin_of, image): (Vec<[u32; 3]>, Vec<[i32; 3]>) = if n >= PARALLEL_ITEMS {
            use rayon::prelude::*;
            geo.frac.par_iter().map(place).unzip()
        } else {
            geo.frac.iter().map(place).unzip()
        };
        drop(_span);
        let _span = tracing::trace_span!("grid_sort").entered();
        let total = nbins[0] * nbins[1] * nbins[2];
        let linear =
            |b: [u32; 3]| (b[0] as usize * nbins[1] + b[1] as usize) * nbins[2] + b[2] as usize;
        if total >= 1 << 32 {
            return Err(Error::TooLarge(format!("{total} bins in one cell list")));
        }
        let (sorted, start, slot) = if n >= PARALLEL_ITEMS {
            bin_sort_parallel(&bin_of, total, linear)
        } else {
            bin_sort_serial(&bin_of, total, linear)
        };
        drop(_span);
        let _span = tracing::trace_span!("grid_wrap").entered();
        let cell = geo.cell;
        let wrapped = map_items(&sorted, |&j| {
            let (x, img) = (positions[j as usize], image[j as usize]);
            [0, 1, 2].map(|c| {
                x[c] - (img[0] as f64 * cell[0][c]
                    + img[1] as f64 * cell[1][c]
                    + img[2] as f64 * cell[2][c])
            })
        });
        let sorted_image = map_items(&sorted, |&j| image[j as usize]);
        Ok(Grid {
            nbins,
            reach,
            pbc: geo.pbc,
            bin_of,
            image,
            sorted,
            start,
            slot,
            wrapped,
            sorted_image,
            cell,
            radius2: rc * rc,
        })
    }

    /// Bin offsets to visit along direction `k` from bin `b`: `(target bin, image shift)`
    /// (`reach` bins each way with periodic images along periodic directions, the bin and its
    /// existing neighbours otherwise). An iterator, so the per-centre walk allocates nothing.
    fn offsets(&self, k: usize, b: usize) -> impl Iterator<Item = (usize, i64)> {
        let nb = self.nbins[k] as i64;
        let b = b as i64;
        let (lo, hi) = if self.pbc[k] {
            (b - self.reach[k], b + self.reach[k])
        } else {
            ((b - 1).max(0), (b + 1).min(nb - 1))
        };
        // Along open directions lo..=hi lies inside 0..nb: the target is t, the shift 0.
        (lo..=hi).map(move |t| (t.rem_euclid(nb) as usize, t.div_euclid(nb)))
    }

    /// Call `f(j, shift)` for every candidate neighbour `j` of particle `i` with its shift in
    /// the original (unwrapped) positions. Candidates are pre-filtered on the wrapped positions
    /// with a slightly enlarged cutoff, so every pair within the cutoff is among them. Each
    /// `(j, shift)` is produced at most once.
    fn for_each_candidate(&self, i: usize, mut f: impl FnMut(usize, [i64; 3])) {
        let b = self.bin_of[i].map(|v| v as usize);
        let img_i = self.image[i].map(i64::from);
        let wi = self.wrapped[self.slot[i] as usize];
        let cell = &self.cell;
        for (ta, qa) in self.offsets(0, b[0]) {
            for (tb, qb) in self.offsets(1, b[1]) {
                for (tc, qc) in self.offsets(2, b[2]) {
                    let l = (ta * self.nbins[1] + tb) * self.nbins[2] + tc;
                    let off = [0, 1, 2].map(|c| {
                        (qa as f64 * cell[0][c] + qb as f64 * cell[1][c] + qc as f64 * cell[2][c])
                            - wi[c]
                    });
                    for p in self.start[l] as usize..self.start[l + 1] as usize {
                        let w = self.wrapped[p];
                        let d = [w[0] + off[0], w[1] + off[1], w[2] + off[2]];
                        if dot(d, d) >= self.radius2 {
                            continue;
                        }
                        let img_j = self.sorted_image[p].map(i64::from);
                        f(
                            self.sorted[p] as usize,
                            [
                                qa + img_i[0] - img_j[0],
                                qb + img_i[1] - img_j[1],
                                qc + img_i[2] - img_j[2],
                            ],
                        );
                    }
                }
            }
        }
    }
}

/// Convert a shift to `i32`, reporting overflow as [`Error::TooLarge`].
fn shift_i32(s: [i64; 3]) -> Result<[i32; 3]> {
    let conv = |v: i64| {
        i32::try_from(v)
            .map_err(|_| Error::TooLarge(format!("cell shift {v} does not fit in 32 bits")))
    };
    Ok([conv(s[0])?, conv(s[1])?, conv(s[2])?])
}

/// Full neighbour list (see the module documentation) with the default pair limit
/// [`DEFAULT_MAX_PAIRS`].
///
/// `cell` rows are the cell vectors a, b, c; it is only used when some `pbc` is true and must
/// then be non-singular. Errors: [`Error::Hypers`] for a cutoff that is not positive and
/// finite, [`Error::Frame`] with `frame: 0` (callers re-wrap it with the right index) for a
/// singular cell or non-finite positions, [`Error::TooLarge`] when the list would exceed the
/// pair limit.
pub fn neighbor_list(
    positions: &[[f64; 3]],
    cell: &[[f64; 3]; 3],
    pbc: [bool; 3],
    cutoff: f64,
    self_pairs: bool,
) -> Result<PairList> {
    neighbor_list_with_limit(positions, cell, pbc, cutoff, self_pairs, DEFAULT_MAX_PAIRS)
}

/// [`neighbor_list`] with an explicit bound on the number of pairs.
///
/// Before searching, the expected number of pairs is estimated from the particle count, the
/// cutoff and the cell (see [`NeighborSearch::new`]) and [`Error::TooLarge`] is returned when
/// it exceeds `max_pairs`; the search also stops with [`Error::TooLarge`] as soon as the list
/// would exceed `max_pairs`. Runs in `O(N)` time for a fixed density and cutoff.
pub fn neighbor_list_with_limit(
    positions: &[[f64; 3]],
    cell: &[[f64; 3]; 3],
    pbc: [bool; 3],
    cutoff: f64,
    self_pairs: bool,
    max_pairs: usize,
) -> Result<PairList> {
    use rayon::prelude::*;
    let search = NeighborSearch::new(positions, cell, pbc, cutoff, max_pairs)?;
    let too_large = |count: usize| {
        Error::TooLarge(format!(
            "neighbour list holds at least {count} pairs ({} particles, cutoff {cutoff}), \
             more than the limit of {max_pairs}",
            positions.len()
        ))
    };
    // Blocks of centres searched in parallel, each into its own list, joined in centre order:
    // the same list as a serial search. `found` counts the pairs of all blocks so far, so a
    // list over the limit stops every block early.
    let found = std::sync::atomic::AtomicUsize::new(0);
    let n = positions.len();
    let block = n.div_ceil(4 * rayon::current_num_threads()).max(256);
    let blocks: Vec<PairList> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| -> Result<PairList> {
            let mut list = PairList::default();
            let mut row = Vec::new();
            for i in b * block..((b + 1) * block).min(n) {
                search.center_pairs(i, self_pairs, &mut row)?;
                let total =
                    found.fetch_add(row.len(), std::sync::atomic::Ordering::Relaxed) + row.len();
                if total > max_pairs {
                    return Err(too_large(total));
                }
                for &(j, s, r) in &row {
                    list.push(i, j, r, s);
                }
            }
            Ok(list)
        })
        .collect::<Result<_>>()?;
    let total: usize = blocks.iter().map(PairList::len).sum();
    let mut list = PairList {
        centers: Vec::with_capacity(total),
        neighbors: Vec::with_capacity(total),
        vectors: Vec::with_capacity(total),
        shifts: Vec::with_capacity(total),
    };
    for b in blocks {
        list.centers.extend(b.centers);
        list.neighbors.extend(b.neighbors);
        list.vectors.extend(b.vectors);
        list.shifts.extend(b.shifts);
    }
    Ok(list)
}

/// A prepared cell-list search over one frame that yields the pairs of one centre at a time,
/// so that callers can stream pairs in bounded memory instead of holding the whole list.
pub struct NeighborSearch<'a> {
    positions: &'a [[f64; 3]],
    cell: [[f64; 3]; 3],
    grid: Option<Grid>,
    cutoff2: f64,
}

/// A lower bound on the pairs of an open system: `N(N-1)` when the whole bounding box fits inside
/// the cutoff (every pair is a neighbour), else 0. It lets a huge cutoff be refused before any
/// pair is enumerated.
fn open_pair_lower_bound(positions: &[[f64; 3]], cutoff: f64) -> f64 {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in positions {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let diagonal2: f64 = (0..3).map(|k| (hi[k] - lo[k]).powi(2)).sum();
    let n = positions.len() as f64;
    if positions.is_empty() || diagonal2.sqrt() >= cutoff {
        0.0
    } else {
        n * (n - 1.0)
    }
}

/// One pair found by [`NeighborSearch::center_pairs`]: neighbour, cell shift, `r_ij`.
pub type CenterPair = (usize, [i32; 3], [f64; 3]);

impl<'a> NeighborSearch<'a> {
    /// Validates the inputs (as [`neighbor_list`]), refuses cutoffs whose expected pair count
    /// exceeds `max_pairs` ([`Error::TooLarge`]), and bins the particles.
    pub fn new(
        positions: &'a [[f64; 3]],
        cell: &[[f64; 3]; 3],
        pbc: [bool; 3],
        cutoff: f64,
        max_pairs: usize,
    ) -> Result<Self> {
        let geo = validate(positions, cell, pbc, cutoff)?;
        let n = positions.len();
        let n2 = (n as f64) * (n as f64);
        let images: f64 = (0..3)
            .filter(|&k| pbc[k])
            .map(|k| 2.0 * cutoff / geo.widths[k])
            .product();
        let estimate = match pbc.iter().filter(|&&p| p).count() {
            3 => n2 * 4.0 / 3.0 * std::f64::consts::PI * cutoff.powi(3) / geo.volume,
            2 if images > 1.0 => n2 * images * std::f64::consts::FRAC_PI_4,
            1 if images > 1.0 => n2 * images,
            0 => open_pair_lower_bound(positions, cutoff),
            _ => 0.0,
        };
        if estimate > max_pairs as f64 {
            let cell = if pbc.iter().any(|&p| p) {
                format!("cell widths {:?}", geo.widths)
            } else {
                "open system, all particles within the cutoff".to_string()
            };
            return Err(Error::TooLarge(format!(
                "neighbour list would hold about {estimate:.3e} pairs ({n} particles, cutoff \
                 {cutoff}, {cell}), more than the limit of {max_pairs}"
            )));
        }
        let grid = if n == 0 {
            None
        } else {
            Some(Grid::new(&geo, positions, cutoff)?)
        };
        Ok(NeighborSearch {
            positions,
            cell: geo.cell,
            grid,
            cutoff2: cutoff * cutoff,
        })
    }

    /// The frame's cell list (`None` for a frame without particles).
    pub(crate) fn grid(&self) -> Option<&Grid> {
        self.grid.as_ref()
    }

    /// The positions the search was built on.
    pub(crate) fn positions(&self) -> &[[f64; 3]] {
        self.positions
    }

    /// Squared cutoff of the final pair test (`r · r < cutoff²`).
    pub(crate) fn cutoff2(&self) -> f64 {
        self.cutoff2
    }

    /// Replaces `row` with the pairs of centre `i` (self pair first when `self_pairs`), sorted
    /// by (neighbour, shift): the same pairs and order as [`neighbor_list`] gives for `i`.
    pub fn center_pairs(
        &self,
        i: usize,
        self_pairs: bool,
        row: &mut Vec<CenterPair>,
    ) -> Result<()> {
        row.clear();
        self.for_each_pair(i, self_pairs, |j, s, r| row.push((j, s, r)))?;
        row.sort_unstable_by_key(|a| (a.0, a.1));
        Ok(())
    }

    /// Calls `visit(j)` for the neighbour of every pair of centre `i` (the self pair included
    /// when `self_pairs`), in no particular order, and returns the number of pairs: exactly
    /// the pairs [`NeighborSearch::center_pairs`] lists (same test, same errors), without
    /// building or sorting the list. The counting pass of a system runs on this.
    pub fn visit_center_pairs(
        &self,
        i: usize,
        self_pairs: bool,
        mut visit: impl FnMut(usize),
    ) -> Result<usize> {
        let mut count = 0;
        self.for_each_pair(i, self_pairs, |j, _, _| {
            visit(j);
            count += 1;
        })?;
        Ok(count)
    }

    /// The one pair test behind [`NeighborSearch::center_pairs`] and
    /// [`NeighborSearch::visit_center_pairs`]: calls `f(j, shift, r_ij)` for every pair of
    /// centre `i` (the self pair `(i, 0, 0)` first when `self_pairs`), in candidate order.
    fn for_each_pair(
        &self,
        i: usize,
        self_pairs: bool,
        mut f: impl FnMut(usize, [i32; 3], [f64; 3]),
    ) -> Result<()> {
        let Some(grid) = &self.grid else {
            return Ok(());
        };
        if self_pairs {
            f(i, [0; 3], [0.0; 3]);
        }
        let mut failure = None;
        grid.for_each_candidate(i, |j, s| {
            if i == j && s == [0; 3] {
                return;
            }
            match shift_i32(s) {
                Ok(s) => {
                    let r = pair_vector(self.positions[i], self.positions[j], s, &self.cell);
                    if dot(r, r) < self.cutoff2 {
                        f(j, s, r);
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Reference `O(N²)` neighbour list with the same pair set, order and errors as
/// [`neighbor_list`] (without the pair limit). For every pair `(i, j)` it tries every shift in
/// a range around the one that brings `j` closest to `i`, wide enough for the cutoff
/// (`ceil(cutoff / width) + 1` cells each way per periodic direction). Meant for tests.
pub fn brute_force_neighbor_list(
    positions: &[[f64; 3]],
    cell: &[[f64; 3]; 3],
    pbc: [bool; 3],
    cutoff: f64,
    self_pairs: bool,
) -> Result<PairList> {
    let geo = validate(positions, cell, pbc, cutoff)?;
    let cell = &geo.cell;
    let cutoff2 = cutoff * cutoff;
    let mut list = PairList::default();
    let mut row: Vec<(usize, [i32; 3], [f64; 3])> = Vec::new();
    for (i, &xi) in positions.iter().enumerate() {
        row.clear();
        if self_pairs {
            row.push((i, [0; 3], [0.0; 3]));
        }
        for (j, &xj) in positions.iter().enumerate() {
            let mut ranges = [(0i64, 0i64); 3];
            for k in 0..3 {
                if pbc[k] {
                    let centre = (geo.frac[i][k] - geo.frac[j][k]).round() as i64;
                    let half = (cutoff / geo.widths[k]).ceil() as i64 + 1;
                    ranges[k] = (centre - half, centre + half);
                }
            }
            for sa in ranges[0].0..=ranges[0].1 {
                for sb in ranges[1].0..=ranges[1].1 {
                    for sc in ranges[2].0..=ranges[2].1 {
                        let s = shift_i32([sa, sb, sc])?;
                        if i == j && s == [0; 3] {
                            continue;
                        }
                        let r = pair_vector(xi, xj, s, cell);
                        if dot(r, r) < cutoff2 {
                            row.push((j, s, r));
                        }
                    }
                }
            }
        }
        row.sort_unstable_by_key(|a| (a.0, a.1));
        for &(j, s, r) in &row {
            list.push(i, j, r, s);
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests;
