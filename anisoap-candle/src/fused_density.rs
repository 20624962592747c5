//! The fused CPU kernel for a whole chunk: pair geometry in, neighbour-summed density out, behind
//! Candle's `CustomOp2`.
//!
//! Per pair it computes the Gaussian parameters (cofactor inverse of `A' = A + I/σ²`, `μ`,
//! `κ`, the scalar factor; the formulas of [`crate::batched::BatchedBasis::gaussian_parameters`]),
//! the moment recurrence and the contraction with the non-zeros of `B`, and adds the result to
//! the centre's row for the neighbour's type — no `[P, K]` coefficient buffer, no gathers, no
//! `index_add`. Pairs run in SIMD lanes ([`LANES`] pairs side by side through the recurrence
//! and the contraction: fixed-size arrays that the compiler vectorises, with AVX2 chosen at run
//! time when the CPU has it), rayon-parallel over groups of whole centres, so every output row
//! is written by one thread, in pair order (the order `index_add` uses). No fused multiply-add
//! is formed, so the AVX2 and the baseline paths give the same bits.
//!
//! The tensor-op path ([`crate::batched::BatchedBasis::moments`] and friends) stays the oracle:
//! tests compare both to rounding.
//!
//! The op has an analytic backward (`backward.rs`: the gradient with respect to the geometry
//! rows, from the Gaussian-moment identities and the chain rule through `A'⁻¹`, `κ` and the
//! smooth cutoff; `apply_op2` uses it, the calculator keeps `apply_op2_no_bwd`).
//! [`FusedFrameDensity`] (`frame.rs`) runs the same kernel and backward over a whole frame's
//! pair list from positions and orientations — what [`crate::differentiable`] uses on the CPU.

mod backward;
mod frame;
mod orientation;

pub use frame::{FramePairs, FusedFrameDensity, PARTICLE_COLUMNS};
pub use orientation::{orientation_grad, particle_rows, ORIENTATION_COLUMNS};

use crate::basis::monomials::RecurrenceStep;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::ops::{Add, Div, Mul, Sub};

/// Pairs processed side by side.
pub const LANES: usize = 8;

/// Columns of the geometry input: `a00 a01 a02 a11 a12 a22` (precision of the neighbour),
/// `1/(a1 a2 a3)`, `r_x r_y r_z`.
pub const GEOMETRY_COLUMNS: usize = 10;

/// Floating-point types the kernel runs in.
pub trait Real:
    Copy
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + PartialOrd
{
    /// Conversion from f64.
    fn of(v: f64) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Exponential.
    fn exp(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
}

impl Real for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn cos(self) -> Self {
        f64::cos(self)
    }
    fn sin(self) -> Self {
        f64::sin(self)
    }
}

impl Real for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn cos(self) -> Self {
        f32::cos(self)
    }
    fn sin(self) -> Self {
        f32::sin(self)
    }
}

/// One recurrence step with only its non-zero coupling terms.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) dir: usize,
    pub(crate) parent: usize,
    /// `(index into Σ's 9 entries, weight, grandparent)`.
    pub(crate) terms: Vec<(usize, f64, usize)>,
}

