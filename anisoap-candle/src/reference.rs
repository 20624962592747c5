//! The `reference` backend: a plain float64 implementation, pair by pair, used as the oracle.
//!
//! It shares only the constants (`T'` tables, `ν`, `W`) with the batched path. Moments use a
//! dense `[a][b][c]` cube, the contraction runs over the sparse tables, and the radial
//! normalisation and Löwdin step are applied after the neighbour sum.

use crate::basis::Basis;
use crate::error::{Error, Result};
use crate::hypers::RadialBasis;
use crate::rotation::Mat3;
use crate::system::{Pairs, System};

/// Gaussian of one pair, ready for the moment routine.
#[derive(Debug, Clone, Copy)]
pub struct PairGaussian {
    /// Centre `μ`.
    pub mu: [f64; 3],
    /// Covariance `Σ = A'⁻¹`.
    pub sigma: Mat3,
    /// Factor applied to the normalised moments: `e^{-κ/2} / (Π a · sqrt(det A'))`.
    pub scale: f64,
}

/// Inverse and determinant of a symmetric 3×3 matrix from cofactors, reading only the upper
/// triangle; determinant expanded along the first row.
pub fn symmetric_inverse(a: &Mat3) -> (Mat3, f64) {
    let (a00, a01, a02, a11, a12, a22) = (a[0][0], a[0][1], a[0][2], a[1][1], a[1][2], a[2][2]);
    let c00 = a11 * a22 - a12 * a12;
    let c01 = a02 * a12 - a01 * a22;
    let c02 = a01 * a12 - a02 * a11;
    let c11 = a00 * a22 - a02 * a02;
    let c12 = a01 * a02 - a00 * a12;
    let c22 = a00 * a11 - a01 * a01;
    let det = a00 * c00 + a01 * c01 + a02 * c02;
    (
        [
            [c00 / det, c01 / det, c02 / det],
            [c01 / det, c11 / det, c12 / det],
            [c02 / det, c12 / det, c22 / det],
        ],
        det,
    )
}

fn mat_vec(m: &Mat3, v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// `|det A'|` below this makes the original refuse a pair ("The given dilation matrix is
/// singular"); every backend applies the same rule (checked once per neighbour particle when a
/// [`System`] is prepared, and again pair by pair here).
pub const SINGULAR_DETERMINANT: f64 = 1e-14;

/// `1/σ²` added to the diagonal of the precision matrix for GTO, 0 for monomials.
pub fn dilation_shift(basis: RadialBasis, width: Option<f64>) -> f64 {
    match basis {
        RadialBasis::Gto => 1.0 / (width.unwrap_or(1.0) * width.unwrap_or(1.0)),
        RadialBasis::Monomial => 0.0,
    }
}

/// `A' = A + shift·I` and its inverse and determinant ([`symmetric_inverse`]). `A'` depends
/// only on the neighbour particle, not on the pair.
pub fn dilation_matrix(precision: &Mat3, shift: f64) -> (Mat3, Mat3, f64) {
    let mut a_prime = *precision;
    for (d, row) in a_prime.iter_mut().enumerate() {
        row[d] += shift;
    }
    let (sigma, det) = symmetric_inverse(&a_prime);
    (a_prime, sigma, det)
}

/// The original's singularity rule, with one message for every backend: `None` when `det`
/// is usable (finite, `|det| >= 1e-14`), else what is wrong.
pub fn singular_dilation(det: f64) -> Option<String> {
    if det.is_finite() && det.abs() >= SINGULAR_DETERMINANT {
        return None;
    }
    Some(if det.is_finite() {
        format!(
            "The given dilation matrix is singular (|det A'| = {:e} < 1e-14): the ellipsoid is \
             too large for this basis",
            det.abs()
        )
    } else {
        format!(
            "the dilation matrix A' has a non-finite determinant ({det}): the semi-axes are \
             too extreme (too small or too large) for floating point"
        )
    })
}

/// The pair Gaussian of §4: precision `A' = A (+ σ⁻² I for GTO)`, centre and scalar factor.
pub fn pair_gaussian(
    basis: RadialBasis,
    width: Option<f64>,
    precision: &Mat3,
    semi_axes: [f64; 3],
    r: [f64; 3],
) -> Result<PairGaussian> {
    let inv_s2 = dilation_shift(basis, width);
    let (_, sigma, det) = dilation_matrix(precision, inv_s2);
    if let Some(message) = singular_dilation(det) {
        return Err(Error::Frame { frame: 0, message });
    }
    let (mu, kappa) = if inv_s2 == 0.0 {
        (r, 0.0)
    } else {
        let sr = mat_vec(&sigma, r);
        let ar = mat_vec(precision, r);
        let mu = [
            r[0] - inv_s2 * sr[0],
            r[1] - inv_s2 * sr[1],
            r[2] - inv_s2 * sr[2],
        ];
        let kappa = inv_s2 * (sr[0] * ar[0] + sr[1] * ar[1] + sr[2] * ar[2]);
        (mu, kappa)
    };
    let prod = semi_axes[0] * semi_axes[1] * semi_axes[2];
    Ok(PairGaussian {
        mu,
        sigma,
        scale: (-0.5 * kappa).exp() / (prod * det.sqrt()),
    })
}

/// Normalised moments `E[x^a y^b z^c]` of N(μ, Σ) for `a + b + c ≤ degree`, in a dense cube
/// indexed `[a][b][c]` (flattened with stride `degree + 1`).
pub fn moments_cube(mu: [f64; 3], sigma: &Mat3, degree: usize) -> Vec<f64> {
    let s = degree + 1;
    let idx = |e: [usize; 3]| (e[0] * s + e[1]) * s + e[2];
    let mut m = vec![0.0; s * s * s];
    m[0] = 1.0;
    for d in 1..=degree {
        for a in (0..=d).rev() {
            for b in (0..=d - a).rev() {
                let k = [a, b, d - a - b];
                let dir = if k[0] >= 1 {
                    0
                } else if k[1] >= 1 {
                    1
                } else {
                    2
                };
                let mut p = k;
                p[dir] -= 1;
                let mut sum = 0.0;
                for j in 0..3 {
                    if p[j] >= 1 {
                        let mut g = p;
                        g[j] -= 1;
                        sum += sigma[dir][j] * p[j] as f64 * m[idx(g)];
                    }
                }
                m[idx(k)] = mu[dir] * m[idx(p)] + sum;
            }
        }
    }
    m
}

/// Normalised density coefficients of every particle: `[n_particles][n_types][K]` flattened,
/// where the type index runs over `layout.types` and `K` follows [`Basis::column`].
pub fn density(basis: &Basis, system: &System) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for chunk in system.center_chunks(1 << 16) {
        let pairs = system.pairs(chunk.clone())?;
        out.extend(density_of(basis, system, chunk, &pairs)?);
    }
    Ok(out)
}

