//! The analytic backward of [`FusedPairDensity`]: from the gradient of the density rows
//! `[n_rows, K]` to the gradient of the geometry rows `[P, 10]`, pair by pair, in SIMD lanes.
//!
//! Forward, per pair: `out[dest] += s · W(B m)` with `m_n = E[x^n]` under `N(μ, Σ)` (`m_0 = 1`),
//! `B` the sparse `ν T'` table, `W` the per-channel Löwdin matrix and `s` the scalar factor
//! (smooth cutoff included). Backward, per pair, with `G` the gradient row of its destination:
//!
//! 1. `h = Wᵀ`-mixing of `G` per channel and `m`-index, then `ḡ = Bᵀ h` (one scatter per
//!    non-zero of `B`): the gradient with respect to the moments is `s ḡ`, and with respect to
//!    `s` it is `m · ḡ`.
//! 2. The Gaussian-moment identities (Stein / heat-equation form of `E[x^n]`):
//!    `∂m_n/∂μ_k = n_k m_{n−e_k}`, `∂m_n/∂Σ_kk = ½ n_k (n_k − 1) m_{n−2e_k}` and, with the
//!    symmetric pair `Σ_kl = Σ_lk` as one variable, `∂m_n/∂Σ_kl = n_k n_l m_{n−e_k−e_l}`
//!    (checked against finite differences in the tests below).
//! 3. The chain rule through `Σ = (A + I/σ²)⁻¹` (`dΣ = −Σ dA Σ`, `d ln det = tr(Σ dA)`),
//!    `μ = r − Σ r/σ²`, `κ = (r·r − rᵀΣr/σ²)/σ²`, `s = e^{−κ/2} f(|r|) / (a₁a₂a₃ √det)` and the
//!    smooth cutoff `f`.
//!
//! Each pair's gradient row is written by one task (no accumulation), so the pairs need no
//! order here.

use super::{contiguous, has_avx2, FusedPairDensity, Real, GEOMETRY_COLUMNS, LANES};
use crate::basis::monomials::MonomialIndex;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape};
use rayon::prelude::*;

/// One term of the moment derivative identities: `∂m_n/∂θ_param += coef · m_target`, with
/// `θ = (μ_x, μ_y, μ_z, Σ_00, Σ_01, Σ_02, Σ_11, Σ_12, Σ_22)`.
#[derive(Debug, Clone, Copy)]
struct Term {
    param: usize,
    coef: f64,
    n: usize,
    target: usize,
}

/// The six unique entries of `Σ` as `(k, l)`, in the order of `θ[3..9]`.
const SIGMA_PAIRS: [(usize, usize); 6] = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];

/// Pairs per parallel task.
pub(crate) const TASK_PAIRS: usize = 32 * LANES;

/// One value per lane, with element-wise arithmetic (what the chain rule runs on).
#[derive(Debug, Clone, Copy)]
struct V<T>([T; LANES]);

impl<T: Real> V<T> {
    /// The same value in every lane.
    #[inline(always)]
    fn of(v: f64) -> Self {
        V([T::of(v); LANES])
    }
}

macro_rules! lanewise {
    ($trait:ident, $method:ident, $op:tt) => {
        impl<T: Real> std::ops::$trait for V<T> {
            type Output = V<T>;
            #[inline(always)]
            fn $method(mut self, rhs: V<T>) -> V<T> {
                for l in 0..LANES {
                    self.0[l] = self.0[l] $op rhs.0[l];
                }
                self
            }
        }
    };
}
lanewise!(Add, add, +);
lanewise!(Sub, sub, -);
lanewise!(Mul, mul, *);
lanewise!(Div, div, /);

/// The backward kernel: `(geometry [P, 10], dest [P], grad [n_rows, K]) → grad geometry
/// [P, 10]`, a `CustomOp3` without a backward of its own.
pub(crate) struct FusedPairDensityBackward {
    forward: FusedPairDensity,
    /// The identity terms, sorted by parameter: those of `θ_p` are
    /// `terms[param_start[p]..param_start[p + 1]]`.
    terms: Vec<Term>,
    param_start: [usize; 10],
    /// `Bᵀ` by monomial: monomial `r` takes `t_values[e] · h[t_cols[e]]` for `e` in
    /// `t_start[r]..t_start[r + 1]` (a register reduction, no scattered updates).
    t_start: Vec<usize>,
    t_cols: Vec<usize>,
    t_values: Vec<f64>,
}