/// The kernel: constants of one basis and the output size of one chunk.
///
/// The contraction is done in two steps, `B = T'·(ν W)` factored: first the raw coefficients
/// `u[l,m,n] = ν_{l+2n} Σ T'_l[m,n,abc] m_abc` (each uses only monomials of degree `l + 2n`),
/// then the Löwdin mixing `c[l,m,n'] = Σ_n u[l,m,n] W_l[n,n']` — about half the work of the
/// folded matrix `B`, whose columns repeat every `T'` entry `N_l` times.
#[derive(Debug, Clone)]
pub struct FusedPairDensity {
    pub(crate) steps: Vec<Step>,
    /// Raw coefficient `c` (layout of [`crate::basis::Basis::column`]) uses the entries
    /// `col_start[c]..col_start[c + 1]` of `rows` (monomials) and `values` (`ν T'`).
    pub(crate) col_start: Vec<usize>,
    pub(crate) rows: Vec<usize>,
    pub(crate) values: Vec<f64>,
    /// Per channel `l`: first column, `N_l`, `2l + 1`, and `W_l` row-major (`N_l × N_l`).
    pub(crate) channels: Vec<(usize, usize, usize, Vec<f64>)>,
    pub(crate) n_cols: usize,
    pub(crate) n_monomials: usize,
    /// `1/σ²` for GTO, 0 for monomials.
    pub shift: f64,
    /// Cutoff radius `r_c` (used only by the smooth cutoff).
    pub cutoff: f64,
    /// Width `w` of the smooth cutoff ([`crate::cutoff`]); 0 is the original's step (no factor).
    pub smooth_width: f64,
    /// Output rows of the chunk (`centres × types`); set per chunk with [`Self::for_chunk`].
    pub n_rows: usize,
    /// Rows per centre (types); a pair's centre is its output row divided by this.
    pub n_types: usize,
}

impl FusedPairDensity {
    /// From the basis constants (harmonic tables, radial norms, Löwdin matrices), its
    /// recurrence plan and the dilation shift `1/σ²`.
    pub fn new(basis: &crate::basis::Basis, plan: &[RecurrenceStep], shift: f64) -> Self {
        use crate::basis::monomials::MonomialIndex;
        let n_monomials = plan.len() + 1;
        let n_cols = basis.n_coefficients;
        let mut col_start = vec![0];
        let mut rows = Vec::new();
        let mut values = Vec::new();
        let mut channels = Vec::new();
        for (l, &n_l) in basis.n_radial.iter().enumerate() {
            let w = &basis.lowdin[l];
            channels.push((
                basis.channel_offsets[l],
                n_l,
                2 * l + 1,
                (0..n_l * n_l).map(|k| w[(k / n_l, k % n_l)]).collect(),
            ));
            for m_index in 0..2 * l + 1 {
                for n in 0..n_l {
                    let nu = basis.radial_norms[l + 2 * n];
                    for (e, &c) in &basis.harmonics.tables[l][m_index][n] {
                        rows.push(MonomialIndex::position(*e));
                        values.push(c * nu);
                    }
                    col_start.push(rows.len());
                }
            }
        }
        debug_assert_eq!(col_start.len(), n_cols + 1);
        let steps = plan
            .iter()
            .map(|s| Step {
                dir: s.dir,
                parent: s.parent,
                terms: (0..3)
                    .filter(|&j| s.weight[j] != 0)
                    .map(|j| (s.dir * 3 + j, s.weight[j] as f64, s.grandparent[j]))
                    .collect(),
            })
            .collect();
        FusedPairDensity {
            steps,
            col_start,
            rows,
            values,
            channels,
            n_cols,
            n_monomials,
            shift,
            cutoff: basis.hypers.cutoff_radius,
            smooth_width: basis.hypers.cutoff_function.width(),
            n_rows: 0,
            n_types: 1,
        }
    }

    /// The same kernel for a chunk of `n_centers` centres with `n_types` rows each.
    pub fn for_chunk(&self, n_centers: usize, n_types: usize) -> Self {
        FusedPairDensity {
            n_rows: n_centers * n_types,
            n_types: n_types.max(1),
            ..self.clone()
        }
    }

