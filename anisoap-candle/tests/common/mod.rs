//! Helpers shared by the integration tests: a minimal NPY reader and comparison.

#![allow(dead_code)]

use std::path::Path;

/// A float64 array read from an NPY file: shape and row-major values.
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Reads a little-endian `<f8` or `<i8` NPY file (C order), converting to f64.
pub fn read_npy(path: &Path) -> NpyArray {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{}: not an NPY file",
        path.display()
    );
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let is_int = header.contains("'<i8'");
    assert!(is_int || header.contains("'<f8'"), "{header}");
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = bytes[start + header_len..]
        .chunks_exact(8)
        .map(|c| {
            let raw: [u8; 8] = c.try_into().unwrap();
            if is_int {
                i64::from_le_bytes(raw) as f64
            } else {
                f64::from_le_bytes(raw)
            }
        })
        .collect::<Vec<_>>();
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "{}",
        path.display()
    );
    NpyArray { shape, data }
}

/// Largest |got - expected| / (atol + rtol |expected|) over all entries; ≤ 1 means they match.
pub fn worst_ratio(got: &[f64], expected: &[f64], rtol: f64, atol: f64) -> f64 {
    assert_eq!(got.len(), expected.len(), "length mismatch");
    got.iter()
        .zip(expected)
        .map(|(g, e)| (g - e).abs() / (atol + rtol * e.abs()))
        .fold(0.0, f64::max)
}

/// Asserts element-wise closeness with a message naming the worst entry.
pub fn assert_close(label: &str, got: &[f64], expected: &[f64], rtol: f64, atol: f64) {
    assert_eq!(
        got.len(),
        expected.len(),
        "{label}: length {} vs {}",
        got.len(),
        expected.len()
    );
    let mut worst = (0.0, 0usize);
    for (k, (g, e)) in got.iter().zip(expected).enumerate() {
        let ratio = (g - e).abs() / (atol + rtol * e.abs());
        if ratio.is_nan() || ratio > worst.0 {
            worst = (ratio, k);
        }
    }
    assert!(
        worst.0 <= 1.0,
        "{label}: entry {} differs: got {} expected {} (|Δ|/(atol+rtol|e|) = {:.3})",
        worst.1,
        got[worst.1],
        expected[worst.1],
        worst.0
    );
}