/// The moment identities of every packed monomial below `n_monomials` (step 2 of the module
/// documentation).
fn identity_terms(n_monomials: usize) -> Vec<Term> {
    let mut degree = 0;
    while MonomialIndex::degree_offset(degree + 1) < n_monomials {
        degree += 1;
    }
    let index = MonomialIndex::new(degree);
    debug_assert_eq!(index.len(), n_monomials);
    let mut terms = Vec::new();
    for (n, &e) in index.exponents.iter().enumerate() {
        for k in 0..3 {
            if e[k] >= 1 {
                let mut t = e;
                t[k] -= 1;
                terms.push(Term {
                    param: k,
                    coef: e[k] as f64,
                    n,
                    target: MonomialIndex::position(t),
                });
            }
        }
        for (p, &(k, l)) in SIGMA_PAIRS.iter().enumerate() {
            let mut t = e;
            let coef = if k == l {
                if e[k] < 2 {
                    continue;
                }
                t[k] -= 2;
                (e[k] * (e[k] - 1)) as f64 / 2.0
            } else {
                if e[k] < 1 || e[l] < 1 {
                    continue;
                }
                t[k] -= 1;
                t[l] -= 1;
                (e[k] * e[l]) as f64
            };
            terms.push(Term {
                param: 3 + p,
                coef,
                n,
                target: MonomialIndex::position(t),
            });
        }
    }
    terms
}

impl FusedPairDensityBackward {
    /// The backward of `forward` (same tables, same chunk size).
    pub(crate) fn new(forward: &FusedPairDensity) -> Self {
        let mut terms = identity_terms(forward.n_monomials);
        terms.sort_by_key(|t| t.param);
        let mut param_start = [0; 10];
        for p in 0..9 {
            param_start[p + 1] = param_start[p] + terms.iter().filter(|t| t.param == p).count();
        }
        let mut by_monomial = vec![Vec::new(); forward.n_monomials];
        for c in 0..forward.n_cols {
            for e in forward.col_start[c]..forward.col_start[c + 1] {
                by_monomial[forward.rows[e]].push((c, forward.values[e]));
            }
        }
        let mut t_start = vec![0];
        let (mut t_cols, mut t_values) = (Vec::new(), Vec::new());
        for entries in by_monomial {
            for (c, v) in entries {
                t_cols.push(c);
                t_values.push(v);
            }
            t_start.push(t_cols.len());
        }
        FusedPairDensityBackward {
            forward: forward.clone(),
            terms,
            param_start,
            t_start,
            t_cols,
            t_values,
        }
    }

    /// The smooth-cutoff term of one pair's position gradient: `∂L/∂f · f'(d) / d` with
    /// `∂L/∂f = q / f` (`q = ∂L/∂ ln s`), inside the smoothing zone only (`f' = 0` elsewhere,
    /// `f > 0` inside), so that the gradient gains this times `r`.
    #[inline(always)]
    fn cutoff_term<T: Real>(&self, r: [T; 3], q: T) -> T {
        let f = &self.forward;
        let zero = T::of(0.0);
        if f.smooth_width <= 0.0 {
            return zero;
        }
        let distance = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        let (cutoff, width, half) = (T::of(f.cutoff), T::of(f.smooth_width), T::of(0.5));
        if distance > cutoff - width && distance < cutoff {
            let pi = T::of(std::f64::consts::PI);
            let phase = pi * (distance - cutoff + width) / width;
            let fv = half * (T::of(1.0) + phase.cos());
            let fprime = zero - half * phase.sin() * pi / width;
            if fv > zero {
                return q / fv * fprime / distance;
            }
        }
        zero
    }