    /// Gaussian parameters of one pair: `(μ, Σ as 9 entries, scale)`.
    #[inline(always)]
    pub(crate) fn gaussian<T: Real>(&self, g: &[T]) -> ([T; 3], [T; 9], T) {
        let (a00, a01, a02, a11, a12, a22) = (g[0], g[1], g[2], g[3], g[4], g[5]);
        let (inv_prod, r) = (g[6], [g[7], g[8], g[9]]);
        let s = T::of(self.shift);
        let (b00, b11, b22) = if self.shift != 0.0 {
            (a00 + s, a11 + s, a22 + s)
        } else {
            (a00, a11, a22)
        };
        let c00 = b11 * b22 - a12 * a12;
        let c01 = a02 * a12 - a01 * b22;
        let c02 = a01 * a12 - a02 * b11;
        let c11 = b00 * b22 - a02 * a02;
        let c12 = a01 * a02 - b00 * a12;
        let c22 = b00 * b11 - a01 * a01;
        let det = b00 * c00 + a01 * c01 + a02 * c02;
        let sigma = [
            c00 / det,
            c01 / det,
            c02 / det,
            c01 / det,
            c11 / det,
            c12 / det,
            c02 / det,
            c12 / det,
            c22 / det,
        ];
        let scale_base = inv_prod / det.sqrt();
        if self.shift == 0.0 {
            return (r, sigma, scale_base);
        }
        let sr = [
            sigma[0] * r[0] + sigma[1] * r[1] + sigma[2] * r[2],
            sigma[3] * r[0] + sigma[4] * r[1] + sigma[5] * r[2],
            sigma[6] * r[0] + sigma[7] * r[1] + sigma[8] * r[2],
        ];
        let ar = [
            a00 * r[0] + a01 * r[1] + a02 * r[2],
            a01 * r[0] + a11 * r[1] + a12 * r[2],
            a02 * r[0] + a12 * r[1] + a22 * r[2],
        ];
        let mu = [r[0] - sr[0] * s, r[1] - sr[1] * s, r[2] - sr[2] * s];
        let kappa = (sr[0] * ar[0] + sr[1] * ar[1] + sr[2] * ar[2]) * s;
        let scale = (kappa * T::of(-0.5)).exp() * scale_base;
        (mu, sigma, scale)
    }

    /// The smooth cutoff `f(|r|)` of one pair ([`crate::cutoff::CutoffFunction::value`] in
    /// the kernel's dtype); only called when `smooth_width > 0`.
    #[inline(always)]
    pub(crate) fn smooth_factor<T: Real>(&self, r: [T; 3]) -> T {
        let distance = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        let (cutoff, width) = (T::of(self.cutoff), T::of(self.smooth_width));
        if distance <= cutoff - width {
            T::of(1.0)
        } else if distance >= cutoff {
            T::of(0.0)
        } else {
            let phase = T::of(std::f64::consts::PI) * (distance - cutoff + width) / width;
            T::of(0.5) * (T::of(1.0) + phase.cos())
        }
    }

