//! Packed indexing of 3-D monomials `x^a y^b z^c` and the moment recurrence plan.

/// Exponents `(a, b, c)` of a monomial.
pub type Exponents = [usize; 3];

/// All monomials of total degree `0..=max_degree` in a fixed packed order: by degree, then `a`
/// descending, then `b` descending.
#[derive(Debug, Clone)]
pub struct MonomialIndex {
    /// Highest total degree.
    pub max_degree: usize,
    /// Exponents of each packed monomial.
    pub exponents: Vec<Exponents>,
}

impl MonomialIndex {
    /// All monomials up to `max_degree`.
    pub fn new(max_degree: usize) -> Self {
        let mut exponents = Vec::new();
        for d in 0..=max_degree {
            for a in (0..=d).rev() {
                for b in (0..=d - a).rev() {
                    exponents.push([a, b, d - a - b]);
                }
            }
        }
        MonomialIndex {
            max_degree,
            exponents,
        }
    }

    /// Number of monomials of degree `< d` (the packed offset of degree `d`).
    pub fn degree_offset(d: usize) -> usize {
        d * (d + 1) * (d + 2) / 6
    }

    /// Packed position of a monomial.
    pub fn position(e: Exponents) -> usize {
        let d = e[0] + e[1] + e[2];
        // Within degree d: a descends from d; each a contributes (d - a + 1) entries.
        let before_a: usize = ((e[0] + 1)..=d).map(|a| d - a + 1).sum();
        Self::degree_offset(d) + before_a + (d - e[0] - e[1])
    }

    /// Number of packed monomials.
    pub fn len(&self) -> usize {
        self.exponents.len()
    }

    /// True only for an empty index (never, since degree 0 always exists).
    pub fn is_empty(&self) -> bool {
        self.exponents.is_empty()
    }
}

/// How one moment of degree ≥ 1 is obtained from lower ones (Stein's identity):
/// `m[k] = mu[dir] * m[parent] + Σ_j sigma[dir][j] * weight[j] * m[grandparent[j]]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecurrenceStep {
    /// Lowering direction (0 = x if `k_x ≥ 1`, else 1 = y if `k_y ≥ 1`, else 2 = z).
    pub dir: usize,
    /// Packed index of `k - e_dir`.
    pub parent: usize,
    /// Packed index of `parent - e_j` (0 when `weight[j] == 0`).
    pub grandparent: [usize; 3],
    /// Exponent `parent_j`, the integer weight of each Σ term.
    pub weight: [usize; 3],
}

/// Recurrence steps for every packed monomial of degree ≥ 1, in packed order.
pub fn recurrence_plan(index: &MonomialIndex) -> Vec<RecurrenceStep> {
    index
        .exponents
        .iter()
        .skip(1)
        .map(|&k| {
            let dir = if k[0] >= 1 {
                0
            } else if k[1] >= 1 {
                1
            } else {
                2
            };
            let mut parent = k;
            parent[dir] -= 1;
            let mut grandparent = [0; 3];
            let mut weight = [0; 3];
            for j in 0..3 {
                if parent[j] >= 1 {
                    let mut g = parent;
                    g[j] -= 1;
                    grandparent[j] = MonomialIndex::position(g);
                    weight[j] = parent[j];
                }
            }
            RecurrenceStep {
                dir,
                parent: MonomialIndex::position(parent),
                grandparent,
                weight,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_positions_are_consistent() {
        let index = MonomialIndex::new(6);
        assert_eq!(index.len(), 84);
        for (i, &e) in index.exponents.iter().enumerate() {
            assert_eq!(MonomialIndex::position(e), i, "{e:?}");
        }
        assert_eq!(index.exponents[1], [1, 0, 0]);
        assert_eq!(index.exponents[3], [0, 0, 1]);
    }

    #[test]
    fn plan_lowers_x_first() {
        let index = MonomialIndex::new(3);
        let plan = recurrence_plan(&index);
        let k = MonomialIndex::position([1, 1, 0]);
        let step = plan[k - 1];
        assert_eq!(step.dir, 0);
        assert_eq!(step.parent, MonomialIndex::position([0, 1, 0]));
        assert_eq!(step.weight, [0, 1, 0]);
        assert_eq!(step.grandparent[1], 0);
    }
}
