//! The fused kernel over a whole frame's pair list, from per-particle tensors, with its
//! analytic backward: what [`crate::differentiable`] runs on the CPU.
//!
//! Inputs (a `CustomOp3`): positions `[N, 3]`, orientation rows `[N, 7]` (quaternion
//! `(w, x, y, z)` and semi-axes; the op forms the particle rows — precision row
//! `a00 a01 a02 a11 a12 a22` and `1/(a1 a2 a3)` — itself, `orientation.rs`) and a strain `ε`
//! `[3, 3]`; the pair list
//! ([`FramePairs`]: centre, neighbour, constant shift `S·cell`, output row) lives on the host
//! inside the op. Each rayon task builds the geometry rows of its own pairs
//! (`r = (I + ε)(x_j − x_i + S·cell)`) in a local buffer and runs the chunk kernel on them, so
//! no `[P, ·]` tensor exists in the autograd graph: memory is the output `[N · types, K]`
//! plus one buffer per task, whatever the number of pairs. The backward does the same per
//! task with the analytic pair backward (`backward.rs`) and scatters each pair's geometry
//! gradient into per-block accumulators `[N, 10]` (+ `ε`), summed in a fixed order at the end.

use super::backward::{FusedPairDensityBackward, TASK_PAIRS};
use super::orientation::{orientation_grad, particle_rows, ORIENTATION_COLUMNS};
use super::{contiguous, has_avx2, FusedPairDensity, Real, GEOMETRY_COLUMNS};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Columns of a particle row: the precision row and `1/(a1 a2 a3)`.
pub const PARTICLE_COLUMNS: usize = 7;

/// A frame's pair list as the fused frame op reads it (host memory).
#[derive(Debug, Clone, Default)]
pub struct FramePairs {
    /// Centre `i` of each pair (pairs sorted by centre).
    pub centers: Vec<u32>,
    /// Neighbour `j` of each pair.
    pub neighbors: Vec<u32>,
    /// Constant displacement `S · cell` of each pair.
    pub shifts: Vec<[f64; 3]>,
    /// Output row `i · n_types + slot(t_j)` of each pair.
    pub dest: Vec<u32>,
}

/// The frame op: `(positions [N, 3], orientations [N, 7], strain [3, 3]) → density rows
/// [n_rows, K]` (see the module documentation), with an analytic backward to all three.
#[derive(Debug, Clone)]
pub struct FusedFrameDensity {
    kernel: FusedPairDensity,
    pairs: Arc<FramePairs>,
    strained: bool,
}

impl FusedFrameDensity {
    /// `kernel` sized for the frame ([`FusedPairDensity::for_chunk`] with every particle a
    /// centre), the frame's `pairs`, and whether the strain input is applied (`false`: it is
    /// ignored and gets no gradient, and `r` keeps the bits of `x_j − x_i + S·cell`).
    pub fn new(kernel: FusedPairDensity, pairs: Arc<FramePairs>, strained: bool) -> Self {
        FusedFrameDensity {
            kernel,
            pairs,
            strained,
        }
    }

    /// Checks the inputs' sizes and the pair list against them.
    fn check(
        &self,
        n_positions: usize,
        n_particles: usize,
        n_strain: usize,
    ) -> candle_core::Result<usize> {
        let n = n_positions / 3;
        let p = &self.pairs;
        if n_positions != 3 * n || n_particles != ORIENTATION_COLUMNS * n || n_strain != 9 {
            candle_core::bail!(
                "anisoap-frame-density: inputs must be [N, 3], [N, {ORIENTATION_COLUMNS}], [3, 3]"
            );
        }
        let len = p.centers.len();
        if p.neighbors.len() != len || p.shifts.len() != len || p.dest.len() != len {
            candle_core::bail!("anisoap-frame-density: pair arrays of different lengths");
        }
        if p.centers
            .iter()
            .chain(&p.neighbors)
            .any(|&i| i as usize >= n)
        {
            candle_core::bail!("anisoap-frame-density: pair index out of range");
        }
        Ok(n)
    }

