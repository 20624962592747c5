//! Radial normalisation `ν_d` and Löwdin orthonormalisation `W_l = (S^{(l)})^{-1/2}`.

use crate::error::{Error, Result};
use crate::hypers::{Hypers, RadialBasis};
use nalgebra::DMatrix;

/// `Γ(k/2)` for a positive integer `k`, exactly as a product.
pub fn gamma_half(k: usize) -> f64 {
    assert!(k > 0, "Γ(0) is undefined");
    let (mut value, mut x) = if k.is_multiple_of(2) {
        (1.0, 1.0)
    } else {
        (std::f64::consts::PI.sqrt(), 0.5)
    };
    while 2.0 * x < k as f64 {
        value *= x;
        x += 1.0;
    }
    value
}

/// Normalisation prefactor `ν_d` of the radial function of degree `d`.
pub fn radial_norm(hypers: &Hypers, d: usize) -> f64 {
    match hypers.radial_basis {
        RadialBasis::Gto => {
            let sigma = hypers.radial_gaussian_width.unwrap_or(1.0);
            let norm2 = 0.5 * sigma.powi(2 * d as i32 + 3) * gamma_half(2 * d + 3);
            1.0 / norm2.sqrt()
        }
        RadialBasis::Monomial => {
            let rc = hypers.cutoff_radius;
            ((2 * d + 3) as f64 / rc.powi(2 * d as i32 + 3)).sqrt()
        }
    }
}

/// Overlap `S_{dd'}` of the normalised radial functions of degrees `d` and `d'`.
pub fn radial_overlap(basis: RadialBasis, d: usize, e: usize) -> f64 {
    match basis {
        RadialBasis::Gto => {
            gamma_half(d + e + 3) / (gamma_half(2 * d + 3) * gamma_half(2 * e + 3)).sqrt()
        }
        RadialBasis::Monomial => (((2 * d + 3) * (2 * e + 3)) as f64).sqrt() / (d + e + 3) as f64,
    }
}

/// `W_l = S^{-1/2}` for channel `l` with `n_radial` functions, keeping eigenvalues above
/// `basis_rcond`, then the original's check that `pinv(W W)` reproduces `S` within `basis_tol`.
pub fn lowdin_matrix(hypers: &Hypers, l: usize, n_radial: usize) -> Result<DMatrix<f64>> {
    let s = DMatrix::from_fn(n_radial, n_radial, |i, j| {
        radial_overlap(hypers.radial_basis, l + 2 * i, l + 2 * j)
    });
    let eigen = s.clone().symmetric_eigen();
    let mut w = DMatrix::zeros(n_radial, n_radial);
    for (k, &lambda) in eigen.eigenvalues.iter().enumerate() {
        if lambda > hypers.basis_rcond {
            let v = eigen.eigenvectors.column(k);
            w += (v * v.transpose()) / lambda.sqrt();
        }
    }
    let ww = &w * &w;
    let svd = ww.clone().svd(true, true);
    let largest = svd.singular_values.iter().cloned().fold(0.0, f64::max);
    let s2 = svd
        .pseudo_inverse(1e-15 * largest)
        .map_err(|e| Error::Hypers(format!("pseudo-inverse of the radial overlap failed: {e}")))?;
    let diff = (&s - &s2).norm();
    if diff.is_nan() || diff > hypers.basis_tol {
        return Err(Error::Hypers(format!(
            "Incurred Numerical Imprecision: the orthonormalised radial basis of channel l={l} \
             with {n_radial} functions reproduces the overlap only to {diff:.3e} \
             (basis_tol = {:e}); lower max_radial or raise basis_rcond/basis_tol",
            hypers.basis_tol
        )));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_of_half_integers() {
        assert!((gamma_half(1) - std::f64::consts::PI.sqrt()).abs() < 1e-15);
        assert_eq!(gamma_half(2), 1.0);
        assert_eq!(gamma_half(8), 6.0);
        assert!((gamma_half(5) - 0.75 * std::f64::consts::PI.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn lowdin_orthonormalises() {
        for basis in [RadialBasis::Gto, RadialBasis::Monomial] {
            let mut hypers = Hypers::gto(4, 5.0, 1.3);
            hypers.radial_basis = basis;
            let w = lowdin_matrix(&hypers, 2, 3).unwrap();
            let s = DMatrix::from_fn(3, 3, |i, j| radial_overlap(basis, 2 + 2 * i, 2 + 2 * j));
            let id = &w * &s * &w;
            for i in 0..3 {
                for j in 0..3 {
                    let expected = if i == j { 1.0 } else { 0.0 };
                    assert!((id[(i, j)] - expected).abs() < 1e-11, "{basis:?} {id}");
                }
            }
        }
    }

    #[test]
    fn tolerance_check_fires_where_the_original_does() {
        // (basis, lmax, largest max_radial accepted, first refused): where the original's
        // decision is clear-cut. Near the threshold the outcome is rounding noise
        // (S - pinv(WW) ~ ε·cond²), so e.g. GTO lmax 4 max_radial 7 (1.03e-8 here) may differ.
        let cases = [
            (RadialBasis::Gto, 4, 5, 8),
            (RadialBasis::Gto, 8, 5, 7),
            (RadialBasis::Monomial, 0, 5, 7),
            (RadialBasis::Monomial, 4, 4, 5),
            (RadialBasis::Monomial, 8, 3, 4),
        ];
        for (basis, lmax, good, bad) in cases {
            let mut hypers = Hypers::gto(lmax, 5.0, 1.0);
            hypers.radial_basis = basis;
            hypers.max_radial = crate::hypers::MaxRadial::Uniform(good);
            assert!(
                crate::basis::Basis::new(&hypers).is_ok(),
                "{basis:?} {lmax} {good}"
            );
            hypers.max_radial = crate::hypers::MaxRadial::Uniform(bad);
            let err = crate::basis::Basis::new(&hypers).unwrap_err().to_string();
            assert!(err.contains("Incurred Numerical Imprecision"), "{err}");
        }
    }
}
