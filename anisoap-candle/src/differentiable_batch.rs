//! Batches of frames through the differentiable descriptor, and feature Jacobians for training
//! on forces.
//!
//! [`DifferentiableDescriptor::power_spectrum`] takes one frame. Training a potential needs
//! many structures per call; this module adds:
//!
//! * [`DifferentiableDescriptor::power_spectrum_batch`]: the per-centre power spectra of
//!   several frames in **one** graph, `[Σ_k N_k, F]`, rows frame after frame, so one
//!   `backward()` of a loss over all frames reaches every frame's positions, quaternions and
//!   semi-axes. Open frames (no periodic direction) are placed side by side, far enough apart
//!   that no pair joins two frames (a gap wider than the cutoff), on a 3-D grid centred on the
//!   origin, and go through one neighbour search and one descriptor evaluation; periodic frames
//!   are evaluated one by one and joined with `cat` (still one graph). The offsets are
//!   constants, so gradients flow to each frame's own tensors unchanged; they cost
//!   `|offset| · ε` in the pair vectors (f64: ~1e-14 relative at the sizes used here).
//! * [`DifferentiableDescriptor::power_spectrum_groups`]: the same over a long list of frames
//!   in groups of at most `group_particles` particles (a group always holds at least one
//!   frame), handing each group's batch to a callback, so memory stays bounded however many
//!   frames there are (a training loop can run `backward()` per group and accumulate).
//! * [`DifferentiableDescriptor::feature_jacobians`]: `∂X_i/∂(x_j, θ_j)` of every per-centre
//!   feature with respect to every particle's position and lab-frame rotation angle, by
//!   central differences of the forward with the pair list held fixed (so it is the
//!   derivative of the same smooth piece autograd differentiates; `tests/differentiable_batch.rs`
//!   checks it against autograd). All frames of a group are perturbed at once (particle `j` of
//!   every frame moves together; frames do not interact), so a group costs `12 · max N_k`
//!   forwards. A model `E = Σ_i ε(X_i)` then has forces and torques
//!   `−Σ_i J_iᵀ ∇ε(X_i)`, an ordinary first-order graph in the model's parameters: what
//!   training on forces needs without a double backward, which candle does not have.
//!
//! A batch needs one column layout for all frames, so it takes [`SpeciesLayout::Fixed`] only.

use crate::differentiable::{DifferentiableDescriptor, FrameTensors, SpeciesLayout};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use std::ops::Range;

/// The per-centre features of several frames in one graph.
#[derive(Debug, Clone)]
pub struct FrameBatch {
    /// `[Σ_k N_k, F]` per-centre power spectra, the rows of frame `k` in `rows[k]`.
    pub features: Tensor,
    /// Rows of each frame in `features`.
    pub rows: Vec<Range<usize>>,
    /// `u32 [Σ_k N_k]` frame (index within the batch) of each row, for `index_add` sums.
    pub frame_of_row: Tensor,
}

impl FrameBatch {
    /// Per-frame sums `[K, C]` of per-centre values `[Σ_k N_k, C]` (differentiable).
    pub fn frame_sums(&self, per_center: &Tensor) -> Result<Tensor> {
        let c = per_center.dim(1)?;
        let zeros = Tensor::zeros(
            (self.rows.len(), c),
            per_center.dtype(),
            per_center.device(),
        )?;
        Ok(zeros.index_add(&self.frame_of_row, per_center, 0)?)
    }
}

/// Host copies of a frame's inputs, for stacking and perturbing.
struct HostFrame {
    positions: Vec<[f64; 3]>,
    quaternions: Vec<[f64; 4]>,
    semi_axes: Vec<[f64; 3]>,
}

fn rows<const C: usize>(t: &Tensor, name: &str, frame: usize) -> Result<Vec<[f64; C]>> {
    let v = t.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
    v.into_iter()
        .map(|r| {
            <[f64; C]>::try_from(r.as_slice()).map_err(|_| Error::Frame {
                frame,
                message: format!("{name} must have {C} columns"),
            })
        })
        .collect()
}

impl HostFrame {
    fn of(frame: &FrameTensors, k: usize) -> Result<Self> {
        Ok(HostFrame {
            positions: rows::<3>(&frame.positions, "positions", k)?,
            quaternions: rows::<4>(&frame.quaternions, "quaternions", k)?,
            semi_axes: rows::<3>(&frame.semi_axes, "semi_axes", k)?,
        })
    }
}

/// Hamilton product `a ⊗ b` of `(w, x, y, z)` quaternions.
fn hamilton(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    ]
}