    /// Geometry rows of the pairs `range` into `out` (cleared first), and the unstrained pair
    /// vectors into `r0`.
    fn geometry<T: Real>(
        &self,
        range: std::ops::Range<usize>,
        inputs: (&[T], &[T], &[T]),
        out: &mut Vec<T>,
        r0: &mut Vec<[T; 3]>,
    ) {
        let (positions, particles, strain) = inputs;
        let p = &self.pairs;
        out.clear();
        r0.clear();
        for q in range {
            let (i, j) = (p.centers[q] as usize, p.neighbors[q] as usize);
            let s = p.shifts[q];
            let r: [T; 3] = std::array::from_fn(|d| {
                (positions[3 * j + d] - positions[3 * i + d]) + T::of(s[d])
            });
            r0.push(r);
            out.extend_from_slice(&particles[PARTICLE_COLUMNS * j..PARTICLE_COLUMNS * (j + 1)]);
            if self.strained {
                for a in 0..3 {
                    let er =
                        strain[3 * a] * r[0] + strain[3 * a + 1] * r[1] + strain[3 * a + 2] * r[2];
                    out.push(r[a] + er);
                }
            } else {
                out.extend_from_slice(&r);
            }
        }
    }

    fn forward<T: Real>(&self, inputs: (&[T], &[T], &[T])) -> candle_core::Result<Vec<T>> {
        let dest = &self.pairs.dest;
        self.kernel.run_tasks(dest, |range, row0, slice, avx2| {
            let (mut g, mut r0) = (Vec::new(), Vec::new());
            self.geometry(range.clone(), inputs, &mut g, &mut r0);
            self.kernel
                .accumulate_dispatch(avx2, &g, &dest[range], row0, slice);
        })
    }

    /// Gradients `([N, 3], [N, 7], [9])` of the positions, particle rows and strain from the
    /// gradient `grad` `[n_rows, K]` of the output.
    #[allow(clippy::type_complexity)]
    fn backward<T: Real>(
        &self,
        inputs: (&[T], &[T], &[T]),
        grad: &[T],
    ) -> candle_core::Result<(Vec<T>, Vec<T>, Vec<T>)> {
        let (positions, _, strain) = inputs;
        let n = positions.len() / 3;
        let p = self.pairs.dest.len();
        let kernel = &self.kernel;
        if grad.len() != kernel.n_rows * kernel.n_cols {
            candle_core::bail!("anisoap-frame-density: gradient must be [n_rows, K]");
        }
        if self.pairs.dest.iter().any(|&r| r as usize >= kernel.n_rows) {
            candle_core::bail!("anisoap-frame-density: output row out of range");
        }
        let bwd = FusedPairDensityBackward::new(kernel);
        let avx2 = has_avx2();
        // Contiguous blocks of ~2048 pairs (rayon balances them when a core is busy), each
        // with its own accumulator ([N, 3] positions, [N, 7] particles, ε), summed in block
        // order: the same bits on every run. Their number is capped so that the accumulators
        // stay within ~64 MB (at least 4 per thread, at most 256 blocks).
        let width = 3 * n + PARTICLE_COLUMNS * n + 9;
        let by_memory = (64 << 20) / (width * std::mem::size_of::<T>());
        let workers = p
            .div_ceil(2048)
            .min(by_memory.max(4 * rayon::current_num_threads()))
            .clamp(1, 256);
        let zero = T::of(0.0);
        let parts: Vec<Vec<T>> = (0..workers)
            .into_par_iter()
            .map(|w| {
                let mut acc = vec![zero; width];
                let (start, end) = (w * p / workers, (w + 1) * p / workers);
                let (mut g, mut r0) = (Vec::new(), Vec::new());
                let mut gout = [zero; TASK_PAIRS * GEOMETRY_COLUMNS];
                let mut a = start;
                while a < end {
                    let b = end.min(a + TASK_PAIRS);
                    self.geometry(a..b, inputs, &mut g, &mut r0);
                    let out = &mut gout[..(b - a) * GEOMETRY_COLUMNS];
                    bwd.backward_dispatch(avx2, &g, &self.pairs.dest[a..b], grad, out);
                    self.scatter(a, &r0, out, strain, n, &mut acc);
                    a = b;
                }
                acc
            })
            .collect();
        let mut total = vec![zero; width];
        for part in &parts {
            for (t, v) in total.iter_mut().zip(part) {
                *t = *t + *v;
            }
        }
        let strain_grad = total.split_off(3 * n + PARTICLE_COLUMNS * n);
        let particle_grad = total.split_off(3 * n);
        Ok((total, particle_grad, strain_grad))
    }

