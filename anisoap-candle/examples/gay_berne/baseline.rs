//! A linear pair baseline under the MLP (Δ-learning): the MLP learns what this baseline
//! leaves of the energies, forces and torques.
//!
//! ```text
//! E_base = e0 N + Σ_{i<j} f_c(r) Σ_{n, m} c_{nm} φ_n(r) A_m(a, b, c)
//! ```
//!
//! over the centre distance `r` with the invariants of a head-tail symmetric pair
//! (`a = r̂·û_i`, `b = r̂·û_j`, `c = û_i·û_j`): `A = 1` for the isotropic baseline, and for
//! `anisoD` every invariant monomial of degree up to `D` (degree 4: `1, a² + b², c², abc,
//! a²b², a⁴ + b⁴, (a² + b²) c², c⁴`; see [`monomials`]). The radial functions are inverse powers
//! `r^(−n)` of the centre distance or Gaussians on a grid of a distance: `r`, or (the
//! default) the shape-shifted `s = r − R(a) − R(b) + 2 R_eq`, the centre distance less the
//! two ellipsoids' radii along the centre line (from the AniSOAP semi-axes, not from the GB
//! range function); `f_c` is 1 up to `r_c − w` and falls as
//! `½ (1 + cos(π (r − r_c + w)/w))` to 0 at `r_c`, so the baseline is smooth. It knows nothing
//! of the Gay-Berne form: the coefficients `c_{nm}` and the offset `e0` are fitted by weighted
//! linear least squares on the training structures' energies, forces and torques, with the
//! weights of the MLP loss.
#![allow(dead_code)]

use super::data::{pair_field, Sample};
use super::potential::Particle;
use serde_json::{json, Value};

/// Energy, forces and lab torques of one configuration.
pub type Field = (f64, Vec<[f64; 3]>, Vec<[f64; 3]>);

/// Which pair invariants the baseline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No baseline (the MLP learns everything).
    None,
    /// Radial terms times the invariant monomials of total degree up to `D` in `(a, b, c)`
    /// ([`monomials`]); `D = 0` is isotropic (no torques).
    Angular(u32),
}

impl Kind {
    /// From the command-line word: `none`, `iso` (degree 0) or `anisoD`.
    pub fn parse(word: &str) -> Result<Kind, String> {
        match word {
            "none" => Ok(Kind::None),
            "iso" => Ok(Kind::Angular(0)),
            _ => word
                .strip_prefix("aniso")
                .and_then(|d| d.parse::<u32>().ok())
                .map(Kind::Angular)
                .ok_or(format!("baseline {word}: none, iso or anisoD (D a degree)")),
        }
    }

    /// Name in reports.
    pub fn name(self) -> String {
        match self {
            Kind::None => "none".into(),
            Kind::Angular(0) => "iso".into(),
            Kind::Angular(d) => format!("aniso{d}"),
        }
    }

    /// The exponents `(i, j, k)` of the invariants.
    fn monomials(self) -> Vec<[u32; 3]> {
        match self {
            Kind::None => Vec::new(),
            Kind::Angular(d) => monomials(d),
        }
    }
}

/// Exponents `(i, j, k)`, `i ≤ j`, of the invariants `A = (a^i b^j + a^j b^i) c^k` (halved
/// for `i = j`) of total degree `i + j + k ≤ d`: flipping either long axis (`a, c → −a, −c`
/// or `b, c → −b, −c`) needs `i + k` and `j + k` even, and swapping the particles
/// (`a, b → −b, −a`) is then the `i ↔ j` symmetrisation.
pub fn monomials(d: u32) -> Vec<[u32; 3]> {
    let mut out = Vec::new();
    for total in 0..=d {
        for k in 0..=total {
            for i in 0..=(total - k) {
                let j = total - k - i;
                if i <= j && (i + k) % 2 == 0 && (j + k) % 2 == 0 {
                    out.push([i, j, k]);
                }
            }
        }
    }
    out
}

/// `x^n` and `n x^(n−1)`.
fn power(x: f64, n: u32) -> (f64, f64) {
    match n {
        0 => (1.0, 0.0),
        _ => (x.powi(n as i32), n as f64 * x.powi(n as i32 - 1)),
    }
}

