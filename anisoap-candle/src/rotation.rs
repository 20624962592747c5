//! Orientation handling: quaternions and rotation matrices to body → lab matrices.

/// A 3×3 matrix, row-major.
pub type Mat3 = [[f64; 3]; 3];

/// Rotation matrix of a quaternion `(w, x, y, z)` (scalar first), normalised first exactly as
/// scipy does; `None` for a zero or non-finite quaternion.
pub fn quaternion_to_matrix(q: [f64; 4]) -> Option<Mat3> {
    let norm = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    if !(norm.is_finite() && norm > 0.0) {
        return None;
    }
    let (w, x, y, z) = (q[0] / norm, q[1] / norm, q[2] / norm, q[3] / norm);
    Some([
        [
            w * w + x * x - y * y - z * z,
            2.0 * (x * y - z * w),
            2.0 * (x * z + y * w),
        ],
        [
            2.0 * (x * y + z * w),
            w * w - x * x + y * y - z * z,
            2.0 * (y * z - x * w),
        ],
        [
            2.0 * (x * z - y * w),
            2.0 * (y * z + x * w),
            w * w - x * x - y * y + z * z,
        ],
    ])
}

/// Determinant of a 3×3 matrix (expanded along the first row).
pub fn det3(m: &Mat3) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// Checks that `m` is a proper rotation (orthogonal to `tol`, determinant +1). Returns a
/// description of the problem otherwise.
pub fn check_rotation_matrix(m: &Mat3, tol: f64) -> Result<(), String> {
    if m.iter().flatten().any(|v| !v.is_finite()) {
        return Err("rotation matrix has non-finite entries".into());
    }
    let det = det3(m);
    if det <= 0.0 {
        return Err(format!(
            "rotation matrix has non-positive determinant {det}"
        ));
    }
    for i in 0..3 {
        for j in 0..3 {
            let dot: f64 = (0..3).map(|k| m[k][i] * m[k][j]).sum();
            let expected = if i == j { 1.0 } else { 0.0 };
            if (dot - expected).abs() > tol {
                return Err(format!(
                    "rotation matrix is not orthogonal (column {i}·column {j} = {dot})"
                ));
            }
        }
    }
    Ok(())
}

/// Precision matrix `A = R diag(a⁻²) Rᵀ` of an ellipsoid with semi-axes `a` and orientation `R`.
pub fn precision_matrix(r: &Mat3, semi_axes: [f64; 3]) -> Mat3 {
    let mut a = [[0.0; 3]; 3];
    for (i, row) in a.iter_mut().enumerate() {
        for (j, value) in row.iter_mut().enumerate() {
            *value = (0..3)
                .map(|k| r[i][k] * r[j][k] / (semi_axes[k] * semi_axes[k]))
                .sum();
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quaternion_about_z_rotates_x_to_angle() {
        let theta: f64 = 0.7;
        let r = quaternion_to_matrix([(theta / 2.0).cos(), 0.0, 0.0, (theta / 2.0).sin()]).unwrap();
        // Column 0 is the lab direction of body x.
        assert!((r[0][0] - theta.cos()).abs() < 1e-15);
        assert!((r[1][0] - theta.sin()).abs() < 1e-15);
        assert!(r[2][0].abs() < 1e-15);
    }

    #[test]
    fn non_unit_and_negated_quaternions_agree() {
        let q = [0.3, -0.4, 0.5, 0.1];
        let a = quaternion_to_matrix(q).unwrap();
        let b = quaternion_to_matrix([-3.0 * q[0], -3.0 * q[1], -3.0 * q[2], -3.0 * q[3]]).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                assert!((a[i][j] - b[i][j]).abs() < 1e-15);
            }
        }
        assert!(check_rotation_matrix(&a, 1e-12).is_ok());
        assert!((det3(&a) - 1.0).abs() < 1e-14);
        assert!(quaternion_to_matrix([0.0; 4]).is_none());
    }

    #[test]
    fn precision_matrix_of_aligned_ellipsoid_is_diagonal() {
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let a = precision_matrix(&id, [1.0, 2.0, 4.0]);
        assert_eq!(a[0][0], 1.0);
        assert_eq!(a[1][1], 0.25);
        assert_eq!(a[2][2], 1.0 / 16.0);
        assert_eq!(a[0][1], 0.0);
        let bad = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]];
        assert!(check_rotation_matrix(&bad, 1e-8)
            .unwrap_err()
            .contains("determinant"));
    }
}
