//! Constants of one hyperparameter set: harmonic tables, radial normalisation, Löwdin matrices,
//! and the packed contraction matrix `B` that folds them together for the batched path.

pub mod harmonics;
pub mod monomials;
pub mod radial;

use crate::error::Result;
use crate::hypers::Hypers;
use harmonics::HarmonicTables;
use monomials::MonomialIndex;
use nalgebra::DMatrix;

/// Everything that depends only on the hyperparameters, computed once.
#[derive(Debug, Clone)]
pub struct Basis {
    /// The hyperparameters these constants belong to.
    pub hypers: Hypers,
    /// `N_l` for each `l`.
    pub n_radial: Vec<usize>,
    /// Highest polynomial degree needed, `D`.
    pub max_degree: usize,
    /// Packed monomials up to `D`.
    pub monomials: MonomialIndex,
    /// `T'_l[m][n]`.
    pub harmonics: HarmonicTables,
    /// `ν_d` for `d = 0..=D`.
    pub radial_norms: Vec<f64>,
    /// `W_l` for each `l`.
    pub lowdin: Vec<DMatrix<f64>>,
    /// Column offset of channel `l` in a pair-coefficient row (`K` layout: l, m, n).
    pub channel_offsets: Vec<usize>,
    /// Total number of pair coefficients `K = Σ_l (2l+1) N_l`.
    pub n_coefficients: usize,
}

impl Basis {
    /// Builds the constants; fails like the original when the radial basis is ill-conditioned.
    pub fn new(hypers: &Hypers) -> Result<Self> {
        hypers.validate()?;
        let _span = tracing::debug_span!("basis_constants").entered();
        let n_radial = hypers.n_radial();
        let max_degree = hypers.max_degree();
        let lowdin = n_radial
            .iter()
            .enumerate()
            .map(|(l, &n)| radial::lowdin_matrix(hypers, l, n))
            .collect::<Result<Vec<_>>>()?;
        let mut channel_offsets = Vec::with_capacity(n_radial.len());
        let mut offset = 0;
        for (l, &n) in n_radial.iter().enumerate() {
            channel_offsets.push(offset);
            offset += (2 * l + 1) * n;
        }
        let radial_norms: Vec<f64> = (0..=max_degree)
            .map(|d| radial::radial_norm(hypers, d))
            .collect();
        // ν_d = 1/sqrt(σ^(2d+3) ...) or sqrt((2d+3)/r_c^(2d+3)) under- or overflows for extreme
        // widths or cutoffs; every feature would then be 0, inf or NaN.
        if let Some((d, nu)) = radial_norms
            .iter()
            .enumerate()
            .find(|(_, nu)| !(nu.is_finite() && **nu > 0.0))
        {
            let what = match hypers.radial_basis {
                crate::hypers::RadialBasis::Gto => "radial_gaussian_width",
                crate::hypers::RadialBasis::Monomial => "cutoff_radius",
            };
            return Err(crate::error::Error::Hypers(format!(
                "the radial normalisation of degree {d} is {nu:e}: {what} is too extreme for \
                 a basis of degree {max_degree} (floating-point range exceeded)"
            )));
        }
        Ok(Basis {
            hypers: hypers.clone(),
            harmonics: HarmonicTables::new(hypers.max_angular, &n_radial),
            radial_norms,
            monomials: MonomialIndex::new(max_degree),
            n_radial,
            max_degree,
            lowdin,
            channel_offsets,
            n_coefficients: offset,
        })
    }

    /// Column of coefficient `(l, m_index, n)` in a pair-coefficient row.
    pub fn column(&self, l: usize, m_index: usize, n: usize) -> usize {
        self.channel_offsets[l] + m_index * self.n_radial[l] + n
    }

    /// Packed contraction matrix `B[(abc), (l,m,n')] = Σ_n T'_l[m,n,abc] ν_{l+2n} W_l[n,n']`,
    /// row-major with `monomials.len()` rows and `n_coefficients` columns.
    pub fn contraction_matrix(&self) -> Vec<f64> {
        let k = self.n_coefficients;
        let mut b = vec![0.0; self.monomials.len() * k];
        for (l, &n_l) in self.n_radial.iter().enumerate() {
            for m_index in 0..2 * l + 1 {
                for n in 0..n_l {
                    let nu = self.radial_norms[l + 2 * n];
                    for (e, &c) in &self.harmonics.tables[l][m_index][n] {
                        let row = MonomialIndex::position(*e);
                        for n_out in 0..n_l {
                            b[row * k + self.column(l, m_index, n_out)] +=
                                c * nu * self.lowdin[l][(n, n_out)];
                        }
                    }
                }
            }
        }
        b
    }
}
