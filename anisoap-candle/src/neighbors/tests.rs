//! The cell-list search against the brute-force list, invariants and errors; the per-centre
//! search against the full list.

use super::*;
use proptest::prelude::*;
use std::collections::HashSet;

/// SplitMix64, enough for reproducible test systems.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

const CUBIC: [[f64; 3]; 3] = [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]];
const TRICLINIC: [[f64; 3]; 3] = [[4.0, 0.0, 0.0], [1.3, 3.7, 0.0], [-0.9, 1.1, 4.2]];

fn random_positions(
    rng: &mut Rng,
    n: usize,
    cell: &[[f64; 3]; 3],
    lo: f64,
    hi: f64,
) -> Vec<[f64; 3]> {
    (0..n)
        .map(|_| {
            let s = [
                rng.uniform(lo, hi),
                rng.uniform(lo, hi),
                rng.uniform(lo, hi),
            ];
            let mut x = [0.0; 3];
            for (c, xc) in x.iter_mut().enumerate() {
                *xc = s[0] * cell[0][c] + s[1] * cell[1][c] + s[2] * cell[2][c];
            }
            x
        })
        .collect()
}

fn check_against_brute(
    positions: &[[f64; 3]],
    cell: &[[f64; 3]; 3],
    pbc: [bool; 3],
    cutoff: f64,
) -> usize {
    let mut len = 0;
    for self_pairs in [false, true] {
        let fast = neighbor_list(positions, cell, pbc, cutoff, self_pairs).unwrap();
        let slow = brute_force_neighbor_list(positions, cell, pbc, cutoff, self_pairs).unwrap();
        assert_eq!(fast, slow, "pbc {pbc:?} cutoff {cutoff} self {self_pairs}");
        check_invariants(&fast, positions, cell, cutoff, self_pairs);
        len = fast.len();
    }
    len
}

fn check_invariants(
    list: &PairList,
    positions: &[[f64; 3]],
    cell: &[[f64; 3]; 3],
    cutoff: f64,
    self_pairs: bool,
) {
    let keys: Vec<(usize, usize, [i32; 3])> = (0..list.len())
        .map(|p| (list.centers[p], list.neighbors[p], list.shifts[p]))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    let set: HashSet<_> = keys.iter().copied().collect();
    let mut n_self = 0;
    for (p, &(i, j, s)) in keys.iter().enumerate() {
        assert!(
            set.contains(&(j, i, [-s[0], -s[1], -s[2]])),
            "symmetry of {i} {j} {s:?}"
        );
        let r = list.vectors[p];
        if i == j && s == [0; 3] {
            n_self += 1;
            assert_eq!(r, [0.0; 3]);
        } else {
            assert_eq!(r, pair_vector(positions[i], positions[j], s, cell));
            assert!(dot(r, r) < cutoff * cutoff);
        }
    }
    assert_eq!(n_self, if self_pairs { positions.len() } else { 0 });
}

#[test]
fn open_systems_match_brute_force() {
    let mut rng = Rng(1);
    let box_ = [[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]];
    for (n, cutoff) in [
        (1, 2.0),
        (2, 30.0),
        (50, 1.0),
        (120, 2.5),
        (120, 7.0),
        (200, 0.3),
    ] {
        let pos = random_positions(&mut rng, n, &box_, 0.0, 1.0);
        check_against_brute(&pos, &[[0.0; 3]; 3], [false; 3], cutoff);
        // Open systems ignore whatever cell is given, even a singular one.
        let a = neighbor_list(&pos, &[[1.0; 3]; 3], [false; 3], cutoff, true).unwrap();
        let b = neighbor_list(&pos, &box_, [false; 3], cutoff, true).unwrap();
        assert_eq!(a, b);
    }
    // Flat and collinear systems.
    let line: Vec<[f64; 3]> = (0..40).map(|i| [i as f64 * 0.37, 0.0, 0.0]).collect();
    assert_eq!(
        check_against_brute(&line, &[[0.0; 3]; 3], [false; 3], 1.0),
        2 * (39 + 38) + 40
    );
}