    /// Chain rule (step 3) for a group of lanes: the gradient of the geometry rows (`r`,
    /// `1/(a1 a2 a3)`) from `Σ` and the scalar factor `scale` of the forward (smooth cutoff
    /// included), the gradients with respect to `μ`, the six unique `Σ` entries and the scalar
    /// factor, and the smooth-cutoff term ([`FusedPairDensityBackward::cutoff_term`]).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn chain<T: Real>(
        &self,
        r: [V<T>; 3],
        inv_prod: V<T>,
        sig: [[V<T>; 3]; 3],
        scale: V<T>,
        gmu: [V<T>; 3],
        gsig: [V<T>; 6],
        gscale: V<T>,
        cutoff_term: V<T>,
    ) -> [V<T>; 10] {
        let f = &self.forward;
        let (half, two, zero) = (V::of(0.5), V::of(2.0), V::of(0.0));
        let s = V::of(f.shift);
        let mv = |v: [V<T>; 3]| -> [V<T>; 3] {
            let row = |i: usize| sig[i][0] * v[0] + sig[i][1] * v[1] + sig[i][2] * v[2];
            [row(0), row(1), row(2)]
        };
        // s = inv_prod · e^{-κ/2} f / √det, so ∂L/∂ ln s = q = gscale · s.
        let q = gscale * scale;
        let g_inv_prod = q / inv_prod;
        let g_lndet = zero - half * q;
        // H: the gradient with respect to Σ as a symmetric matrix (dL = tr(H dΣ)).
        let mut h = [
            [gsig[0], half * gsig[1], half * gsig[2]],
            [half * gsig[1], gsig[3], half * gsig[4]],
            [half * gsig[2], half * gsig[4], gsig[5]],
        ];
        let mut gr = gmu;
        if f.shift != 0.0 {
            let sr = mv(r);
            let g_kappa = zero - half * q;
            let sgmu = mv(gmu);
            for k in 0..3 {
                for l in 0..3 {
                    h[k][l] = h[k][l]
                        - s * half * (r[k] * gmu[l] + gmu[k] * r[l])
                        - g_kappa * s * s * r[k] * r[l];
                }
                gr[k] = gmu[k] - s * sgmu[k] + g_kappa * (two * s * r[k] - two * s * s * sr[k]);
            }
        }
        if f.smooth_width > 0.0 {
            for k in 0..3 {
                gr[k] = gr[k] + cutoff_term * r[k];
            }
        }
        // J = −Σ H Σ + g_lndet Σ: the gradient with respect to A (symmetric).
        let mut hs = [[zero; 3]; 3];
        for k in 0..3 {
            for l in 0..3 {
                hs[k][l] = h[k][0] * sig[0][l] + h[k][1] * sig[1][l] + h[k][2] * sig[2][l];
            }
        }
        let j = |k: usize, l: usize| -> V<T> {
            let shs = sig[k][0] * hs[0][l] + sig[k][1] * hs[1][l] + sig[k][2] * hs[2][l];
            g_lndet * sig[k][l] - shs
        };
        [
            j(0, 0),
            two * j(0, 1),
            two * j(0, 2),
            j(1, 1),
            two * j(1, 2),
            j(2, 2),
            g_inv_prod,
            gr[0],
            gr[1],
            gr[2],
        ]
    }

    /// Gradient rows `out` `[p, 10]` of the pairs `geometry` `[p, 10]` / `dest` `[p]`, reading
    /// `grad` `[n_rows, K]` (every `dest` was checked below `n_rows` by the caller).
    #[inline(always)]
    fn backward<T: Real>(&self, geometry: &[T], dest: &[u32], grad: &[T], out: &mut [T]) {
        let f = &self.forward;
        let zero = T::of(0.0);
        let k_len = f.n_cols;
        let mut m = vec![[zero; LANES]; f.n_monomials];
        let mut gm = vec![[zero; LANES]; f.n_monomials];
        let mut gl = vec![[zero; LANES]; k_len];
        let mut h = vec![[zero; LANES]; k_len];
        for ((group, rows), out_group) in geometry
            .chunks(GEOMETRY_COLUMNS * LANES)
            .zip(dest.chunks(LANES))
            .zip(out.chunks_mut(GEOMETRY_COLUMNS * LANES))
        {
            let n = rows.len();
            let (mu, sigma, scale) = f.lane_parameters(group, n);
            f.moments(&mu, &sigma, &mut m);
            for (lane, &row) in rows.iter().enumerate() {
                let g_row = &grad[row as usize * k_len..(row as usize + 1) * k_len];
                for (c, &v) in g_row.iter().enumerate() {
                    gl[c][lane] = v;
                }
            }
            for c in gl.iter_mut() {
                for v in c.iter_mut().skip(n) {
                    *v = zero;
                }
            }
            // h = W G per channel and m-index (the transposed Löwdin mixing).
            for (offset, n_l, n_m, w) in &f.channels {
                for m_index in 0..*n_m {
                    let base = offset + m_index * n_l;
                    for n_in in 0..*n_l {
                        let mut sum = [zero; LANES];
                        for n_out in 0..*n_l {
                            let wv = T::of(w[n_in * n_l + n_out]);
                            let u = gl[base + n_out];
                            for l in 0..LANES {
                                sum[l] = sum[l] + u[l] * wv;
                            }
                        }
                        h[base + n_in] = sum;
                    }
                }
            }
            // ḡ = Bᵀ h.
            for (r, target) in gm.iter_mut().enumerate() {
                let mut sum = [zero; LANES];
                for e in self.t_start[r]..self.t_start[r + 1] {
                    let b = T::of(self.t_values[e]);
                    let x = h[self.t_cols[e]];
                    for l in 0..LANES {
                        sum[l] = sum[l] + x[l] * b;
                    }
                }
                *target = sum;
            }
            let mut gscale = [zero; LANES];
            for (mr, gr) in m.iter().zip(&gm) {
                for l in 0..LANES {
                    gscale[l] = gscale[l] + mr[l] * gr[l];
                }
            }
            let mut theta = [[zero; LANES]; 9];
            for (p, acc) in theta.iter_mut().enumerate() {
                // Two partial sums (even and odd terms), so that the reduction is not one long
                // latency chain.
                let (mut s0, mut s1) = ([zero; LANES], [zero; LANES]);
                let terms = &self.terms[self.param_start[p]..self.param_start[p + 1]];
                let mut pairs = terms.chunks_exact(2);
                for t in &mut pairs {
                    let (g0, m0, c0) = (&gm[t[0].n], &m[t[0].target], T::of(t[0].coef));
                    let (g1, m1, c1) = (&gm[t[1].n], &m[t[1].target], T::of(t[1].coef));
                    for l in 0..LANES {
                        s0[l] = s0[l] + c0 * g0[l] * m0[l];
                        s1[l] = s1[l] + c1 * g1[l] * m1[l];
                    }
                }
                for t in pairs.remainder() {
                    let (g0, m0, c0) = (&gm[t.n], &m[t.target], T::of(t.coef));
                    for l in 0..LANES {
                        s0[l] = s0[l] + c0 * g0[l] * m0[l];
                    }
                }
                *acc = std::array::from_fn(|l| s0[l] + s1[l]);
            }
            // The chain rule over all lanes at once (padded lanes get 1/(a1a2a3) = 1 so that
            // nothing divides by zero; their rows are not written).
            let lane = |k: usize| {
                V(std::array::from_fn(|l| {
                    group
                        .get(l * GEOMETRY_COLUMNS + k)
                        .copied()
                        .unwrap_or(T::of(1.0))
                }))
            };
            let r = [lane(7), lane(8), lane(9)];
            let sig = [
                [V(sigma[0]), V(sigma[1]), V(sigma[2])],
                [V(sigma[3]), V(sigma[4]), V(sigma[5])],
                [V(sigma[6]), V(sigma[7]), V(sigma[8])],
            ];
            let th = |p: usize| V(theta[p]) * V(scale);
            let mut cut = V::of(0.0);
            if f.smooth_width > 0.0 {
                for l in 0..n {
                    let q = gscale[l] * scale[l];
                    cut.0[l] = self.cutoff_term([r[0].0[l], r[1].0[l], r[2].0[l]], q);
                }
            }
            let rows = self.chain(
                r,
                lane(6),
                sig,
                V(scale),
                [th(0), th(1), th(2)],
                [th(3), th(4), th(5), th(6), th(7), th(8)],
                V(gscale),
                cut,
            );
            for l in 0..n {
                for (c, v) in rows.iter().enumerate() {
                    out_group[l * GEOMETRY_COLUMNS + c] = v.0[l];
                }
            }
        }
    }

    /// The same code compiled for AVX-512F (one 8-lane f64 register per lane group).
    ///
    /// # Safety
    /// The CPU must support AVX-512F ([`FusedPairDensityBackward::backward_dispatch`] checks).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn backward_avx512<T: Real>(&self, g: &[T], d: &[u32], grad: &[T], out: &mut [T]) {
        self.backward(g, d, grad, out)
    }

    /// The same code compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2 ([`FusedPairDensityBackward::backward_dispatch`] checks).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn backward_avx2<T: Real>(&self, g: &[T], d: &[u32], grad: &[T], out: &mut [T]) {
        self.backward(g, d, grad, out)
    }

    /// [`FusedPairDensityBackward::backward`] through its AVX-512 or AVX2 build when `avx2`
    /// (detected at run time by the caller; AVX-512F is detected here), else the baseline. No
    /// fused multiply-add is formed, so every build gives the same bits.
    #[inline]
    pub(crate) fn backward_dispatch<T: Real>(
        &self,
        avx2: bool,
        g: &[T],
        d: &[u32],
        grad: &[T],
        out: &mut [T],
    ) {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            if std::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512F support is checked just above; the function is otherwise
                // the same safe code as the baseline path.
                unsafe { self.backward_avx512(g, d, grad, out) };
                return;
            }
            assert!(std::is_x86_feature_detected!("avx2"));
            // SAFETY: AVX2 support is checked just above; the function is otherwise the same
            // safe code as the baseline path.
            unsafe { self.backward_avx2(g, d, grad, out) };
            return;
        }
        let _ = avx2;
        self.backward(g, d, grad, out);
    }

    fn run<T: Real>(
        &self,
        geometry: &[T],
        dest: &[u32],
        grad: &[T],
    ) -> candle_core::Result<Vec<T>> {
        let f = &self.forward;
        let p = dest.len();
        if geometry.len() != p * GEOMETRY_COLUMNS {
            candle_core::bail!(
                "anisoap-pair-density-bwd: geometry must be [P, {GEOMETRY_COLUMNS}]"
            );
        }
        if grad.len() != f.n_rows * f.n_cols {
            candle_core::bail!("anisoap-pair-density-bwd: gradient must be [n_rows, K]");
        }
        if dest.iter().any(|&r| r as usize >= f.n_rows) {
            candle_core::bail!("anisoap-pair-density-bwd: output row out of range");
        }
        let mut out = vec![T::of(0.0); p * GEOMETRY_COLUMNS];
        let avx2 = has_avx2();
        out.par_chunks_mut(TASK_PAIRS * GEOMETRY_COLUMNS)
            .zip(geometry.par_chunks(TASK_PAIRS * GEOMETRY_COLUMNS))
            .zip(dest.par_chunks(TASK_PAIRS))
            .for_each(|((out, g), d)| self.backward_dispatch(avx2, g, d, grad, out));
        Ok(out)
    }
}

