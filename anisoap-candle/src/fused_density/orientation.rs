//! Per-particle rows of the fused frame op from orientations, and their backward: quaternion
//! `(w, x, y, z)` (any non-zero length) and semi-axes `(a1, a2, a3)` to the precision row
//! `A = R diag(a⁻²) Rᵀ` (`a00 a01 a02 a11 a12 a22`) and `1/(a1 a2 a3)`, with `R` scipy's
//! matrix of the normalised quaternion (§1.2 of the maths notes) — the host form of
//! [`crate::differentiable::rotation_matrices`] and [`crate::differentiable::precision_rows`],
//! in the same operation order.

use super::{Real, PARTICLE_COLUMNS};

/// Columns of an orientation row: the quaternion `(w, x, y, z)` and the semi-axes.
pub const ORIENTATION_COLUMNS: usize = 7;

/// The unit quaternion, the norm and `R` of one orientation row.
#[inline]
fn rotation<T: Real>(o: &[T]) -> ([T; 4], T, [[T; 3]; 3]) {
    let norm = (o[0] * o[0] + o[1] * o[1] + o[2] * o[2] + o[3] * o[3]).sqrt();
    let (w, x, y, z) = (o[0] / norm, o[1] / norm, o[2] / norm, o[3] / norm);
    let two = T::of(2.0);
    let (ww, xx, yy, zz) = (w * w, x * x, y * y, z * z);
    let r = [
        [
            ((ww + xx) - yy) - zz,
            (x * y - z * w) * two,
            (x * z + y * w) * two,
        ],
        [
            (x * y + z * w) * two,
            ((ww - xx) + yy) - zz,
            (y * z - x * w) * two,
        ],
        [
            (x * z - y * w) * two,
            (y * z + x * w) * two,
            ((ww - xx) - yy) + zz,
        ],
    ];
    ([w, x, y, z], norm, r)
}

/// The six unique entries of `A`, in the order of a precision row.
const PAIRS: [(usize, usize); 6] = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];

/// Particle rows `[N, 7]` from orientation rows `[N, 7]`.
pub fn particle_rows<T: Real>(orientation: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(orientation.len());
    for o in orientation.chunks(ORIENTATION_COLUMNS) {
        let (_, _, r) = rotation(o);
        let a2 = [o[4] * o[4], o[5] * o[5], o[6] * o[6]];
        for (i, j) in PAIRS {
            let term = |k: usize| (r[i][k] * r[j][k]) / a2[k];
            out.push((term(0) + term(1)) + term(2));
        }
        out.push(T::of(1.0) / ((o[4] * o[5]) * o[6]));
    }
    out
}

/// The gradient of the orientation rows `[N, 7]` from that of the particle rows `[N, 7]`
/// (`grad`: precision entries with each off-diagonal pair as one variable, then
/// `1/(a1 a2 a3)`): `∂/∂R = 2 Ḡ R D`, `∂/∂d_k = (Rᵀ Ḡ R)_kk` with `D = diag(d)`, `d = a⁻²`,
/// then through scipy's formula and the normalisation (the quaternion gradient is orthogonal to
/// the quaternion).
pub fn orientation_grad<T: Real>(orientation: &[T], grad: &[T]) -> Vec<T> {
    let (zero, half, two) = (T::of(0.0), T::of(0.5), T::of(2.0));
    let mut out = Vec::with_capacity(orientation.len());
    for (o, g) in orientation
        .chunks(ORIENTATION_COLUMNS)
        .zip(grad.chunks(PARTICLE_COLUMNS))
    {
        let (u, norm, r) = rotation(o);
        let a = [o[4], o[5], o[6]];
        let d = [
            T::of(1.0) / (a[0] * a[0]),
            T::of(1.0) / (a[1] * a[1]),
            T::of(1.0) / (a[2] * a[2]),
        ];
        // Ḡ: symmetric, dL = tr(Ḡ dA).
        let gb = [
            [g[0], half * g[1], half * g[2]],
            [half * g[1], g[3], half * g[4]],
            [half * g[2], half * g[4], g[5]],
        ];
        let mut gbr = [[zero; 3]; 3]; // Ḡ R
        for i in 0..3 {
            for k in 0..3 {
                gbr[i][k] = gb[i][0] * r[0][k] + gb[i][1] * r[1][k] + gb[i][2] * r[2][k];
            }
        }
        let g_r: [[T; 3]; 3] =
            std::array::from_fn(|i| std::array::from_fn(|k| two * gbr[i][k] * d[k]));
        let g_d: [T; 3] = std::array::from_fn(|k| {
            r[0][k] * gbr[0][k] + r[1][k] * gbr[1][k] + r[2][k] * gbr[2][k]
        });
        let (w, x, y, z) = (u[0], u[1], u[2], u[3]);
        // ∂R/∂(w, x, y, z), each over 2.
        let dr = [
            [[w, zero - z, y], [z, w, zero - x], [zero - y, x, w]],
            [[x, y, z], [y, zero - x, zero - w], [z, w, zero - x]],
            [[zero - y, x, w], [x, y, z], [zero - w, z, zero - y]],
            [[zero - z, zero - w, x], [w, zero - z, y], [x, y, z]],
        ];
        let g_u: [T; 4] = std::array::from_fn(|c| {
            let mut s = zero;
            for i in 0..3 {
                for k in 0..3 {
                    s = s + g_r[i][k] * dr[c][i][k];
                }
            }
            two * s
        });
        let dot = g_u[0] * u[0] + g_u[1] * u[1] + g_u[2] * u[2] + g_u[3] * u[3];
        for c in 0..4 {
            out.push((g_u[c] - u[c] * dot) / norm);
        }
        let inv_prod = T::of(1.0) / ((a[0] * a[1]) * a[2]);
        for k in 0..3 {
            // d_k = a_k⁻², ∂d_k/∂a_k = −2 d_k / a_k; ∂(1/(a1a2a3))/∂a_k = −inv_prod / a_k.
            let g_a = zero - (two * g_d[k] * d[k] + g[6] * inv_prod) / a[k];
            out.push(g_a);
        }
    }
    out
}