/// Invariant `(a^i b^j + a^j b^i) c^k` (halved for `i = j`) and its derivatives
/// `(A, ∂A/∂a, ∂A/∂b, ∂A/∂c)`.
fn angular([i, j, k]: [u32; 3], a: f64, b: f64, c: f64) -> [f64; 4] {
    let ((ai, dai), (aj, daj)) = (power(a, i), power(a, j));
    let ((bi, dbi), (bj, dbj)) = (power(b, i), power(b, j));
    let (ck, dck) = power(c, k);
    let half = if i == j { 0.5 } else { 1.0 };
    let s = half * (ai * bj + aj * bi);
    [
        s * ck,
        half * (dai * bj + daj * bi) * ck,
        half * (ai * dbj + aj * dbi) * ck,
        s * dck,
    ]
}

/// A radial function of the centre distance (times the cosine taper).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Radial {
    /// `r^(−n)`.
    Power(i32),
    /// `exp(−(r − r0)² / (2 w²))`.
    Gauss(f64, f64),
    /// `exp(−(r − 1) / λ)` (a Born-Mayer wall, finite at any overlap).
    Exp(f64),
}

impl Radial {
    /// Value and derivative at `r`.
    fn eval(self, r: f64) -> (f64, f64) {
        match self {
            Radial::Power(n) => {
                let p = r.powi(-n);
                (p, -n as f64 * p / r)
            }
            Radial::Gauss(r0, w) => {
                let x = (r - r0) / w;
                let g = (-0.5 * x * x).exp();
                (g, -x / w * g)
            }
            Radial::Exp(l) => {
                let g = (-(r - 1.0) / l).exp();
                (g, -g / l)
            }
        }
    }

    fn to_json(self) -> Value {
        match self {
            Radial::Power(n) => json!({"inverse_power": n}),
            Radial::Gauss(r0, w) => json!({"gaussian_centre": r0, "width": w}),
            Radial::Exp(l) => json!({"exponential_decay_length": l}),
        }
    }

    /// From parts joined by `+`: `"6,9,12"` (inverse powers), `"g0.8:4.4:0.3"` (Gaussians
    /// at 0.8, 1.1, …, 4.4 of width 0.3), `"e0.1,0.2"` (exponentials of decay length 0.1 and
    /// 0.2).
    pub fn parse_list(text: &str) -> Result<Vec<Radial>, String> {
        let mut out = Vec::new();
        for part in text.split('+') {
            out.extend(Self::parse_part(part)?);
        }
        Ok(out)
    }

    fn parse_part(text: &str) -> Result<Vec<Radial>, String> {
        let bad = |e: std::num::ParseFloatError| format!("radial basis {text}: {e}");
        if let Some(e) = text.strip_prefix('e') {
            e.split(',')
                .map(|x| x.parse::<f64>().map(Radial::Exp).map_err(bad))
                .collect()
        } else if let Some(g) = text.strip_prefix('g') {
            let v: Vec<f64> = g
                .split(':')
                .map(|x| x.parse::<f64>().map_err(bad))
                .collect::<Result<_, _>>()?;
            let [start, end, step] = v[..] else {
                return Err(format!("radial basis {text}: gSTART:END:STEP"));
            };
            let n = ((end - start) / step).round() as usize;
            Ok((0..=n)
                .map(|k| Radial::Gauss(start + k as f64 * step, step))
                .collect())
        } else {
            text.split(',')
                .map(|x| {
                    x.parse::<i32>()
                        .map(Radial::Power)
                        .map_err(|e| format!("radial basis {text}: {e}"))
                })
                .collect()
        }
    }
}

/// The fitted baseline.
#[derive(Debug, Clone)]
pub struct PairBaseline {
    /// Which invariants.
    pub kind: Kind,
    /// Radial functions.
    pub radial: Vec<Radial>,
    /// Cutoff radius `r_c`.
    pub cutoff: f64,
    /// Width `w` of the cosine taper.
    pub width: f64,
    /// Equatorial and polar semi-axes when the Gaussian radial functions take the
    /// shape-shifted distance `s` (see [`PairBaseline::distance`]) instead of `r`.
    pub shape: Option<[f64; 2]>,
    /// Ridge added to the unit-diagonal normal equations of the fit.
    pub ridge: f64,
    /// Coefficients `c_{nm}`, power-major.
    pub coefficients: Vec<f64>,
    /// Energy offset per particle `e0`.
    pub offset: f64,
}

impl PairBaseline {
    /// A baseline with zero coefficients.
    pub fn zero(kind: Kind, radial: &[Radial], cutoff: f64, width: f64) -> Self {
        PairBaseline {
            kind,
            radial: radial.to_vec(),
            cutoff,
            width,
            shape: None,
            ridge: 1e-10,
            coefficients: vec![0.0; radial.len() * kind.monomials().len()],
            offset: 0.0,
        }
    }

