//! The inputs of the differentiable descriptor as tensors: a frame's positions, quaternions and
//! semi-axes ([`FrameTensors`]), and the differentiable orientation chain (quaternions →
//! rotation matrices → precision rows).

use crate::error::{Error, Result};
use crate::frame::Frame;
use candle_core::{DType, Device, Tensor};

/// The inputs of one frame as tensors (positions, quaternions, semi-axes) plus the host data
/// (types, cell, pbc), read from a [`Frame`].
#[derive(Debug, Clone)]
pub struct FrameTensors {
    /// `[N, 3]` positions.
    pub positions: Tensor,
    /// `[N, 4]` orientation quaternions `(w, x, y, z)`, as stored (not normalised).
    pub quaternions: Tensor,
    /// `[N, 3]` semi-axes `c_diameter[k] / 2`.
    pub semi_axes: Tensor,
    /// Type of each particle.
    pub types: Vec<i32>,
    /// Cell vectors as rows.
    pub cell: [[f64; 3]; 3],
    /// Periodicity along a, b, c.
    pub pbc: [bool; 3],
}

impl FrameTensors {
    /// Reads positions, the quaternion column `rotation_key` and `c_diameter[1..3]` of `frame`
    /// into tensors of `dtype` on `device`.
    pub fn from_frame(
        frame: &Frame,
        rotation_key: &str,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let n = frame.len();
        let err = |message: String| Error::Frame { frame: 0, message };
        let q = frame
            .arrays
            .get(rotation_key)
            .filter(|a| a.ncols == 4)
            .ok_or_else(|| {
                err(format!(
                    "missing quaternion column '{rotation_key}' (4 reals)"
                ))
            })?;
        let mut axes = Vec::with_capacity(3 * n);
        let columns = (1..=3)
            .map(|k| {
                let name = format!("c_diameter[{k}]");
                frame
                    .arrays
                    .get(&name)
                    .filter(|a| a.ncols == 1)
                    .ok_or_else(|| err(format!("missing column '{name}'")))
            })
            .collect::<Result<Vec<_>>>()?;
        for i in 0..n {
            for column in &columns {
                axes.push(column.values[i] / 2.0);
            }
        }
        let upload = |v: Vec<f64>, cols: usize| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, (n, cols), device)?.to_dtype(dtype)?)
        };
        Ok(FrameTensors {
            positions: upload(frame.positions.iter().flatten().copied().collect(), 3)?,
            quaternions: upload(q.values.clone(), 4)?,
            semi_axes: upload(axes, 3)?,
            types: frame.numbers.clone(),
            cell: frame.cell,
            pbc: frame.pbc,
        })
    }
}

/// Column `k` of a 2-D tensor as `[N, 1]`.
fn col(t: &Tensor, k: usize) -> Result<Tensor> {
    Ok(t.narrow(1, k, 1)?)
}

/// Row-major rotation matrices `[N, 9]` of quaternions `[N, 4]` `(w, x, y, z)`: normalised,
/// then scipy's formula (§1.2), as differentiable tensor ops. A zero quaternion gives NaN.
pub fn rotation_matrices(quaternions: &Tensor) -> Result<Tensor> {
    let norm = quaternions.sqr()?.sum_keepdim(1)?.sqrt()?;
    let q = quaternions.broadcast_div(&norm)?;
    let (w, x, y, z) = (col(&q, 0)?, col(&q, 1)?, col(&q, 2)?, col(&q, 3)?);
    let (ww, xx, yy, zz) = (w.sqr()?, x.sqr()?, y.sqr()?, z.sqr()?);
    let twice = |a: &Tensor, b: &Tensor, c: &Tensor, d: &Tensor, plus: bool| -> Result<Tensor> {
        let (ab, cd) = ((a * b)?, (c * d)?);
        let s = if plus { (ab + cd)? } else { (ab - cd)? };
        Ok(s.affine(2.0, 0.0)?)
    };
    let r00 = (((&ww + &xx)? - &yy)? - &zz)?;
    let r01 = twice(&x, &y, &z, &w, false)?;
    let r02 = twice(&x, &z, &y, &w, true)?;
    let r10 = twice(&x, &y, &z, &w, true)?;
    let r11 = (((&ww - &xx)? + &yy)? - &zz)?;
    let r12 = twice(&y, &z, &x, &w, false)?;
    let r20 = twice(&x, &z, &y, &w, false)?;
    let r21 = twice(&y, &z, &x, &w, true)?;
    let r22 = (((&ww - &xx)? - &yy)? + &zz)?;
    Ok(Tensor::cat(
        &[&r00, &r01, &r02, &r10, &r11, &r12, &r20, &r21, &r22],
        1,
    )?)
}

/// Precision rows `[N, 6]` `(a00, a01, a02, a11, a12, a22)` of `A = R diag(a⁻²) Rᵀ` and
/// `1/(a1 a2 a3)` `[N]`, from row-major rotations `[N, 9]` and semi-axes `[N, 3]`, as
/// differentiable tensor ops (the layout [`BatchedBasis::pair_coefficients`](crate::batched::BatchedBasis::pair_coefficients) takes).
pub fn precision_rows(rotations: &Tensor, semi_axes: &Tensor) -> Result<(Tensor, Tensor)> {
    let a2 = semi_axes.sqr()?;
    let r = |i: usize, k: usize| col(rotations, 3 * i + k);
    let entry = |i: usize, j: usize| -> Result<Tensor> {
        let mut sum: Option<Tensor> = None;
        for k in 0..3 {
            let term = (r(i, k)? * r(j, k)?)?.div(&col(&a2, k)?)?;
            sum = Some(match sum {
                None => term,
                Some(s) => (s + term)?,
            });
        }
        Ok(sum.expect("three terms"))
    };
    let precision = Tensor::cat(
        &[
            &entry(0, 0)?,
            &entry(0, 1)?,
            &entry(0, 2)?,
            &entry(1, 1)?,
            &entry(1, 2)?,
            &entry(2, 2)?,
        ],
        1,
    )?;
    let product = ((col(semi_axes, 0)? * col(semi_axes, 1)?)? * col(semi_axes, 2)?)?;
    let inv_product = product.recip()?.squeeze(1)?;
    Ok((precision, inv_product))
}
