//! In-memory representation of one configuration (an ASE-like `Atoms`).

use std::collections::BTreeMap;

/// A per-particle real-valued array, stored row-major (`values.len() == n_particles * ncols`).
#[derive(Debug, Clone, PartialEq)]
pub struct PerParticle {
    /// Number of columns per particle (1 for `c_diameter[1]`, 4 for `c_q`, 9 for a matrix).
    pub ncols: usize,
    /// Row-major values.
    pub values: Vec<f64>,
}

impl PerParticle {
    /// Row `i` of the array.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.ncols..(i + 1) * self.ncols]
    }
}

/// One frame: particles, their types, the cell and named per-particle arrays.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// Cartesian positions, one row per particle.
    pub positions: Vec<[f64; 3]>,
    /// Particle types: atomic numbers as ASE assigns them (`X` is 0).
    pub numbers: Vec<i32>,
    /// Cell vectors as rows (a, b, c); all zeros when there is no cell.
    pub cell: [[f64; 3]; 3],
    /// Periodicity along a, b, c.
    pub pbc: [bool; 3],
    /// Extra per-particle real arrays by their exact column name, e.g. `c_q`, `c_diameter[1]`.
    pub arrays: BTreeMap<String, PerParticle>,
    /// Key=value pairs of the comment line other than `Lattice`, `Properties` and `pbc`.
    pub info: BTreeMap<String, String>,
}

impl Frame {
    /// Number of particles.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// True when the frame has no particles.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// True when any direction is periodic.
    pub fn is_periodic(&self) -> bool {
        self.pbc.iter().any(|&p| p)
    }
}