    /// Gaussian parameters `μ` `[3]`, `Σ` `[9]` and the scalar factor (smooth cutoff included)
    /// of the first `n` geometry rows of `group`, lane by lane; the other lanes are zero.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    pub(crate) fn lane_parameters<T: Real>(
        &self,
        group: &[T],
        n: usize,
    ) -> ([[T; LANES]; 3], [[T; LANES]; 9], [T; LANES]) {
        let zero = T::of(0.0);
        let mut mu = [[zero; LANES]; 3];
        let mut sigma = [[zero; LANES]; 9];
        let mut scale = [zero; LANES];
        for lane in 0..n {
            let g = &group[lane * GEOMETRY_COLUMNS..(lane + 1) * GEOMETRY_COLUMNS];
            let (mu_l, sigma_l, scale_l) = self.gaussian(g);
            for d in 0..3 {
                mu[d][lane] = mu_l[d];
            }
            for e in 0..9 {
                sigma[e][lane] = sigma_l[e];
            }
            // The smooth cutoff weights the pair's whole row through its scalar factor
            // (the step applies none, so the default keeps its bits).
            scale[lane] = if self.smooth_width > 0.0 {
                scale_l * self.smooth_factor([g[7], g[8], g[9]])
            } else {
                scale_l
            };
        }
        (mu, sigma, scale)
    }

    /// The moment recurrence of one group of lanes: `m[k]` = E[x^k] under N(μ, Σ) for every
    /// packed monomial `k` (`m[0] = 1`), from `μ` `[3]` and `Σ` `[9]` per lane.
    #[inline(always)]
    pub(crate) fn moments<T: Real>(
        &self,
        mu: &[[T; LANES]; 3],
        sigma: &[[T; LANES]; 9],
        m: &mut [[T; LANES]],
    ) {
        let zero = T::of(0.0);
        m[0] = [T::of(1.0); LANES];
        for (k, step) in self.steps.iter().enumerate() {
            let mut v = [zero; LANES];
            let parent = m[step.parent];
            let mu_dir = mu[step.dir];
            for l in 0..LANES {
                v[l] = mu_dir[l] * parent[l];
            }
            let mut coupling = [zero; LANES];
            for (t, &(e, w, gp)) in step.terms.iter().enumerate() {
                let w = T::of(w);
                let g = m[gp];
                let sig = sigma[e];
                for l in 0..LANES {
                    let term = sig[l] * w * g[l];
                    coupling[l] = if t == 0 { term } else { coupling[l] + term };
                }
            }
            if !step.terms.is_empty() {
                for l in 0..LANES {
                    v[l] = v[l] + coupling[l];
                }
            }
            m[k + 1] = v;
        }
    }

    /// Adds the coefficients of `pairs` (geometry rows, output row of each pair) to `out`,
    /// whose first row is output row `row0`. Every output row is checked to lie in
    /// `row0..row0 + out.len() / K` before this is called ([`FusedPairDensity::run`] cuts tasks
    /// at centre boundaries); slice indexing would panic rather than write elsewhere.
    #[inline(always)]
    fn accumulate<T: Real>(&self, geometry: &[T], dest: &[u32], row0: usize, out: &mut [T]) {
        let zero = T::of(0.0);
        let k_len = self.n_cols;
        let mut m = vec![[zero; LANES]; self.n_monomials];
        let mut raw = vec![[zero; LANES]; k_len];
        let mut acc = vec![[zero; LANES]; k_len];
        for (group, rows) in geometry
            .chunks(GEOMETRY_COLUMNS * LANES)
            .zip(dest.chunks(LANES))
        {
            let n = rows.len();
            let (mu, sigma, scale) = self.lane_parameters(group, n);
            self.moments(&mu, &sigma, &mut m);
            for (c, u) in raw.iter_mut().enumerate() {
                let mut sum = [zero; LANES];
                for e in self.col_start[c]..self.col_start[c + 1] {
                    let b = T::of(self.values[e]);
                    let x = m[self.rows[e]];
                    for l in 0..LANES {
                        sum[l] = sum[l] + x[l] * b;
                    }
                }
                *u = sum;
            }
            for (offset, n_l, n_m, w) in &self.channels {
                for m_index in 0..*n_m {
                    let base = offset + m_index * n_l;
                    for n_out in 0..*n_l {
                        let mut sum = [zero; LANES];
                        for n in 0..*n_l {
                            let wv = T::of(w[n * n_l + n_out]);
                            let u = raw[base + n];
                            for l in 0..LANES {
                                sum[l] = sum[l] + u[l] * wv;
                            }
                        }
                        let a = &mut acc[base + n_out];
                        for l in 0..LANES {
                            a[l] = sum[l] * scale[l];
                        }
                    }
                }
            }
            for (lane, &row) in rows.iter().enumerate() {
                let start = (row as usize - row0) * k_len;
                let target = &mut out[start..start + k_len];
                for (t, a) in target.iter_mut().zip(&acc) {
                    *t = *t + a[lane];
                }
            }
        }
    }

    /// Baseline entry point (SSE2 on x86-64).
    fn accumulate_baseline<T: Real>(&self, g: &[T], d: &[u32], row0: usize, out: &mut [T]) {
        self.accumulate(g, d, row0, out)
    }

    /// The same code compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2 ([`FusedPairDensity::accumulate_dispatch`] checks).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn accumulate_avx2<T: Real>(&self, g: &[T], d: &[u32], row0: usize, out: &mut [T]) {
        self.accumulate(g, d, row0, out)
    }

    /// Density rows `[n_rows, K]` from geometry `[P, 10]` and the output row of each pair
    /// (`centre × n_types + type`, pairs sorted by centre).
    fn run<T: Real>(&self, geometry: &[T], dest: &[u32]) -> candle_core::Result<Vec<T>> {
        let p = dest.len();
        if geometry.len() != p * GEOMETRY_COLUMNS {
            candle_core::bail!("anisoap-pair-density: geometry must be [P, {GEOMETRY_COLUMNS}]");
        }
        self.run_tasks(dest, |range, row0, slice, avx2| {
            let g = &geometry[range.start * GEOMETRY_COLUMNS..range.end * GEOMETRY_COLUMNS];
            self.accumulate_dispatch(avx2, g, &dest[range], row0, slice);
        })
    }

    /// [`FusedPairDensity::accumulate`] through its AVX2 build when `avx2` (detected at run
    /// time by the caller), else the baseline.
    #[inline]
    pub(crate) fn accumulate_dispatch<T: Real>(
        &self,
        avx2: bool,
        g: &[T],
        d: &[u32],
        row0: usize,
        out: &mut [T],
    ) {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            assert!(std::is_x86_feature_detected!("avx2"));
            // SAFETY: AVX2 support is checked just above; the function is otherwise the same
            // safe code as the baseline entry point.
            unsafe { self.accumulate_avx2(g, d, row0, out) };
            return;
        }
        let _ = avx2;
        self.accumulate_baseline(g, d, row0, out);
    }

    /// The density rows `[n_rows, K]` of pairs with output rows `dest` (sorted by centre, each
    /// checked below `n_rows`), split into rayon tasks of ~512 pairs cut where the centre
    /// changes: `task(pairs, row0, rows, avx2)` adds the pairs `pairs` into `rows`, the output
    /// rows from `row0` on that the task owns (whole centres).
    pub(crate) fn run_tasks<T: Real>(
        &self,
        dest: &[u32],
        task: impl Fn(std::ops::Range<usize>, usize, &mut [T], bool) + Sync,
    ) -> candle_core::Result<Vec<T>> {
        let p = dest.len();
        let nt = self.n_types as u32;
        if dest.windows(2).any(|w| w[0] / nt > w[1] / nt) {
            candle_core::bail!("anisoap-pair-density: pairs must be sorted by centre");
        }
        if dest.iter().any(|&r| r as usize >= self.n_rows) {
            candle_core::bail!("anisoap-pair-density: output row out of range");
        }
        let k_len = self.n_cols;
        let mut out = vec![T::of(0.0); self.n_rows * k_len];
        // Tasks of ~512 pairs, cut only where the centre changes, so that each task owns a
        // contiguous range of output rows (whole centres).
        let mut cuts = vec![0usize];
        let mut next = 512;
        while next < p {
            let center = dest[next - 1] / nt;
            let mut cut = next;
            while cut < p && dest[cut] / nt == center {
                cut += 1;
            }
            if cut < p {
                cuts.push(cut);
            }
            next = cut + 512;
        }
        cuts.push(p);
        let mut tasks = Vec::with_capacity(cuts.len());
        let mut rest: &mut [T] = &mut out;
        let mut rest_row0 = 0usize;
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a == b {
                continue;
            }
            // Rows of this task: up to the next task's first row (or the end).
            let end_row = if b < p {
                (dest[b] / nt) as usize * self.n_types
            } else {
                self.n_rows
            };
            let (mine, tail) = rest.split_at_mut((end_row - rest_row0) * k_len);
            tasks.push((a..b, rest_row0, mine));
            rest = tail;
            rest_row0 = end_row;
        }
        let avx2 = has_avx2();
        tasks
            .into_par_iter()
            .for_each(|(range, row0, slice)| task(range, row0, slice, avx2));
        Ok(out)
    }
}