/// `q` rotated by the angle `angle` about the lab axis `axis` (0, 1, 2): `exp(angle/2 e) ⊗ q`.
pub fn rotate_lab(q: [f64; 4], axis: usize, angle: f64) -> [f64; 4] {
    let mut r = [(0.5 * angle).cos(), 0.0, 0.0, 0.0];
    r[1 + axis] = (0.5 * angle).sin();
    hamilton(r, q)
}

/// Where each open frame of a group goes: constant offsets on a grid centred on the origin.
fn grid_offsets(frames: &[HostFrame], cutoff: f64) -> Result<Vec<[f64; 3]>> {
    let mut spacing: f64 = 0.0;
    let mut centers = Vec::with_capacity(frames.len());
    for (k, f) in frames.iter().enumerate() {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for p in &f.positions {
            for d in 0..3 {
                if !p[d].is_finite() {
                    return Err(Error::Frame {
                        frame: k,
                        message: format!("non-finite position {p:?}"),
                    });
                }
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        if f.positions.is_empty() {
            lo = [0.0; 3];
            hi = [0.0; 3];
        }
        for d in 0..3 {
            spacing = spacing.max(hi[d] - lo[d]);
        }
        centers.push([0, 1, 2].map(|d| 0.5 * (lo[d] + hi[d])));
    }
    // Boxes of side `spacing` separated by gaps of 2 r_c: no pair joins two frames.
    let spacing = spacing + 2.0 * cutoff;
    let side = (frames.len() as f64).cbrt().ceil().max(1.0) as usize;
    let half = 0.5 * (side as f64 - 1.0);
    Ok(centers
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let cell = [k % side, (k / side) % side, k / (side * side)];
            [0, 1, 2].map(|d| (cell[d] as f64 - half) * spacing - c[d])
        })
        .collect())
}

fn fixed_types(species: &SpeciesLayout) -> Result<()> {
    match species {
        SpeciesLayout::Fixed(_) => Ok(()),
        SpeciesLayout::FromPairs => Err(Error::Frame {
            frame: 0,
            message: "a batch of frames needs one column layout: use SpeciesLayout::Fixed".into(),
        }),
    }
}

impl DifferentiableDescriptor {
    /// Per-centre power spectra of `frames` in one graph (see the module documentation).
    /// The tensors of each frame may be (or derive from) `Var`s; gradients reach them.
    pub fn power_spectrum_batch(
        &self,
        frames: &[FrameTensors],
        species: &SpeciesLayout,
    ) -> Result<FrameBatch> {
        fixed_types(species)?;
        let device = self.device().clone();
        let dtype = self.dtype();
        let mut row_ranges = Vec::with_capacity(frames.len());
        let mut start = 0usize;
        for f in frames {
            let n = f.types.len();
            let end = start.checked_add(n).ok_or_else(|| {
                Error::TooLarge("particle count of the batch overflows usize".into())
            })?;
            row_ranges.push(start..end);
            start = end;
        }
        let open: Vec<usize> = (0..frames.len())
            .filter(|&k| !frames[k].pbc.iter().any(|&p| p))
            .collect();
        // Features per frame index; open frames are filled from one stacked evaluation.
        let mut per_frame: Vec<Option<Tensor>> = vec![None; frames.len()];
        if !open.is_empty() {
            let host = open
                .iter()
                .map(|&k| HostFrame::of(&frames[k], k))
                .collect::<Result<Vec<_>>>()?;
            let offsets = grid_offsets(&host, self.basis().hypers.cutoff_radius)?;
            let mut positions = Vec::with_capacity(open.len());
            let mut quaternions = Vec::with_capacity(open.len());
            let mut semi_axes = Vec::with_capacity(open.len());
            let mut types = Vec::new();
            for (slot, &k) in open.iter().enumerate() {
                let f = &frames[k];
                let offset = Tensor::new(&[offsets[slot]], &device)?.to_dtype(dtype)?;
                positions.push(f.positions.broadcast_add(&offset)?);
                quaternions.push(f.quaternions.clone());
                semi_axes.push(f.semi_axes.clone());
                types.extend_from_slice(&f.types);
            }
            let positions = Tensor::cat(&positions, 0)?;
            let quaternions = Tensor::cat(&quaternions, 0)?;
            let semi_axes = Tensor::cat(&semi_axes, 0)?;
            let neighbors =
                self.neighbors(&positions, &types, &[[0.0; 3]; 3], [false; 3], species)?;
            let features = self
                .power_spectrum(&positions, &quaternions, &semi_axes, &neighbors)
                .map_err(|e| locate(e, &open))?;
            let mut row = 0;
            for &k in &open {
                let n = frames[k].types.len();
                per_frame[k] = Some(features.narrow(0, row, n)?);
                row += n;
            }
        }
        for (k, f) in frames.iter().enumerate() {
            if per_frame[k].is_none() {
                let neighbors = self.neighbors(&f.positions, &f.types, &f.cell, f.pbc, species)?;
                per_frame[k] = Some(
                    self.power_spectrum(&f.positions, &f.quaternions, &f.semi_axes, &neighbors)
                        .map_err(|e| locate(e, &[k]))?,
                );
            }
        }
        let parts: Vec<Tensor> = per_frame.into_iter().flatten().collect();
        let features = Tensor::cat(&parts, 0)?;
        let owner: Vec<u32> = row_ranges
            .iter()
            .enumerate()
            .flat_map(|(k, r)| std::iter::repeat_n(k as u32, r.len()))
            .collect();
        let len = owner.len();
        Ok(FrameBatch {
            features,
            rows: row_ranges,
            frame_of_row: Tensor::from_vec(owner, len, &device)?,
        })
    }