/// Normalised density of the centres `centers` from their `pairs`:
/// `[centers.len()][n_types][K]` flattened (row `i - centers.start` for centre `i`).
pub fn density_of(
    basis: &Basis,
    system: &System,
    centers: std::ops::Range<usize>,
    pairs: &Pairs,
) -> Result<Vec<f64>> {
    let hypers = &basis.hypers;
    let k_len = basis.n_coefficients;
    let n_types = system.layout.types.len();
    let particles = &system.particles;
    let degree = basis.max_degree;
    let s = degree + 1;
    let mut raw = vec![0.0; centers.len() * n_types * k_len];
    for p in 0..pairs.len() {
        let (i, j) = (pairs.centers[p], pairs.neighbors[p]);
        let g = pair_gaussian(
            hypers.radial_basis,
            hypers.radial_gaussian_width,
            &particles.precision[j],
            particles.semi_axes[j],
            pairs.vectors[p],
        )
        .map_err(|e| match e {
            Error::Frame { message, .. } => {
                let f = particles.frame[i];
                let start = particles.frame_start[f];
                Error::Frame {
                    frame: f,
                    message: format!(
                        "pair (centre {}, neighbour {}): {message}",
                        i - start,
                        j - start
                    ),
                }
            }
            other => other,
        })?;
        // The opt-in smooth cutoff (crate::cutoff) weights the whole pair; the step applies no
        // factor at all, so the default stays bit for bit the original's.
        let weight = if hypers.cutoff_function.is_step() {
            g.scale
        } else {
            let r = pairs.vectors[p];
            let distance = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
            g.scale * hypers.cutoff_function.value(distance, hypers.cutoff_radius)
        };
        let m = moments_cube(g.mu, &g.sigma, degree);
        let base = ((i - centers.start) * n_types + system.type_slots[j]) * k_len;
        for (l, &n_l) in basis.n_radial.iter().enumerate() {
            for m_index in 0..2 * l + 1 {
                for n in 0..n_l {
                    let value: f64 = basis.harmonics.tables[l][m_index][n]
                        .iter()
                        .map(|(e, c)| c * m[(e[0] * s + e[1]) * s + e[2]])
                        .sum();
                    raw[base + basis.column(l, m_index, n)] += weight * value;
                }
            }
        }
    }
    // Radial normalisation and Löwdin, after the sum (the operation is linear).
    let mut out = vec![0.0; raw.len()];
    for (row_in, row_out) in raw.chunks(k_len).zip(out.chunks_mut(k_len)) {
        for (l, &n_l) in basis.n_radial.iter().enumerate() {
            for m_index in 0..2 * l + 1 {
                for n_out in 0..n_l {
                    let mut acc = 0.0;
                    for n in 0..n_l {
                        acc += row_in[basis.column(l, m_index, n)]
                            * basis.radial_norms[l + 2 * n]
                            * basis.lowdin[l][(n, n_out)];
                    }
                    row_out[basis.column(l, m_index, n_out)] = acc;
                }
            }
        }
    }
    Ok(out)
}