#[test]
fn periodic_systems_match_brute_force() {
    let mut rng = Rng(2);
    let small = [[1.5, 0.0, 0.0], [0.4, 1.2, 0.0], [0.2, -0.3, 1.7]];
    let long = [[12.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 3.0]];
    let left_handed = [[0.0, 4.0, 0.0], [4.5, 0.0, 0.0], [0.0, 0.0, 3.5]];
    for cell in [CUBIC, TRICLINIC, small, long, left_handed] {
        for pbc in [
            [true; 3],
            [true, false, true],
            [false, true, false],
            [true, true, false],
        ] {
            for (n, cutoff, lo, hi) in [
                (40, 1.9, 0.0, 1.0),
                (30, 3.3, -2.0, 3.0),
                (12, 5.0, 0.0, 1.0),
                (3, 4.5, -5.0, 7.0),
            ] {
                let pos = random_positions(&mut rng, n, &cell, lo, hi);
                check_against_brute(&pos, &cell, pbc, cutoff);
            }
        }
    }
}

#[test]
fn simple_cubic_lattice_counts() {
    let cell = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let pos = [[0.25, 0.5, 0.75]];
    // 6 first neighbours at 1, 12 at sqrt(2) < 1.5, none at sqrt(3).
    let l = neighbor_list(&pos, &cell, [true; 3], 1.5, false).unwrap();
    assert_eq!(l.len(), 18);
    assert!(l.centers.iter().chain(&l.neighbors).all(|&i| i == 0));
    assert_eq!(l.shifts[0], [-1, -1, 0]);
    assert_eq!(l.vectors[0], [-1.0, -1.0, 0.0]);
    assert_eq!(l.shifts[8], [0, 0, -1]);
    // Cutoff exactly 1: strict test excludes the first shell.
    assert!(neighbor_list(&pos, &cell, [true; 3], 1.0, false)
        .unwrap()
        .is_empty());
    let l = neighbor_list(&pos, &cell, [true; 3], 1.0, true).unwrap();
    assert_eq!((l.len(), l.shifts[0], l.vectors[0]), (1, [0; 3], [0.0; 3]));
    // 6 + 12 + 8 + 6 (at 2) + 24 (at sqrt 5) = 56 below 2.3.
    assert_eq!(check_against_brute(&pos, &cell, [true; 3], 2.3), 57);
    // Only along a: two images at distance 1 and two at 2.
    let l = neighbor_list(&pos, &cell, [true, false, false], 2.5, false).unwrap();
    assert_eq!(l.shifts, vec![[-2, 0, 0], [-1, 0, 0], [1, 0, 0], [2, 0, 0]]);
}

#[test]
fn cutoff_boundary_is_strict() {
    let pos = [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]];
    let l = neighbor_list(&pos, &[[0.0; 3]; 3], [false; 3], 2.0, false).unwrap();
    assert!(l.is_empty());
    let l = neighbor_list(&pos, &[[0.0; 3]; 3], [false; 3], 2.0 + 1e-12, false).unwrap();
    assert_eq!(l.centers, vec![0, 1]);
    assert_eq!(l.neighbors, vec![1, 0]);
    assert_eq!(l.vectors, vec![[2.0, 0.0, 0.0], [-2.0, 0.0, 0.0]]);
    // Periodic image at exactly the cutoff through a shift.
    let cell = [[3.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]];
    let pos = [[0.5, 1.0, 1.0], [1.5, 1.0, 1.0]];
    let l = neighbor_list(&pos, &cell, [true; 3], 2.0, false).unwrap();
    assert_eq!(l.shifts, vec![[0; 3], [0; 3]]);
    assert_eq!(l.vectors, vec![[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]);
    let l = neighbor_list(&pos, &cell, [true; 3], 2.0 + 1e-9, false).unwrap();
    assert_eq!(l.shifts, vec![[-1, 0, 0], [0; 3], [0; 3], [1, 0, 0]]);
    assert_eq!(l.vectors[0], [-2.0, 0.0, 0.0]);
}

#[test]
fn unwrapped_positions_give_shifts() {
    let cell = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
    let pos = [[0.5, 0.5, 0.5], [0.5 + 2.0 * 7.0, 0.5, 1.0 - 2.0 * 3.0]];
    let l = neighbor_list(&pos, &cell, [true; 3], 0.75, false).unwrap();
    assert_eq!(l.centers, vec![0, 1]);
    assert_eq!(l.shifts, vec![[-7, 0, 3], [7, 0, -3]]);
    assert_eq!(l.vectors, vec![[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]]);
}

