//! The feature layout, written down once: which column of an output row holds which
//! coefficient, as named integer rows (like metatensor's `Labels`).
//!
//! Everything that names features derives from the functions here: the CLI's column names
//! ([`density_column_names`], [`power_spectrum_column_names`], through
//! [`Layout::density_labels`](crate::system::Layout::density_labels) and
//! [`Layout::power_spectrum_labels`](crate::system::Layout::power_spectrum_labels)), and the
//! keys, property labels and column ranges of the Python package's metatensor blocks
//! ([`density_blocks`], [`power_spectrum_blocks`]). The tests at the bottom check each label
//! against the coefficient it names, computed independently by [`crate::reference`].
//!
//! The value layout (the original's, maths notes §10.2 and §11.4): centre-type blocks in
//! ascending type order; inside a block, for `l = 0..=lmax`,
//! * density: `m = -l..=l`, then `p = n E_t + e` (n-major, neighbour type `U_t[e]` fastest);
//! * power spectrum: all ordered pairs `(p, q)`, `q` fastest.
//!
//! The original labels its density properties type-major (row `p` is
//! `(p mod N_l, U_t[p div N_l])`), which does not describe its own n-major values when
//! `N_l > 1` and `E_t > 1`. [`PropertyOrder::Values`] gives labels that describe the values;
//! [`PropertyOrder::Original`] reproduces the original's label rows (same values, same column
//! order, only the label rows differ).

use crate::system::Layout;
use std::ops::Range;

/// Named integer rows: `values` is row-major with `names.len()` entries per row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// Name of each column of a label row.
    pub names: Vec<&'static str>,
    values: Vec<i32>,
}