/// Per-centre power spectrum of one sample centre of centre block `b`, in the original's column
/// order (l, then p, then q with `p = n E_t + e`); `i` is the centre's row in `density`.
pub fn power_spectrum_row(
    basis: &Basis,
    system: &System,
    density: &[f64],
    i: usize,
    b: usize,
) -> Vec<f64> {
    let layout = &system.layout;
    let slots = &layout.neighbor_slots[b];
    let e_t = slots.len();
    let n_types = layout.types.len();
    let k_len = basis.n_coefficients;
    let coefficient = |l: usize, m_index: usize, p: usize| {
        let (n, e) = (p / e_t, p % e_t);
        density[(i * n_types + slots[e]) * k_len + basis.column(l, m_index, n)]
    };
    let mut row = Vec::with_capacity(layout.power_spectrum_width(b));
    for (l, &n_l) in basis.n_radial.iter().enumerate() {
        let width = n_l * e_t;
        let sign = if l % 2 == 0 { 1.0 } else { -1.0 };
        let factor = sign / ((2 * l + 1) as f64).sqrt();
        for p in 0..width {
            for q in 0..width {
                let mut sum = 0.0;
                for m_index in 0..2 * l + 1 {
                    sum += coefficient(l, m_index, p) * coefficient(l, m_index, q);
                }
                row.push(factor * sum);
            }
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_diagonal_gaussian_factorise() {
        let mu = [0.3, -0.7, 1.1];
        let var = [0.5, 1.3, 0.8];
        let sigma = [[var[0], 0.0, 0.0], [0.0, var[1], 0.0], [0.0, 0.0, var[2]]];
        let degree = 6;
        let cube = moments_cube(mu, &sigma, degree);
        // 1-D: m0 = 1, m1 = mu, m_{k+1} = mu m_k + k var m_{k-1}.
        let one_d = |d: usize| {
            let mut m = vec![1.0, mu[d]];
            for k in 1..degree {
                m.push(mu[d] * m[k] + k as f64 * var[d] * m[k - 1]);
            }
            m
        };
        let (mx, my, mz) = (one_d(0), one_d(1), one_d(2));
        let s = degree + 1;
        for a in 0..=degree {
            for b in 0..=degree - a {
                for c in 0..=degree - a - b {
                    let expected = mx[a] * my[b] * mz[c];
                    let got = cube[(a * s + b) * s + c];
                    assert!((got - expected).abs() <= 1e-13 * expected.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn symmetric_inverse_is_inverse() {
        let a = [[2.0, 0.3, -0.1], [0.3, 1.5, 0.2], [-0.1, 0.2, 0.9]];
        let (inv, det) = symmetric_inverse(&a);
        assert!((det - crate::rotation::det3(&a)).abs() < 1e-14);
        for (i, row) in a.iter().enumerate() {
            for (j, expected) in [1.0, 0.0, 0.0]
                .iter()
                .cycle()
                .skip(3 - i)
                .take(3)
                .enumerate()
            {
                let v: f64 = (0..3).map(|k| row[k] * inv[k][j]).sum();
                assert!((v - expected).abs() < 1e-14, "({i},{j})");
            }
        }
    }

    #[test]
    fn monomial_anchor_coefficients() {
        // Monomial basis: ĉ[0,0,0] = 1/sqrt(4π) and ĉ[1,m,0] = sqrt(3/4π) (r_y, r_z, r_x).
        let basis = Basis::new(&crate::hypers::Hypers::monomial(1, 5.0)).unwrap();
        let a = crate::rotation::precision_matrix(
            &crate::rotation::quaternion_to_matrix([0.9, 0.1, -0.3, 0.2]).unwrap(),
            [0.5, 0.8, 1.7],
        );
        let r = [0.4, -1.2, 0.9];
        let g = pair_gaussian(RadialBasis::Monomial, None, &a, [0.5, 0.8, 1.7], r).unwrap();
        let m = moments_cube(g.mu, &g.sigma, 1);
        let value = |l: usize, mi: usize| -> f64 {
            basis.harmonics.tables[l][mi][0]
                .iter()
                .map(|(e, c)| c * m[(e[0] * 2 + e[1]) * 2 + e[2]])
                .sum::<f64>()
                * g.scale
        };
        let pi4 = 4.0 * std::f64::consts::PI;
        assert!((value(0, 0) - 1.0 / pi4.sqrt()).abs() < 1e-14);
        let c1 = (3.0 / pi4).sqrt();
        assert!((value(1, 0) - c1 * r[1]).abs() < 1e-14);
        assert!((value(1, 1) - c1 * r[2]).abs() < 1e-14);
        assert!((value(1, 2) - c1 * r[0]).abs() < 1e-14);
    }
}