impl CustomOp3 for FusedPairDensityBackward {
    fn name(&self) -> &'static str {
        "anisoap-pair-density-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dest = match s2 {
            CpuStorage::U32(d) => contiguous(d, l2, "destinations")?,
            _ => candle_core::bail!("anisoap-pair-density-bwd: destinations must be u32"),
        };
        let shape = Shape::from((dest.len(), GEOMETRY_COLUMNS));
        let storage = match (s1, s3) {
            (CpuStorage::F64(g), CpuStorage::F64(grad)) => CpuStorage::F64(self.run(
                contiguous(g, l1, "geometry")?,
                dest,
                contiguous(grad, l3, "gradient")?,
            )?),
            (CpuStorage::F32(g), CpuStorage::F32(grad)) => CpuStorage::F32(self.run(
                contiguous(g, l1, "geometry")?,
                dest,
                contiguous(grad, l3, "gradient")?,
            )?),
            _ => candle_core::bail!(
                "anisoap-pair-density-bwd: geometry and gradient must both be f64 or f32"
            ),
        };
        Ok((storage, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `E[x^n]` under `N(μ, Σ)` by the reference recurrence, all monomials up to degree 5.
    fn moments(mu: [f64; 3], s: [f64; 6]) -> Vec<f64> {
        let index = MonomialIndex::new(5);
        let plan = crate::basis::monomials::recurrence_plan(&index);
        let sigma = [s[0], s[1], s[2], s[1], s[3], s[4], s[2], s[4], s[5]];
        let mut m = vec![1.0];
        for step in &plan {
            let mut v = mu[step.dir] * m[step.parent];
            for j in 0..3 {
                v += sigma[step.dir * 3 + j] * step.weight[j] as f64 * m[step.grandparent[j]];
            }
            m.push(v);
        }
        m
    }

    /// The moment identities (step 2) against central finite differences of the recurrence,
    /// for every monomial up to degree 5 and every one of the nine parameters.
    #[test]
    fn moment_identities_match_finite_differences() {
        let mu = [0.3, -0.7, 0.45];
        let s = [1.2, 0.3, -0.2, 0.9, 0.15, 0.7];
        let m = moments(mu, s);
        let terms = identity_terms(m.len());
        let mut analytic = vec![[0.0; 9]; m.len()];
        for t in &terms {
            analytic[t.n][t.param] += t.coef * m[t.target];
        }
        let h = 1e-5;
        let mut worst = 0.0f64;
        for param in 0..9 {
            let shifted = |delta: f64| {
                let (mut mu, mut s) = (mu, s);
                if param < 3 {
                    mu[param] += delta;
                } else {
                    s[param - 3] += delta;
                }
                moments(mu, s)
            };
            let (plus, minus) = (shifted(h), shifted(-h));
            for n in 0..m.len() {
                let fd = (plus[n] - minus[n]) / (2.0 * h);
                let err = (fd - analytic[n][param]).abs() / (1.0 + fd.abs());
                worst = worst.max(err);
            }
        }
        assert!(worst < 1e-8, "worst relative error {worst:e}");
        // And the identities are not vacuous: some derivative of every kind is non-zero.
        for param in 0..9 {
            assert!(analytic.iter().any(|row| row[param].abs() > 0.1));
        }
    }

    /// The geometry-level op's backward (`apply_op2` on [`FusedPairDensity`]) against central
    /// finite differences of its forward, every entry of every geometry row, GTO with the smooth
    /// cutoff (pairs inside the zone) and the monomial basis.
    #[test]
    fn geometry_gradient_matches_finite_differences() {
        use candle_core::{Device, Tensor, Var};
        use rand::{Rng, SeedableRng};
        let mut gto = crate::Hypers::gto(4, 3.5, 1.0);
        gto.cutoff_function = crate::cutoff::CutoffFunction::ShiftedCosine { width: 1.5 };
        let mut mono = crate::Hypers::monomial(3, 3.0);
        mono.max_radial = crate::hypers::MaxRadial::Uniform(1);
        for (hypers, shift) in [(gto, 1.0), (mono, 0.0)] {
            let basis = crate::basis::Basis::new(&hypers).unwrap();
            let plan = crate::basis::monomials::recurrence_plan(&basis.monomials);
            let op = FusedPairDensity::new(&basis, &plan, shift).for_chunk(3, 2);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let (p, mut geometry, mut dest) = (20, Vec::new(), Vec::new());
            let mut in_zone = 0;
            for q in 0..p {
                let m: [[f64; 3]; 3] =
                    std::array::from_fn(|_| std::array::from_fn(|_| rng.gen_range(-0.8..0.8)));
                let a = |i: usize, j: usize| {
                    (0..3).map(|k| m[i][k] * m[j][k]).sum::<f64>() + if i == j { 0.6 } else { 0.0 }
                };
                let r: [f64; 3] = std::array::from_fn(|_| rng.gen_range(-1.7..1.7));
                let d = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
                in_zone += usize::from(d > 2.0 && d < 3.5);
                geometry.extend_from_slice(&[a(0, 0), a(0, 1), a(0, 2), a(1, 1), a(1, 2), a(2, 2)]);
                geometry.push(rng.gen_range(0.3..1.2));
                geometry.extend_from_slice(&r);
                dest.push((q * 3 / p * 2 + rng.gen_range(0..2)) as u32);
            }
            assert!(in_zone >= 3, "{in_zone} pairs in the smoothing zone");
            let dev = Device::Cpu;
            let dest_t = Tensor::from_vec(dest.clone(), p, &dev).unwrap();
            let n_out = op.n_rows * op.n_cols;
            let w: Vec<f64> = (0..n_out).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let w_t = Tensor::from_vec(w.clone(), (op.n_rows, op.n_cols), &dev).unwrap();
            let loss = |g: &[f64]| -> f64 {
                let g = Tensor::from_vec(g.to_vec(), (p, GEOMETRY_COLUMNS), &dev).unwrap();
                let out = g.apply_op2_no_bwd(&dest_t, &op).unwrap();
                let v: Vec<f64> = out.flatten_all().unwrap().to_vec1().unwrap();
                v.iter().zip(&w).map(|(a, b)| a * b).sum()
            };
            let var = Var::from_vec(geometry.clone(), (p, GEOMETRY_COLUMNS), &dev).unwrap();
            let out = var.as_tensor().apply_op2(&dest_t, op.clone()).unwrap();
            let grads = (out * &w_t).unwrap().sum_all().unwrap().backward().unwrap();
            let analytic: Vec<f64> = grads
                .get(&var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let h = 1e-6;
            let (mut worst, mut scale) = (0.0f64, 0.0f64);
            for k in 0..geometry.len() {
                let (mut plus, mut minus) = (geometry.clone(), geometry.clone());
                plus[k] += h;
                minus[k] -= h;
                let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
                worst = worst.max((fd - analytic[k]).abs());
                scale = scale.max(fd.abs());
            }
            assert!(scale > 1e-3, "trivial gradient {scale:e}");
            assert!(
                worst <= 1e-6 * scale,
                "worst {worst:e} of {scale:e} (shift {shift})"
            );
        }
    }
}