    /// [`power_spectrum_batch`](Self::power_spectrum_batch) over `frames` in consecutive groups
    /// of at most `group_particles` particles (at least one frame each): `f(range, batch)` gets
    /// the frame indices of the group and its batch. Memory is that of one group.
    pub fn power_spectrum_groups(
        &self,
        frames: &[FrameTensors],
        species: &SpeciesLayout,
        group_particles: usize,
        mut f: impl FnMut(Range<usize>, FrameBatch) -> Result<()>,
    ) -> Result<()> {
        for range in groups(frames, group_particles) {
            let batch = self.power_spectrum_batch(&frames[range.clone()], species)?;
            f(range, batch)?;
        }
        Ok(())
    }

    /// Feature Jacobians of open frames by central differences with fixed pair lists (see the
    /// module documentation): for frame `k` with `N` particles and `F` features, a host
    /// vector of `N · F · N · 6` values, index `((i · F + f) · N + j) · 6 + c`, the derivative
    /// of feature `f` of centre `i` with respect to particle `j`'s position component `c`
    /// (`c < 3`) or its lab-frame rotation angle about axis `c − 3` (`q → exp(θ/2 e) ⊗ q`).
    /// `step` is the finite-difference step (length and radian); frames are processed in
    /// groups of at most `group_particles` particles.
    pub fn feature_jacobians(
        &self,
        frames: &[FrameTensors],
        species: &SpeciesLayout,
        step: f64,
        group_particles: usize,
    ) -> Result<Vec<Vec<f64>>> {
        fixed_types(species)?;
        if !(step.is_finite() && step > 0.0) {
            return Err(Error::Hypers(format!(
                "finite-difference step must be positive, got {step}"
            )));
        }
        if let Some(k) = frames.iter().position(|f| f.pbc.iter().any(|&p| p)) {
            return Err(Error::Frame {
                frame: k,
                message: "feature_jacobians takes open frames (no periodic direction)".into(),
            });
        }
        let device = self.device().clone();
        let dtype = self.dtype();
        let mut out = Vec::with_capacity(frames.len());
        for range in groups(frames, group_particles) {
            let group: Vec<usize> = range.clone().collect();
            let host = group
                .iter()
                .map(|&k| HostFrame::of(&frames[k], k))
                .collect::<Result<Vec<_>>>()?;
            let offsets = grid_offsets(&host, self.basis().hypers.cutoff_radius)?;
            let sizes: Vec<usize> = host.iter().map(|h| h.positions.len()).collect();
            let total: usize = sizes.iter().sum();
            let mut types = Vec::with_capacity(total);
            for &k in &group {
                types.extend_from_slice(&frames[k].types);
            }
            let stack = |host: &[HostFrame]| -> Result<(Tensor, Tensor, Tensor)> {
                let mut p = Vec::with_capacity(3 * total);
                let mut q = Vec::with_capacity(4 * total);
                let mut a = Vec::with_capacity(3 * total);
                for (h, o) in host.iter().zip(&offsets) {
                    for x in &h.positions {
                        p.extend((0..3).map(|d| x[d] + o[d]));
                    }
                    h.quaternions.iter().for_each(|v| q.extend_from_slice(v));
                    h.semi_axes.iter().for_each(|v| a.extend_from_slice(v));
                }
                let up = |v: Vec<f64>, c: usize| -> Result<Tensor> {
                    Ok(Tensor::from_vec(v, (total, c), &device)?.to_dtype(dtype)?)
                };
                Ok((up(p, 3)?, up(q, 4)?, up(a, 3)?))
            };
            let p0 = stack(&host)?.0;
            let neighbors = self.neighbors(&p0, &types, &[[0.0; 3]; 3], [false; 3], species)?;
            let n_features = neighbors.power_spectrum_offsets().1;
            let mut jac: Vec<Vec<f64>> = sizes
                .iter()
                .map(|&n| {
                    n.checked_mul(n_features)
                        .and_then(|v| v.checked_mul(n))
                        .and_then(|v| v.checked_mul(6))
                        .map(|len| vec![0.0; len])
                        .ok_or_else(|| Error::TooLarge("Jacobian size overflows usize".into()))
                })
                .collect::<Result<_>>()?;
            let max_n = sizes.iter().copied().max().unwrap_or(0);
            let mut perturbed: Vec<HostFrame> = host
                .iter()
                .map(|h| HostFrame {
                    positions: h.positions.clone(),
                    quaternions: h.quaternions.clone(),
                    semi_axes: h.semi_axes.clone(),
                })
                .collect();
            for j in 0..max_n {
                for c in 0..6 {
                    let mut sides = Vec::with_capacity(2);
                    for sign in [1.0, -1.0] {
                        for (h, orig) in perturbed.iter_mut().zip(&host) {
                            if j >= h.positions.len() {
                                continue;
                            }
                            if c < 3 {
                                h.positions[j][c] = orig.positions[j][c] + sign * step;
                            } else {
                                h.quaternions[j] =
                                    rotate_lab(orig.quaternions[j], c - 3, sign * step);
                            }
                        }
                        let (p, q, a) = stack(&perturbed)?;
                        let x = self
                            .power_spectrum(&p, &q, &a, &neighbors)
                            .map_err(|e| locate(e, &group))?;
                        sides.push(x.to_dtype(DType::F64)?.to_vec2::<f64>()?);
                        for (h, orig) in perturbed.iter_mut().zip(&host) {
                            if j < h.positions.len() {
                                h.positions[j] = orig.positions[j];
                                h.quaternions[j] = orig.quaternions[j];
                            }
                        }
                    }
                    let mut row0 = 0;
                    for (slot, &n) in sizes.iter().enumerate() {
                        if j < n {
                            for i in 0..n {
                                let (plus, minus) = (&sides[0][row0 + i], &sides[1][row0 + i]);
                                for f in 0..n_features {
                                    jac[slot][((i * n_features + f) * n + j) * 6 + c] =
                                        (plus[f] - minus[f]) / (2.0 * step);
                                }
                            }
                        }
                        row0 += n;
                    }
                }
            }
            out.extend(jac);
        }
        Ok(out)
    }
}