#[test]
fn validation_errors() {
    let pos = [[0.0; 3], [1.0, 0.0, 0.0]];
    for cutoff in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = neighbor_list(&pos, &CUBIC, [true; 3], cutoff, true).unwrap_err();
        assert!(
            matches!(&e, Error::Hypers(m) if m.contains("cutoff_radius")),
            "{e}"
        );
    }
    let singular = [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
    for (cell, pbc) in [
        (singular, [true; 3]),
        (singular, [false, false, true]),
        ([[0.0; 3]; 3], [true, false, false]),
    ] {
        let e = neighbor_list(&pos, &cell, pbc, 1.5, true).unwrap_err();
        assert!(
            matches!(&e, Error::Frame { frame: 0, message } if message.contains("cell is singular")),
            "{e}"
        );
    }
    let e = neighbor_list(&[[f64::NAN, 0.0, 0.0]], &CUBIC, [false; 3], 1.0, true).unwrap_err();
    assert!(matches!(e, Error::Frame { .. }));
    // Huge cutoff in a small periodic cell.
    let e = neighbor_list(&pos, &CUBIC, [true; 3], 1e4, true).unwrap_err();
    assert!(
        matches!(&e, Error::TooLarge(m) if m.contains("pairs")),
        "{e}"
    );
    let e = neighbor_list(&pos, &CUBIC, [false, true, false], 1e12, true).unwrap_err();
    assert!(matches!(e, Error::TooLarge(_)), "{e}");
    // Exact limit in an open system: 2 self + 2 pairs.
    assert_eq!(
        neighbor_list_with_limit(&pos, &CUBIC, [false; 3], 1.5, true, 4)
            .unwrap()
            .len(),
        4
    );
    let e = neighbor_list_with_limit(&pos, &CUBIC, [false; 3], 1.5, true, 3).unwrap_err();
    assert!(matches!(e, Error::TooLarge(_)), "{e}");
    // Empty input.
    assert!(neighbor_list(&[], &CUBIC, [true; 3], 1.0, true)
        .unwrap()
        .is_empty());
}

