//! Reading NumPy `.npy` arrays (little-endian float64, float32 or int64, C order): the
//! original AniSOAP's outputs and our own, for comparisons.

use crate::error::{Error, Result};
use std::path::Path;

/// An array read from `.npy`: its shape and its values as f64, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Shape as stored (a 0-d array has an empty shape).
    pub shape: Vec<usize>,
    /// Values, converted to f64.
    pub data: Vec<f64>,
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        error: std::io::Error::new(std::io::ErrorKind::InvalidData, message.into()),
    }
}

/// Reads a `.npy` file of dtype `<f8`, `<f4` or `<i8` in C order.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_npy(&bytes, path)
}

/// Parses the bytes of a `.npy` file (`path` names it in errors). Every size comes from the
/// header and is checked against the bytes present before use.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad(path, "not an NPY file"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad(path, "truncated NPY header")),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad(path, "bad NPY header"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad(path, "Fortran-ordered arrays are not supported"));
    }
    let (width, kind) = if header.contains("'<f8'") {
        (8, 'f')
    } else if header.contains("'<f4'") {
        (4, 'f')
    } else if header.contains("'<i8'") {
        (8, 'i')
    } else {
        return Err(bad(
            path,
            "only little-endian float64, float32 and int64 are supported",
        ));
    };
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(path, "NPY header has no shape"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad(path, format!("bad shape '{shape_text}'")))?;
    // The shape comes from the file: its product is checked, never allowed to wrap.
    let expected_bytes = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| bad(path, format!("shape {shape:?} is too large")))?;
    let body = &bytes[start + len..];
    if body.len() != expected_bytes {
        return Err(bad(
            path,
            format!(
                "data size ({} bytes) does not match shape {shape:?} ({expected_bytes} bytes)",
                body.len()
            ),
        ));
    }
    let data = body
        .chunks_exact(width)
        .map(|c| match (width, kind) {
            (8, 'f') => f64::from_le_bytes(c.try_into().expect("8 bytes")),
            (8, _) => i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64,
            _ => f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64,
        })
        .collect();
    Ok(NpyArray { shape, data })
}