/// True when the CPU has AVX2 (always false off x86-64).
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout, what: &str) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("anisoap-pair-density: {what} must be contiguous"),
    }
}

impl CustomOp2 for FusedPairDensity {
    fn name(&self) -> &'static str {
        "anisoap-pair-density"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = Shape::from((self.n_rows, self.n_cols));
        let dest = match s2 {
            CpuStorage::U32(d) => contiguous(d, l2, "destinations")?,
            _ => candle_core::bail!("anisoap-pair-density: destinations must be u32"),
        };
        let storage = match s1 {
            CpuStorage::F64(g) => CpuStorage::F64(self.run(contiguous(g, l1, "geometry")?, dest)?),
            CpuStorage::F32(g) => CpuStorage::F32(self.run(contiguous(g, l1, "geometry")?, dest)?),
            _ => candle_core::bail!("anisoap-pair-density: geometry must be f64 or f32"),
        };
        Ok((storage, shape))
    }

    /// The gradient with respect to the geometry rows `[P, 10]` (none for the destinations),
    /// computed by the analytic backward kernel (`backward.rs`). Not differentiable itself
    /// (no second derivatives through the fused path).
    fn bwd(
        &self,
        geometry: &Tensor,
        dest: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let op = backward::FusedPairDensityBackward::new(self);
        let grad = geometry.contiguous()?.apply_op3_no_bwd(
            &dest.contiguous()?,
            &grad_res.contiguous()?,
            &op,
        )?;
        Ok((Some(grad), None))
    }
}