#[test]
fn twenty_thousand_particles_at_liquid_density() {
    // Lennard-Jones liquid density 0.8, cutoff 2.5: about 52 neighbours per particle.
    let n = 20_000;
    let side = (n as f64 / 0.8).cbrt();
    let cell = [[side, 0.0, 0.0], [0.0, side, 0.0], [0.0, 0.0, side]];
    let mut rng = Rng(7);
    let pos = random_positions(&mut rng, n, &cell, 0.0, 1.0);
    let cutoff = 2.5;
    let expected = 0.8 * 4.0 / 3.0 * std::f64::consts::PI * cutoff * cutoff * cutoff;
    for pbc in [[true; 3], [false; 3]] {
        let l = neighbor_list(&pos, &cell, pbc, cutoff, false).unwrap();
        let per_particle = l.len() as f64 / n as f64;
        let (lo, hi) = if pbc[0] { (0.95, 1.05) } else { (0.75, 1.0) };
        assert!(
            per_particle > lo * expected && per_particle < hi * expected,
            "{per_particle}"
        );
        assert!(l.vectors.iter().all(|r| dot(*r, *r) < cutoff * cutoff));
        // The list is searched in parallel blocks of centres (20 000 centres: many blocks);
        // joined, it is the per-centre rows in centre order.
        let search = NeighborSearch::new(&pos, &cell, pbc, cutoff, usize::MAX).unwrap();
        let mut row = Vec::new();
        let mut at = 0;
        for i in 0..n {
            search.center_pairs(i, false, &mut row).unwrap();
            for &(j, shift, r) in &row {
                assert_eq!(
                    (l.centers[at], l.neighbors[at], l.shifts[at], l.vectors[at]),
                    (i, j, shift, r),
                    "pair {at}"
                );
                at += 1;
            }
        }
        assert_eq!(at, l.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_cells_match_brute_force(
        seed in any::<u64>(),
        n in 1usize..10,
        cutoff in 0.2f64..2.5,
        pbc in any::<[bool; 3]>(),
        diag in prop::array::uniform3(0.8f64..4.0),
        off in prop::array::uniform3(-1.0f64..1.0),
    ) {
        let cell = [[diag[0], 0.0, 0.0], [off[0], diag[1], 0.0], [off[1], off[2], diag[2]]];
        let mut rng = Rng(seed);
        let pos = random_positions(&mut rng, n, &cell, -1.5, 2.5);
        for self_pairs in [false, true] {
            let fast = neighbor_list(&pos, &cell, pbc, cutoff, self_pairs).unwrap();
            let slow = brute_force_neighbor_list(&pos, &cell, pbc, cutoff, self_pairs).unwrap();
            prop_assert_eq!(&fast, &slow);
            check_invariants(&fast, &pos, &cell, cutoff, self_pairs);
        }
    }
}

mod streaming_tests {
    use super::*;

    #[test]
    fn per_center_search_equals_full_list() {
        let cell = [[5.0, 0.0, 0.0], [1.0, 4.5, 0.0], [0.5, 0.7, 4.0]];
        let positions: Vec<[f64; 3]> = (0..40)
            .map(|k| {
                let t = k as f64;
                [(t * 1.37) % 6.0, (t * 2.11) % 5.0 - 0.5, (t * 0.73) % 4.5]
            })
            .collect();
        for (pbc, self_pairs) in [
            ([true; 3], true),
            ([true, false, true], false),
            ([false; 3], true),
        ] {
            let full = neighbor_list(&positions, &cell, pbc, 3.1, self_pairs).unwrap();
            let search =
                NeighborSearch::new(&positions, &cell, pbc, 3.1, DEFAULT_MAX_PAIRS).unwrap();
            let mut row = Vec::new();
            let mut k = 0;
            for i in 0..positions.len() {
                search.center_pairs(i, self_pairs, &mut row).unwrap();
                for &(j, s, r) in &row {
                    assert_eq!(
                        (full.centers[k], full.neighbors[k], full.shifts[k]),
                        (i, j, s)
                    );
                    assert_eq!(full.vectors[k], r);
                    k += 1;
                }
            }
            assert_eq!(k, full.len());
        }
    }
}

/// The parallel bin sort (large frames) gives the serial counting sort's order, bin starts
/// and slots, with empty bins at the start, between and at the end.
#[test]
fn parallel_bin_sort_equals_counting_sort() {
    let mut rng = Rng(11);
    let nbins = [7usize, 5, 9];
    let linear =
        |b: [u32; 3]| (b[0] as usize * nbins[1] + b[1] as usize) * nbins[2] + b[2] as usize;
    let bin_of: Vec<[u32; 3]> = (0..20_000)
        .map(|_| {
            // Bins 1..6 along the first direction only: bins 0 and 6 stay empty.
            [
                1 + (rng.next_u64() % 5) as u32,
                (rng.next_u64() % 5) as u32,
                (rng.next_u64() % 9) as u32,
            ]
        })
        .collect();
    let total = nbins.iter().product();
    let serial = bin_sort_serial(&bin_of, total, linear);
    let parallel = bin_sort_parallel(&bin_of, total, linear);
    assert_eq!(serial.1[0], 0);
    assert_eq!(serial.1[total] as usize, bin_of.len());
    assert!(
        serial.1[linear([6, 0, 0])] as usize == bin_of.len(),
        "last bins empty"
    );
    assert_eq!(serial, parallel);
}

/// Large frames are validated in parallel: the error still names the first bad particle
/// (non-finite position, or one too many cell vectors away).
#[test]
fn large_frames_report_the_first_bad_particle() {
    let mut pos: Vec<[f64; 3]> = (0..6000)
        .map(|i| [(i % 20) as f64, (i / 20 % 20) as f64, (i / 400) as f64])
        .collect();
    pos[4321][1] = f64::NAN;
    pos[5000][0] = f64::INFINITY;
    let e = neighbor_list(&pos, &CUBIC, [false; 3], 1.0, true).unwrap_err();
    assert!(e.to_string().contains("particle 4321"), "{e}");
    pos[4321][1] = 0.0;
    pos[5000][0] = 0.0;
    pos[4444][2] = 1e300;
    pos[5999][2] = 1e300;
    let e = neighbor_list(&pos, &CUBIC, [true; 3], 1.0, true).unwrap_err();
    assert!(e.to_string().contains("particle 4444 lies"), "{e}");
}