/// Consecutive ranges of frames holding at most `limit` particles (at least one frame each).
fn groups(frames: &[FrameTensors], limit: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0usize;
    for (k, f) in frames.iter().enumerate() {
        let n = f.types.len();
        if k > start && count.saturating_add(n) > limit {
            out.push(start..k);
            start = k;
            count = 0;
        }
        count = count.saturating_add(n);
    }
    if start < frames.len() {
        out.push(start..frames.len());
    }
    out
}

/// Names the frames of a stacked evaluation in a frame error (the stack is "frame 0").
fn locate(error: Error, frames: &[usize]) -> Error {
    match error {
        Error::Frame { message, .. } if frames.len() == 1 => Error::Frame {
            frame: frames[0],
            message,
        },
        Error::Frame { message, .. } => Error::Frame {
            frame: frames[0],
            message: format!(
                "in the batch of frames {}..={} (particle indices count from the first): \
                 {message}",
                frames[0],
                frames[frames.len() - 1]
            ),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_lab_turns_the_body_axis() {
        // A quarter turn about lab z takes the identity's body x axis to lab y.
        let q = rotate_lab([1.0, 0.0, 0.0, 0.0], 2, std::f64::consts::FRAC_PI_2);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        for (a, b) in q.iter().zip([h, 0.0, 0.0, h]) {
            assert!((a - b).abs() < 1e-15, "{q:?}");
        }
    }

    #[test]
    fn groups_bound_the_particles_and_keep_every_frame() {
        let frame = |n: usize| FrameTensors {
            positions: Tensor::zeros((n, 3), DType::F64, &candle_core::Device::Cpu).unwrap(),
            quaternions: Tensor::zeros((n, 4), DType::F64, &candle_core::Device::Cpu).unwrap(),
            semi_axes: Tensor::zeros((n, 3), DType::F64, &candle_core::Device::Cpu).unwrap(),
            types: vec![0; n],
            cell: [[0.0; 3]; 3],
            pbc: [false; 3],
        };
        let frames: Vec<_> = [3, 4, 5, 20, 1].into_iter().map(frame).collect();
        assert_eq!(groups(&frames, 8), vec![0..2, 2..3, 3..4, 4..5]);
        assert_eq!(groups(&frames, 100), vec![0..5]);
    }
}