    /// Adds the geometry gradients `gout` `[p, 10]` of the pairs from `first` on to the
    /// accumulator `acc` (`[N, 3]` positions, `[N, 7]` particles, then `ε`).
    fn scatter<T: Real>(
        &self,
        first: usize,
        r0: &[[T; 3]],
        gout: &[T],
        strain: &[T],
        n: usize,
        acc: &mut [T],
    ) {
        let pairs = &self.pairs;
        let (pos, rest) = acc.split_at_mut(3 * n);
        let (part, eps) = rest.split_at_mut(PARTICLE_COLUMNS * n);
        for (k, (g, r)) in gout.chunks(GEOMETRY_COLUMNS).zip(r0).enumerate() {
            let q = first + k;
            let (i, j) = (pairs.centers[q] as usize, pairs.neighbors[q] as usize);
            for (t, v) in part[PARTICLE_COLUMNS * j..PARTICLE_COLUMNS * (j + 1)]
                .iter_mut()
                .zip(&g[..PARTICLE_COLUMNS])
            {
                *t = *t + *v;
            }
            let gs = [g[7], g[8], g[9]];
            // r' = (I + ε) r: ∂/∂r = (I + ε)ᵀ ∂/∂r', ∂/∂ε_ab = ∂/∂r'_a r_b.
            let gr: [T; 3] = if self.strained {
                for a in 0..3 {
                    for b in 0..3 {
                        eps[3 * a + b] = eps[3 * a + b] + gs[a] * r[b];
                    }
                }
                std::array::from_fn(|b| {
                    gs[b] + (strain[b] * gs[0] + strain[3 + b] * gs[1] + strain[6 + b] * gs[2])
                })
            } else {
                gs
            };
            for d in 0..3 {
                pos[3 * j + d] = pos[3 * j + d] + gr[d];
                pos[3 * i + d] = pos[3 * i + d] - gr[d];
            }
        }
    }
}

fn host<T: candle_core::WithDType>(t: &Tensor) -> candle_core::Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

impl CustomOp3 for FusedFrameDensity {
    fn name(&self) -> &'static str {
        "anisoap-frame-density"
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
        let shape = Shape::from((self.kernel.n_rows, self.kernel.n_cols));
        let storage = match (s1, s2, s3) {
            (CpuStorage::F64(x), CpuStorage::F64(a), CpuStorage::F64(e)) => {
                let (x, a, e) = (
                    contiguous(x, l1, "positions")?,
                    contiguous(a, l2, "orientations")?,
                    contiguous(e, l3, "strain")?,
                );
                self.check(x.len(), a.len(), e.len())?;
                CpuStorage::F64(self.forward((x, &particle_rows(a), e))?)
            }
            (CpuStorage::F32(x), CpuStorage::F32(a), CpuStorage::F32(e)) => {
                let (x, a, e) = (
                    contiguous(x, l1, "positions")?,
                    contiguous(a, l2, "orientations")?,
                    contiguous(e, l3, "strain")?,
                );
                self.check(x.len(), a.len(), e.len())?;
                CpuStorage::F32(self.forward((x, &particle_rows(a), e))?)
            }
            _ => candle_core::bail!("anisoap-frame-density: inputs must all be f64 or all f32"),
        };
        Ok((storage, shape))
    }

    /// Analytic gradients of the three inputs (the strain's only when it is applied). Not
    /// differentiable itself (no second derivatives through the fused path).
    fn bwd(
        &self,
        positions: &Tensor,
        orientations: &Tensor,
        strain: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let n = positions.dim(0)?;
        self.check(
            positions.elem_count(),
            orientations.elem_count(),
            strain.elem_count(),
        )?;
        let device = positions.device();
        macro_rules! run {
            ($t:ty) => {{
                let (x, o, e, g) = (
                    host::<$t>(positions)?,
                    host::<$t>(orientations)?,
                    host::<$t>(strain)?,
                    host::<$t>(grad_res)?,
                );
                let (gx, ga, ge) = self.backward((&x, &particle_rows(&o), &e), &g)?;
                (
                    Tensor::from_vec(gx, (n, 3), device)?,
                    Tensor::from_vec(orientation_grad(&o, &ga), (n, ORIENTATION_COLUMNS), device)?,
                    Tensor::from_vec(ge, (3, 3), device)?,
                )
            }};
        }
        let (gx, ga, ge) = match positions.dtype() {
            DType::F64 => run!(f64),
            DType::F32 => run!(f32),
            other => candle_core::bail!("anisoap-frame-density: dtype {other:?}"),
        };
        Ok((Some(gx), Some(ga), self.strained.then_some(ge)))
    }
}
