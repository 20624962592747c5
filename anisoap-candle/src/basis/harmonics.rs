//! Polynomial tables `T'_l`: monomial coefficients of `r^{l+2n} Y_lm(r̂)` (real spherical
//! harmonics, orthonormal, the original's convention).

use super::monomials::Exponents;
use std::collections::BTreeMap;

/// A polynomial in x, y, z as a sparse map from exponents to coefficients.
pub type Polynomial = BTreeMap<Exponents, f64>;

/// `T'_l[m][n]` for every `l = 0..=max_angular`, `m = -l..=l` (stored at `m + l`) and
/// `n = 0..n_radial[l]`.
#[derive(Debug, Clone)]
pub struct HarmonicTables {
    /// `tables[l][m + l][n]` is the polynomial `r^{l+2n} Y_lm`.
    pub tables: Vec<Vec<Vec<Polynomial>>>,
}

fn double_factorial(n: i64) -> f64 {
    let mut out = 1.0;
    let mut k = n;
    while k > 1 {
        out *= k as f64;
        k -= 2;
    }
    out
}

fn factorial(n: usize) -> f64 {
    (1..=n).map(|k| k as f64).product()
}

fn binomial(n: usize, k: usize) -> f64 {
    factorial(n) / (factorial(k) * factorial(n - k))
}

fn add_scaled(target: &mut Polynomial, source: &Polynomial, scale: f64, shift: Exponents) {
    for (e, &c) in source {
        let key = [e[0] + shift[0], e[1] + shift[1], e[2] + shift[2]];
        *target.entry(key).or_insert(0.0) += scale * c;
    }
}

/// Multiplies a polynomial by `r² = x² + y² + z²`, summing the three terms in that order.
fn times_r2(p: &Polynomial) -> Polynomial {
    let mut out = Polynomial::new();
    add_scaled(&mut out, p, 1.0, [2, 0, 0]);
    add_scaled(&mut out, p, 1.0, [0, 2, 0]);
    add_scaled(&mut out, p, 1.0, [0, 0, 2]);
    out
}

impl HarmonicTables {
    /// Builds the tables by the Racah-normalised solid-harmonic recurrence, then rescales by
    /// `sqrt((2l+1)/4π)`.
    pub fn new(max_angular: usize, n_radial: &[usize]) -> Self {
        // racah[l][m + l] = Racah-normalised solid harmonic R_lm as a polynomial.
        let mut racah: Vec<Vec<Polynomial>> = Vec::with_capacity(max_angular + 1);
        for l in 0..=max_angular {
            let mut row = vec![Polynomial::new(); 2 * l + 1];
            if l == 0 {
                row[0].insert([0, 0, 0], 1.0);
            } else {
                let p = std::f64::consts::SQRT_2 * double_factorial(2 * l as i64 - 1)
                    / factorial(2 * l).sqrt();
                for k in 0..=l / 2 {
                    let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                    row[2 * l].insert([l - 2 * k, 2 * k, 0], p * sign * binomial(l, 2 * k));
                }
                for k in 0..=(l - 1) / 2 {
                    let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                    row[0].insert(
                        [l - 2 * k - 1, 2 * k + 1, 0],
                        p * sign * binomial(l, 2 * k + 1),
                    );
                }
                let li = l as i64;
                for m in -(li - 1)..=(li - 1) {
                    let target = &mut row[(m + li) as usize];
                    let alpha = (2 * li - 1) as f64 / (((li + m) * (li - m)) as f64).sqrt();
                    add_scaled(
                        target,
                        &racah[l - 1][(m + li - 1) as usize],
                        alpha,
                        [0, 0, 1],
                    );
                    if m.abs() <= li - 2 {
                        let beta = ((((li - 1) * (li - 1) - m * m) as f64)
                            / ((li * li - m * m) as f64))
                            .sqrt();
                        let lower = times_r2(&racah[l - 2][(m + li - 2) as usize]);
                        add_scaled(target, &lower, -beta, [0, 0, 0]);
                    }
                }
            }
            racah.push(row);
        }
        let tables = racah
            .iter()
            .enumerate()
            .map(|(l, row)| {
                let scale = ((2 * l + 1) as f64 / (4.0 * std::f64::consts::PI)).sqrt();
                row.iter()
                    .map(|poly| {
                        let mut per_n = Vec::with_capacity(n_radial[l]);
                        let mut current: Polynomial = poly
                            .iter()
                            .filter(|(_, &c)| c != 0.0)
                            .map(|(e, &c)| (*e, c))
                            .collect();
                        for n in 0..n_radial[l] {
                            if n > 0 {
                                current = times_r2(&current);
                            }
                            per_n.push(current.iter().map(|(e, &c)| (*e, c * scale)).collect());
                        }
                        per_n
                    })
                    .collect()
            })
            .collect();
        HarmonicTables { tables }
    }