impl Labels {
    /// Empty labels with these names.
    pub fn new(names: &[&'static str]) -> Self {
        Labels {
            names: names.to_vec(),
            values: Vec::new(),
        }
    }

    /// Appends one row (its length must equal the number of names).
    pub fn push(&mut self, row: &[i32]) {
        assert_eq!(row.len(), self.names.len(), "label row of the wrong size");
        self.values.extend_from_slice(row);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        if self.names.is_empty() {
            0
        } else {
            self.values.len() / self.names.len()
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[i32] {
        let w = self.names.len();
        &self.values[i * w..(i + 1) * w]
    }

    /// All rows, in order.
    pub fn rows(&self) -> impl Iterator<Item = &[i32]> {
        self.values.chunks(self.names.len().max(1))
    }

    /// The row-major values (`len() × names.len()`).
    pub fn values(&self) -> &[i32] {
        &self.values
    }

    /// Index of the first row equal to `row`.
    pub fn position(&self, row: &[i32]) -> Option<usize> {
        self.rows().position(|r| r == row)
    }
}

/// How density property rows are listed (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyOrder {
    /// Row `p` is `(n, u) = (p div E_t, U_t[p mod E_t])`: the labels describe the values.
    Values,
    /// Row `p` is `(p mod N_l, U_t[p div N_l])`: the original's labels (type-major).
    Original,
}

/// Names of the density property labels (the original's `transform()` properties).
pub const DENSITY_PROPERTY_NAMES: [&str; 2] = ["n", "neighbor_types"];
/// Names of the power-spectrum property labels (the original's `cg_combine` properties).
pub const POWER_SPECTRUM_PROPERTY_NAMES: [&str; 6] = [
    "n_1_a",
    "neighbor_types_1_a",
    "k_2",
    "n_1_b",
    "neighbor_types_1_b",
    "l_2",
];
/// Names of a full density row's column labels.
pub const DENSITY_COLUMN_NAMES: [&str; 5] = [
    "types_center",
    "angular_channel",
    "spherical_component_m",
    "n",
    "neighbor_types",
];
/// Names of a full power-spectrum row's column labels.
pub const POWER_SPECTRUM_COLUMN_NAMES: [&str; 6] = [
    "types_center",
    "angular_channel",
    "n_1_a",
    "neighbor_types_1_a",
    "n_1_b",
    "neighbor_types_1_b",
];

/// One metatensor-like block: its key, and where its values sit in a full output row.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Index of the centre block in [`Layout::center_types`].
    pub center_block: usize,
    /// Centre type `t` (atomic number).
    pub center_type: i32,
    /// Angular channel `l` (density) or `0` (power spectrum, whose block spans every `l`).
    pub angular_channel: usize,
    /// Columns of a full output row holding this block, row-major as
    /// `[components, properties]`.
    pub columns: Range<usize>,
    /// Number of components: `2l + 1` (m = −l..l) for the density, 1 for the power spectrum.
    pub components: usize,
    /// Property labels, one row per property column.
    pub properties: Labels,
}

/// Number of radial functions of channel `l`.
fn n_l(layout: &Layout, l: usize) -> usize {
    layout.n_radial[l]
}

/// Neighbour types `U_t` of centre block `b`, ascending.
fn neighbor_types(layout: &Layout, b: usize) -> Vec<i32> {
    layout.neighbor_slots[b]
        .iter()
        .map(|&s| layout.types[s])
        .collect()
}

/// `(n, u)` of density property `p` of centre block `b`, channel `l`, in the value layout.
fn value_property(layout: &Layout, b: usize, l: usize, p: usize) -> (usize, i32) {
    let _ = l;
    let u = neighbor_types(layout, b);
    (p / u.len(), u[p % u.len()])
}

/// Density property labels `(n, neighbor_types)` of centre block `b`, channel `l`.
pub fn density_properties(layout: &Layout, b: usize, l: usize, order: PropertyOrder) -> Labels {
    let u = neighbor_types(layout, b);
    let (e_t, n) = (u.len(), n_l(layout, l));
    let mut labels = Labels::new(&DENSITY_PROPERTY_NAMES);
    for p in 0..n * e_t {
        let (radial, t) = match order {
            PropertyOrder::Values => value_property(layout, b, l, p),
            PropertyOrder::Original => (p % n, u[p / n]),
        };
        labels.push(&[radial as i32, t]);
    }
    labels
}

/// Power-spectrum property labels of centre block `b`: for `l`, then `p`, then `q`, the row
/// `(n_p, u_p, l, n_q, u_q, l)`, where `(n_p, u_p)` is density property row `p` in `order`
/// (the original copies its density label rows, so it inherits their order).
pub fn power_spectrum_properties(layout: &Layout, b: usize, order: PropertyOrder) -> Labels {
    let mut labels = Labels::new(&POWER_SPECTRUM_PROPERTY_NAMES);
    for l in 0..layout.n_radial.len() {
        let density = density_properties(layout, b, l, order);
        for p in density.rows() {
            for q in density.rows() {
                labels.push(&[p[0], p[1], l as i32, q[0], q[1], l as i32]);
            }
        }
    }
    labels
}

/// The density blocks, keyed `(types_center, angular_channel)` in the original's key order
/// (t ascending, then l), with their columns in a full density row
/// ([`Quantity::Density`](crate::Quantity::Density)).
pub fn density_blocks(layout: &Layout, order: PropertyOrder) -> Vec<Block> {
    let (offsets, _) = layout.block_offsets(|b| layout.density_width(b));
    let mut blocks = Vec::new();
    for (b, &t) in layout.center_types.iter().enumerate() {
        let e_t = layout.neighbor_slots[b].len();
        let mut start = offsets[b];
        for (l, &n) in layout.n_radial.iter().enumerate() {
            let width = (2 * l + 1) * n * e_t;
            blocks.push(Block {
                center_block: b,
                center_type: t,
                angular_channel: l,
                columns: start..start + width,
                components: 2 * l + 1,
                properties: density_properties(layout, b, l, order),
            });
            start += width;
        }
        debug_assert_eq!(start, offsets[b] + layout.density_width(b));
    }
    blocks
}

/// The power-spectrum blocks, keyed `(order_nu = 2, angular_channel = 0, types_center)` as the
/// original's `power_spectrum(mean_over_samples=False)`, with their columns in a full
/// power-spectrum row.
pub fn power_spectrum_blocks(layout: &Layout, order: PropertyOrder) -> Vec<Block> {
    let (offsets, _) = layout.block_offsets(|b| layout.power_spectrum_width(b));
    layout
        .center_types
        .iter()
        .enumerate()
        .map(|(b, &t)| {
            let properties = power_spectrum_properties(layout, b, order);
            debug_assert_eq!(properties.len(), layout.power_spectrum_width(b));
            Block {
                center_block: b,
                center_type: t,
                angular_channel: 0,
                columns: offsets[b]..offsets[b] + properties.len(),
                components: 1,
                properties,
            }
        })
        .collect()
}

/// Labels of every column of a full density row: `(t, l, m, n, u)` ([`DENSITY_COLUMN_NAMES`]).
pub fn density_columns(layout: &Layout) -> Labels {
    let mut labels = Labels::new(&DENSITY_COLUMN_NAMES);
    for block in density_blocks(layout, PropertyOrder::Values) {
        let l = block.angular_channel as i32;
        for m in -l..=l {
            for p in block.properties.rows() {
                labels.push(&[block.center_type, l, m, p[0], p[1]]);
            }
        }
    }
    labels
}

/// Labels of every column of a full power-spectrum row: `(t, l, n1, u1, n2, u2)`
/// ([`POWER_SPECTRUM_COLUMN_NAMES`]).
pub fn power_spectrum_columns(layout: &Layout) -> Labels {
    let mut labels = Labels::new(&POWER_SPECTRUM_COLUMN_NAMES);
    for block in power_spectrum_blocks(layout, PropertyOrder::Values) {
        for p in block.properties.rows() {
            labels.push(&[block.center_type, p[2], p[0], p[1], p[3], p[4]]);
        }
    }
    labels
}

/// Column names of a full density row, as the CLI writes them: `c<t>_l<l>_m<m>_n<n>_u<u>`.
pub fn density_column_names(layout: &Layout) -> Vec<String> {
    density_columns(layout)
        .rows()
        .map(|r| format!("c{}_l{}_m{}_n{}_u{}", r[0], r[1], r[2], r[3], r[4]))
        .collect()
}

/// Column names of a full power-spectrum row, as the CLI writes them:
/// `c<t>_l<l>_n<n1>_u<u1>_n<n2>_u<u2>`.
pub fn power_spectrum_column_names(layout: &Layout) -> Vec<String> {
    power_spectrum_columns(layout)
        .rows()
        .map(|r| {
            format!(
                "c{}_l{}_n{}_u{}_n{}_u{}",
                r[0], r[1], r[2], r[3], r[4], r[5]
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basis::Basis;
    use crate::hypers::MaxRadial;
    use crate::synthetic::{generate, SyntheticSpec, SystemKind};
    use crate::system::System;
    use crate::{
        reference, Backend, BatchedOptions, Calculator, Features, Frame, Hypers, Quantity,
    };

    /// A layout with two centre types, three types in all, `N_l = 2, 1`: every way the label
    /// order can go wrong shows.
    fn small_layout() -> Layout {
        Layout::from_pair_keys(
            vec![1, 6, 8],
            &[
                vec![true, true, false],
                vec![false, false, false],
                vec![true, true, true],
            ],
            vec![2, 1],
            vec![],
            1,
        )
    }

    #[test]
    fn column_names_keep_their_format() {
        let layout = small_layout();
        let density = density_column_names(&layout);
        assert_eq!(
            &density[..6],
            [
                "c1_l0_m0_n0_u1",
                "c1_l0_m0_n0_u6",
                "c1_l0_m0_n1_u1",
                "c1_l0_m0_n1_u6",
                "c1_l1_m-1_n0_u1",
                "c1_l1_m-1_n0_u6"
            ]
        );
        assert_eq!(
            density.len(),
            layout.block_offsets(|b| layout.density_width(b)).1
        );
        assert_eq!(density.last().unwrap(), "c8_l1_m1_n0_u8");
        let power = power_spectrum_column_names(&layout);
        assert_eq!(
            &power[..5],
            [
                "c1_l0_n0_u1_n0_u1",
                "c1_l0_n0_u1_n0_u6",
                "c1_l0_n0_u1_n1_u1",
                "c1_l0_n0_u1_n1_u6",
                "c1_l0_n0_u6_n0_u1"
            ]
        );
        assert_eq!(
            power.len(),
            layout.block_offsets(|b| layout.power_spectrum_width(b)).1
        );
        assert_eq!(power.last().unwrap(), "c8_l1_n0_u8_n0_u8");
        // Layout's own label functions are these.
        assert_eq!(layout.density_labels(), density);
        assert_eq!(layout.power_spectrum_labels(), power);
    }

    #[test]
    fn original_order_is_type_major_and_a_permutation() {
        let layout = small_layout();
        let values = density_properties(&layout, 0, 0, PropertyOrder::Values);
        let original = density_properties(&layout, 0, 0, PropertyOrder::Original);
        let rows = |l: &Labels| l.rows().map(<[i32]>::to_vec).collect::<Vec<_>>();
        assert_eq!(rows(&values), [[0, 1], [0, 6], [1, 1], [1, 6]]);
        assert_eq!(rows(&original), [[0, 1], [1, 1], [0, 6], [1, 6]]);
        // With N_l = 1 or E_t = 1 the two agree.
        assert_eq!(
            density_properties(&layout, 0, 1, PropertyOrder::Values),
            density_properties(&layout, 0, 1, PropertyOrder::Original)
        );
        let blocks = density_blocks(&layout, PropertyOrder::Values);
        assert_eq!(blocks.len(), 4);
        assert_eq!(blocks[3].columns.end, density_columns(&layout).len());
        let ps = power_spectrum_blocks(&layout, PropertyOrder::Original);
        assert_eq!(ps[0].properties.row(2), [0, 1, 0, 0, 6, 0]);
        assert_eq!(ps[1].columns.start, ps[0].columns.end);
    }

    fn frames() -> Vec<Frame> {
        let spec = SyntheticSpec {
            kind: SystemKind::EllipsoidLiquid,
            n_particles: 9,
            n_species: 3,
            periodic: true,
            density: 0.08,
            seed: 11,
        };
        generate(&spec, 2)
    }

    fn hypers() -> Hypers {
        Hypers {
            max_radial: MaxRadial::PerChannel(vec![2, 1, 1]),
            ..Hypers::gto(2, 3.5, 1.1)
        }
    }

    fn compute(backend: Backend, quantity: Quantity) -> Features {
        Calculator::new(&hypers(), backend)
            .unwrap()
            .compute(&frames(), quantity, &mut |_, _| {})
            .unwrap()
    }

    fn backends() -> Vec<Backend> {
        vec![
            Backend::Reference,
            Backend::Batched(BatchedOptions::cpu_f64()),
        ]
    }

    /// Independent density: the reference's `[particle][type slot][K]` array, indexed by what
    /// a label says (type `u`, channel `l`, `m`, `n`).
    struct Oracle {
        basis: Basis,
        layout: Layout,
        frame_start: Vec<usize>,
        types: Vec<i32>,
        density: Vec<f64>,
        scale: f64,
    }

    impl Oracle {
        fn new() -> Oracle {
            let frames = frames();
            let basis = Basis::new(&hypers()).unwrap();
            let system = System::new(&frames, &basis).unwrap();
            let density = reference::density(&basis, &system).unwrap();
            let scale = density.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            Oracle {
                layout: system.layout.clone(),
                frame_start: system.particles.frame_start.clone(),
                types: system.particles.types.clone(),
                basis,
                density,
                scale,
            }
        }

        fn coefficient(&self, i: usize, u: i32, l: i32, m: i32, n: i32) -> f64 {
            let slot = self.layout.type_slot(u);
            let k = self.basis.column(l as usize, (m + l) as usize, n as usize);
            self.density[(i * self.layout.types.len() + slot) * self.basis.n_coefficients + k]
        }

        fn particle(&self, features: &Features, row: usize) -> usize {
            self.frame_start[features.frame[row]] + features.center.as_ref().unwrap()[row]
        }
    }

    #[test]
    fn density_columns_are_the_coefficients_they_name() {
        let oracle = Oracle::new();
        assert!(oracle.layout.neighbor_slots.iter().all(|s| s.len() == 3));
        for backend in backends() {
            let features = compute(backend, Quantity::Density);
            assert_eq!(features.layout, oracle.layout);
            let columns = density_columns(&features.layout);
            assert_eq!(columns.len(), features.values.cols);
            let mut checked = 0;
            for row in 0..features.values.rows {
                let i = oracle.particle(&features, row);
                for (col, label) in columns.rows().enumerate() {
                    let got = features.values.row(row)[col];
                    let [t, l, m, n, u] = [label[0], label[1], label[2], label[3], label[4]];
                    let expected = if t == oracle.types[i] {
                        checked += 1;
                        oracle.coefficient(i, u, l, m, n)
                    } else {
                        0.0
                    };
                    assert!(
                        (got - expected).abs() <= 1e-12 * oracle.scale,
                        "row {row} column {col} {label:?}: {got} vs {expected}"
                    );
                }
            }
            assert!(checked > 0);
        }
    }

    #[test]
    fn density_blocks_hold_the_coefficients_their_properties_name() {
        let oracle = Oracle::new();
        let features = compute(Backend::Reference, Quantity::Density);
        for block in density_blocks(&features.layout, PropertyOrder::Values) {
            let l = block.angular_channel as i32;
            let width = block.properties.len();
            assert_eq!(block.columns.len(), block.components * width);
            for row in 0..features.values.rows {
                let i = oracle.particle(&features, row);
                if oracle.types[i] != block.center_type {
                    continue;
                }
                let values = &features.values.row(row)[block.columns.clone()];
                for (m_index, m) in (-l..=l).enumerate() {
                    for (p, label) in block.properties.rows().enumerate() {
                        let expected = oracle.coefficient(i, label[1], l, m, label[0]);
                        let got = values[m_index * width + p];
                        assert!((got - expected).abs() <= 1e-12 * oracle.scale);
                    }
                }
            }
        }
    }

    #[test]
    fn power_spectrum_columns_are_the_products_they_name() {
        let oracle = Oracle::new();
        for backend in backends() {
            let features = compute(backend, Quantity::PowerSpectrumPerCenter);
            let columns = power_spectrum_columns(&features.layout);
            assert_eq!(columns.len(), features.values.cols);
            // The TensorMap blocks' properties say the same as the column labels.
            let mut from_blocks = Vec::new();
            for block in power_spectrum_blocks(&features.layout, PropertyOrder::Values) {
                for p in block.properties.rows() {
                    assert_eq!(p[2], p[5]);
                    from_blocks.push([block.center_type, p[2], p[0], p[1], p[3], p[4]]);
                }
            }
            assert_eq!(
                from_blocks.concat(),
                columns.values(),
                "block properties and column labels disagree"
            );
            let scale = oracle.scale * oracle.scale;
            for row in 0..features.values.rows {
                let i = oracle.particle(&features, row);
                for (col, label) in columns.rows().enumerate() {
                    let [t, l, n1, u1, n2, u2] =
                        [label[0], label[1], label[2], label[3], label[4], label[5]];
                    let expected = if t == oracle.types[i] {
                        let sign = if l % 2 == 0 { 1.0 } else { -1.0 };
                        sign / f64::from(2 * l + 1).sqrt()
                            * (-l..=l)
                                .map(|m| {
                                    oracle.coefficient(i, u1, l, m, n1)
                                        * oracle.coefficient(i, u2, l, m, n2)
                                })
                                .sum::<f64>()
                    } else {
                        0.0
                    };
                    let got = features.values.row(row)[col];
                    assert!(
                        (got - expected).abs() <= 1e-12 * scale,
                        "row {row} column {col} {label:?}: {got} vs {expected}"
                    );
                }
            }
        }
    }
}