    fn n_basis(&self) -> usize {
        self.radial.len() * self.kind.monomials().len()
    }

    /// The taper `f_c(r)` and its derivative.
    fn taper(&self, r: f64) -> (f64, f64) {
        if r >= self.cutoff {
            return (0.0, 0.0);
        }
        let start = self.cutoff - self.width;
        if r <= start {
            (1.0, 0.0)
        } else {
            let x = std::f64::consts::PI * (r - start) / self.width;
            (
                0.5 * (1.0 + x.cos()),
                -0.5 * std::f64::consts::PI / self.width * x.sin(),
            )
        }
    }

    /// The radial functions' argument and its derivatives `(s, ∂s/∂a, ∂s/∂b)`: `r`, or with
    /// a shape `s = r − R(a) − R(b) + 2 R_eq`, the centre distance less the two ellipsoids'
    /// radii along the centre line, `R(x) = (x²/R_pol² + (1 − x²)/R_eq²)^(−1/2)` for the
    /// cosine `x` between the long axis and the centre line (so `s = r` side by side).
    fn distance(&self, r: f64, a: f64, b: f64) -> (f64, f64, f64) {
        let Some([eq, pol]) = self.shape else {
            return (r, 0.0, 0.0);
        };
        let (ia, ib) = (1.0 / (eq * eq), 1.0 / (pol * pol) - 1.0 / (eq * eq));
        // R and dR/dx.
        let radius = |x: f64| {
            let q = ia + ib * x * x;
            (q.powf(-0.5), -ib * x * q.powf(-1.5))
        };
        let ((ra, dra), (rb, drb)) = (radius(a), radius(b));
        (r - ra - rb + 2.0 * eq, -dra, -drb)
    }

    /// Pair energy and derivatives `(U, ∂U/∂r, ∂U/∂a, ∂U/∂b, ∂U/∂c)` of the basis sum with
    /// weights `w`.
    fn pair(&self, w: &[f64], r: f64, a: f64, b: f64, c: f64) -> [f64; 5] {
        let mono = self.kind.monomials();
        let na = mono.len();
        let mut out = [0.0; 5];
        let (dist, ds_da, ds_db) = self.distance(r, a, b);
        let taper = self.taper(r);
        if taper == (0.0, 0.0) {
            return out;
        }
        for (ip, &phi) in self.radial.iter().enumerate() {
            // φ f_c(r): value, ∂/∂r, and ∂/∂s for the angular chain rule (inverse powers
            // always take r: s can reach 0 where GB allows contact).
            let (g, dg, dgs) = match phi {
                Radial::Power(_) => {
                    let (p, dp) = phi.eval(r);
                    (p * taper.0, dp * taper.0 + p * taper.1, 0.0)
                }
                Radial::Gauss(..) | Radial::Exp(_) => {
                    let (p, dp) = phi.eval(dist);
                    (p * taper.0, dp * taper.0 + p * taper.1, dp * taper.0)
                }
            };
            if g == 0.0 && dg == 0.0 {
                continue;
            }
            for m in 0..na {
                let wk = w[ip * na + m];
                if wk == 0.0 {
                    continue;
                }
                let [am, da, db, dc] = angular(mono[m], a, b, c);
                out[0] += wk * g * am;
                out[1] += wk * dg * am;
                out[2] += wk * (g * da + dgs * ds_da * am);
                out[3] += wk * (g * db + dgs * ds_db * am);
                out[4] += wk * g * dc;
            }
        }
        out
    }

    /// Energy, forces and lab torques of a configuration.
    pub fn field(&self, particles: &[Particle]) -> Field {
        if self.kind == Kind::None {
            let n = particles.len();
            return (0.0, vec![[0.0; 3]; n], vec![[0.0; 3]; n]);
        }
        let (e, f, t) = pair_field(particles, |r, a, b, c| {
            self.pair(&self.coefficients, r, a, b, c)
        });
        (e + self.offset * particles.len() as f64, f, t)
    }