    /// Evaluates `T'_l[m][n]` at a point (used by tests and the reference backend).
    pub fn evaluate(&self, l: usize, m_index: usize, n: usize, r: [f64; 3]) -> f64 {
        self.tables[l][m_index][n]
            .iter()
            .map(|(e, c)| {
                c * r[0].powi(e[0] as i32) * r[1].powi(e[1] as i32) * r[2].powi(e[2] as i32)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// Independent real spherical harmonics from associated Legendre functions (no
    /// Condon–Shortley sign), orthonormal.
    fn real_ylm(l: usize, m: i64, r: [f64; 3]) -> f64 {
        let rn = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        let ct = r[2] / rn;
        let phi = r[1].atan2(r[0]);
        let am = m.unsigned_abs() as usize;
        // P_am^am = (2am-1)!! (1-x²)^{am/2}, then upward in l.
        let st = (1.0 - ct * ct).max(0.0).sqrt();
        let mut pmm = double_factorial(2 * am as i64 - 1) * st.powi(am as i32);
        let plm = if l == am {
            pmm
        } else {
            let mut pm1 = ct * (2 * am + 1) as f64 * pmm;
            for ll in (am + 2)..=l {
                let next = ((2 * ll - 1) as f64 * ct * pm1 - (ll + am - 1) as f64 * pmm)
                    / (ll - am) as f64;
                pmm = pm1;
                pm1 = next;
            }
            pm1
        };
        let norm = ((2 * l + 1) as f64 / (4.0 * PI) * factorial(l - am) / factorial(l + am)).sqrt();
        match m.cmp(&0) {
            std::cmp::Ordering::Equal => norm * plm,
            std::cmp::Ordering::Greater => {
                std::f64::consts::SQRT_2 * norm * plm * (am as f64 * phi).cos()
            }
            std::cmp::Ordering::Less => {
                std::f64::consts::SQRT_2 * norm * plm * (am as f64 * phi).sin()
            }
        }
    }

    #[test]
    fn tables_match_independent_spherical_harmonics() {
        let lmax = 8;
        let tables = HarmonicTables::new(lmax, &vec![3; lmax + 1]);
        let points: [[f64; 3]; 4] = [
            [0.3, -1.1, 0.7],
            [1.5, 0.2, -0.4],
            [-0.6, -0.8, -1.9],
            [0.1, 0.9, 0.05],
        ];
        for &p in &points {
            let r = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
            for l in 0..=lmax {
                for m in -(l as i64)..=(l as i64) {
                    for n in 0..3 {
                        let expected = r.powi((l + 2 * n) as i32) * real_ylm(l, m, p);
                        let got = tables.evaluate(l, (m + l as i64) as usize, n, p);
                        assert!(
                            (got - expected).abs() <= 1e-12 * (1.0 + expected.abs()),
                            "l={l} m={m} n={n}: {got} vs {expected}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn low_order_table_matches_spec() {
        let tables = HarmonicTables::new(2, &[1, 1, 1]);
        let c1 = (3.0 / (4.0 * PI)).sqrt();
        // l = 1: (y, z, x) for m = -1, 0, 1.
        assert_eq!(tables.tables[1][0][0].get(&[0, 1, 0]).copied(), Some(c1));
        assert!((tables.tables[1][1][0][&[0, 0, 1]] - c1).abs() < 1e-16);
        assert!((tables.tables[1][2][0][&[1, 0, 0]] - c1).abs() < 1e-16);
        let c2 = (5.0 / (4.0 * PI)).sqrt();
        assert!((tables.tables[2][0][0][&[1, 1, 0]] - c2 * 3f64.sqrt()).abs() < 1e-15);
        assert!((tables.tables[2][2][0][&[0, 0, 2]] - c2).abs() < 1e-15);
        assert!((tables.tables[2][2][0][&[2, 0, 0]] + 0.5 * c2).abs() < 1e-15);
    }
}