#[cfg(test)]
mod tests {
    use crate::basis::Basis;
    use crate::batched::{chunk_density, BatchedBasis, BatchedOptions, ParticleTensors};
    use crate::synthetic::{generate, SyntheticSpec, SystemKind};
    use crate::system::System;
    use crate::Hypers;
    use candle_core::DType;

    /// The fused chunk kernel equals the tensor-op path (the oracle) chunk by chunk, for GTO and
    /// monomial bases, several types, self pairs and not, f64 and f32.
    #[test]
    fn equals_the_tensor_op_path() {
        let frames = generate(
            &SyntheticSpec {
                kind: SystemKind::EllipsoidLiquid,
                n_particles: 40,
                n_species: 3,
                periodic: true,
                density: 0.08,
                seed: 5,
            },
            2,
        );
        let mut subtract = Hypers::gto(5, 4.0, 1.1);
        subtract.subtract_center_contribution = true;
        let mut mono = Hypers::monomial(3, 3.5);
        mono.max_radial = crate::hypers::MaxRadial::Uniform(2);
        for hypers in [Hypers::gto(4, 4.0, 1.2), subtract, mono] {
            let basis = Basis::new(&hypers).unwrap();
            let system = System::new(&frames, &basis).unwrap();
            for (dtype, rtol) in [(DType::F64, 1e-12), (DType::F32, 2e-4)] {
                let options = |fused| BatchedOptions {
                    dtype,
                    chunk_pairs: 500,
                    fused_cpu_moments: fused,
                    cuda_neighbor_search: true,
                    ..BatchedOptions::cpu_f64()
                };
                let (fused, tensor) = (options(true), options(false));
                let fb = BatchedBasis::new(&basis, &fused).unwrap();
                let tb = BatchedBasis::new(&basis, &tensor).unwrap();
                let particles = ParticleTensors::new(&system, &tensor).unwrap();
                let chunks = system.center_chunks(500);
                assert!(chunks.len() > 2, "several chunks");
                for centers in chunks {
                    let pairs = system.pairs(centers.clone()).unwrap();
                    let get = |b: &BatchedBasis| -> Vec<f64> {
                        chunk_density(
                            b,
                            &system,
                            &particles,
                            centers.clone(),
                            &pairs,
                            basis.n_coefficients,
                        )
                        .unwrap()
                        .to_dtype(DType::F64)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                    };
                    let (a, b) = (get(&fb), get(&tb));
                    assert_eq!(a.len(), b.len());
                    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    assert!(scale > 0.0);
                    let worst = a
                        .iter()
                        .zip(&b)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f64::max);
                    assert!(
                        worst <= rtol * scale,
                        "{dtype:?}: worst {worst:e} of scale {scale:e}"
                    );
                }
            }
        }
    }
}
