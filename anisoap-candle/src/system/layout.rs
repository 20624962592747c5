//! The feature layout of a batch of frames: which centre types have a block, which
//! neighbour-type columns each block has, and the block widths and offsets that follow; the
//! column names come from [`crate::labels`].

/// Which blocks and columns the output has: fixed by the types and pair types of all frames
/// passed together, exactly as in the original.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Sorted distinct types of all frames (`𝒯`).
    pub types: Vec<i32>,
    /// Centre types that have a block (ascending).
    pub center_types: Vec<i32>,
    /// For each centre type, indices into `types` of its neighbour-type columns `U_t`.
    pub neighbor_slots: Vec<Vec<usize>>,
    /// `N_l` for each `l`.
    pub n_radial: Vec<usize>,
    /// Whether each particle is a sample (appears as the centre of at least one pair).
    pub is_sample: Vec<bool>,
    /// Number of frames.
    pub n_frames: usize,
}

impl Layout {
    /// The original's layout from the sorted distinct `types` and the pair-type keys seen in
    /// the pair list (`key_seen[a][b]`: a pair with centre type `types[a]` and neighbour type
    /// `types[b]` exists): a centre type has a block when it has any key, and its neighbour
    /// columns are the types it is keyed with, ascending.
    pub fn from_pair_keys(
        types: Vec<i32>,
        key_seen: &[Vec<bool>],
        n_radial: Vec<usize>,
        is_sample: Vec<bool>,
        n_frames: usize,
    ) -> Layout {
        let mut center_types = Vec::new();
        let mut neighbor_slots = Vec::new();
        for (a, &t) in types.iter().enumerate() {
            let slots: Vec<usize> = (0..types.len()).filter(|&b| key_seen[a][b]).collect();
            if !slots.is_empty() {
                center_types.push(t);
                neighbor_slots.push(slots);
            }
        }
        Layout {
            types,
            center_types,
            neighbor_slots,
            n_radial,
            is_sample,
            n_frames,
        }
    }

    /// A layout fixed by a species list (`--species`): every type is a centre block, and every
    /// block has every type as a neighbour column. Unlike the original's layout it does not
    /// depend on which pairs the frames hold, so any subset of frames gives the same columns.
    pub fn full(mut types: Vec<i32>, n_radial: Vec<usize>) -> Layout {
        types.sort_unstable();
        types.dedup();
        let e = types.len();
        Layout {
            center_types: types.clone(),
            neighbor_slots: vec![(0..e).collect(); e],
            types,
            n_radial,
            is_sample: Vec::new(),
            n_frames: 0,
        }
    }

    /// The (centre type, neighbour type) keys this layout has columns for.
    pub fn pair_types(&self) -> Vec<(i32, i32)> {
        self.center_types
            .iter()
            .zip(&self.neighbor_slots)
            .flat_map(|(&t, slots)| slots.iter().map(move |&s| (t, self.types[s])))
            .collect()
    }

    /// The original's layout for the union of several batches: `types` all particle types,
    /// `pair_types` all (centre, neighbour) type keys seen (see [`Layout::from_pair_keys`]).
    pub fn from_pair_types(
        types: &std::collections::BTreeSet<i32>,
        pair_types: &std::collections::BTreeSet<(i32, i32)>,
        n_radial: Vec<usize>,
    ) -> Layout {
        let types: Vec<i32> = types.iter().copied().collect();
        let seen: Vec<Vec<bool>> = types
            .iter()
            .map(|&a| {
                types
                    .iter()
                    .map(|&b| pair_types.contains(&(a, b)))
                    .collect()
            })
            .collect();
        Layout::from_pair_keys(types, &seen, n_radial, Vec::new(), 0)
    }

    /// Index into `types` of a type.
    pub fn type_slot(&self, t: i32) -> usize {
        self.types
            .binary_search(&t)
            .expect("type present in layout")
    }

    /// Index into `center_types` of a type, if it has a block.
    pub fn center_block(&self, t: i32) -> Option<usize> {
        self.center_types.binary_search(&t).ok()
    }

    /// Number of power-spectrum features of centre block `b`: `Σ_l (N_l E_t)²`.
    pub fn power_spectrum_width(&self, b: usize) -> usize {
        let e = self.neighbor_slots[b].len();
        self.n_radial.iter().map(|n| (n * e) * (n * e)).sum()
    }

    /// Number of density features of centre block `b`: `Σ_l (2l+1) N_l E_t`.
    pub fn density_width(&self, b: usize) -> usize {
        let e = self.neighbor_slots[b].len();
        self.n_radial
            .iter()
            .enumerate()
            .map(|(l, n)| (2 * l + 1) * n * e)
            .sum()
    }

    /// Column offset of each centre block in a full row, and the total width, for widths given
    /// by `width(b)`.
    pub fn block_offsets(&self, width: impl Fn(usize) -> usize) -> (Vec<usize>, usize) {
        let mut offsets = Vec::with_capacity(self.center_types.len());
        let mut total = 0;
        for b in 0..self.center_types.len() {
            offsets.push(total);
            total += width(b);
        }
        (offsets, total)
    }
}

impl Layout {
    /// Column labels of a full power-spectrum row, in order:
    /// `c<centre type>_l<l>_n<n1>_u<neighbour type 1>_n<n2>_u<neighbour type 2>`
    /// (the value layout, `p = n E_t + e`; the original's label rows are type-major).
    /// Generated by [`crate::labels`], the one description of the feature layout.
    pub fn power_spectrum_labels(&self) -> Vec<String> {
        crate::labels::power_spectrum_column_names(self)
    }

    /// Column labels of a full density row: `c<centre type>_l<l>_m<m>_n<n>_u<neighbour type>`
    /// (from [`crate::labels`]).
    pub fn density_labels(&self) -> Vec<String> {
        crate::labels::density_column_names(self)
    }
}