    /// Fits the coefficients and offset by weighted least squares: energy residuals per
    /// particle weighted by `w_energy / var(E/N)`, force and torque components by
    /// `w_force / ⟨F²⟩` and `w_torque / ⟨τ²⟩`, each term averaged over its entries as in the
    /// MLP loss; a ridge (`self.ridge`, on the normal equations scaled to unit diagonal)
    /// keeps them regular and the high-degree terms tame where the data are sparse.
    pub fn fit(&mut self, set: &[&Sample], weights: [f64; 3], scales: [f64; 3]) -> Value {
        let nb = self.n_basis();
        if nb == 0 {
            return json!({"kind": "none"});
        }
        let np = set[0].particles.len();
        let dim = nb + 1;
        let mut ata = vec![vec![0.0; dim]; dim];
        let mut aty = vec![0.0; dim];
        let n_e = set.len() as f64;
        let n_g = (set.len() * np * 3) as f64;
        let w_e = weights[0] / scales[0] / n_e;
        let w_f = weights[1] / scales[1] / n_g;
        let w_t = weights[2] / scales[2] / n_g;
        for s in set {
            let cols: Vec<Field> = (0..nb)
                .map(|k| {
                    let mut w = vec![0.0; nb];
                    w[k] = 1.0;
                    pair_field(&s.particles, |r, a, b, c| self.pair(&w, r, a, b, c))
                })
                .collect();
            // Rows: energy per particle (with the offset column), then force and torque
            // components.
            let mut rows: Vec<(f64, Vec<f64>, f64)> = Vec::with_capacity(1 + 6 * np);
            let mut e_row: Vec<f64> = cols.iter().map(|c| c.0 / np as f64).collect();
            e_row.push(1.0);
            rows.push((w_e, e_row, s.energy / np as f64));
            for i in 0..np {
                for d in 0..3 {
                    let mut fr: Vec<f64> = cols.iter().map(|c| c.1[i][d]).collect();
                    fr.push(0.0);
                    rows.push((w_f, fr, s.forces[i][d]));
                    let mut tr: Vec<f64> = cols.iter().map(|c| c.2[i][d]).collect();
                    tr.push(0.0);
                    rows.push((w_t, tr, s.torques[i][d]));
                }
            }
            for (w, row, y) in &rows {
                for p in 0..dim {
                    if row[p] == 0.0 {
                        continue;
                    }
                    aty[p] += w * row[p] * y;
                    for q in 0..dim {
                        ata[p][q] += w * row[p] * row[q];
                    }
                }
            }
        }
        let x = solve_scaled(ata, aty, self.ridge);
        self.coefficients = x[..nb].to_vec();
        self.offset = x[nb];
        self.to_json()
    }

    /// The baseline as recorded in the results.
    pub fn to_json(&self) -> Value {
        json!({"kind": self.kind.name(),
            "radial": self.radial.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "cutoff": self.cutoff, "taper_width": self.width, "ridge": self.ridge,
            "radial_argument": match self.shape {
                None => json!("centre distance r"),
                Some([eq, pol]) => json!({"shape_shifted_distance": "s = r - R(a) - R(b) + 2 R_eq",
                    "equatorial": eq, "polar": pol}),
            },
            "angular_invariants": "(a^i b^j + a^j b^i) c^k / (1 + [i = j]), exponents [i, j, k]",
            "angular_exponents": self.kind.monomials(),
            "coefficients": self.coefficients, "offset_per_particle": self.offset,
            "fit": "weighted linear least squares on the fit structures (MLP loss weights)"})
    }
}

/// Solves `A x = b` (symmetric positive semi-definite `A`) after scaling to unit diagonal,
/// with `ridge` added to the scaled diagonal; Gaussian elimination with partial pivoting.
fn solve_scaled(mut a: Vec<Vec<f64>>, mut b: Vec<f64>, ridge: f64) -> Vec<f64> {
    let n = b.len();
    let d: Vec<f64> = (0..n)
        .map(|i| {
            if a[i][i] > 0.0 {
                1.0 / a[i][i].sqrt()
            } else {
                1.0
            }
        })
        .collect();
    for i in 0..n {
        for j in 0..n {
            a[i][j] *= d[i] * d[j];
        }
        a[i][i] += ridge;
        b[i] *= d[i];
    }
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&p, &q| a[p][col].abs().total_cmp(&a[q][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        let diag = a[col][col];
        if diag.abs() < 1e-300 {
            continue;
        }
        let (top, rest) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for (k, row) in rest.iter_mut().enumerate() {
            let f = row[col] / diag;
            if f == 0.0 {
                continue;
            }
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[col + 1 + k] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = if a[row][row].abs() < 1e-300 {
            0.0
        } else {
            (b[row] - s) / a[row][row]
        };
    }
    x.iter().zip(&d).map(|(v, s)| v * s).collect()
}
