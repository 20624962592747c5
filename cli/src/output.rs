//! Output formats and their encodings, shared by the streaming writer ([`crate::sink`]):
//! the format chosen by extension, the NPY header, and the shortest round-trip text of a
//! float for CSV.

use std::path::Path;

use anyhow::{bail, Result};

/// File extensions accepted by [`OutputFormat::from_path`], for messages.
pub const ACCEPTED_EXTENSIONS: &str = ".npy, .npz, .safetensors, .csv";

/// Storage format of an output file, chosen from the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// NumPy `.npy`: the values matrix only (index columns are not stored).
    Npy,
    /// NumPy `.npz`: a zip archive of `.npy` members (values and index columns).
    Npz,
    /// Hugging Face `.safetensors`: values and index columns as named tensors.
    Safetensors,
    /// Comma-separated text with a header row (index columns first).
    Csv,
}

impl OutputFormat {
    /// Determines the format from `path`'s extension (case-insensitive:
    /// `.npy`, `.npz`, `.safetensors`, `.csv`).
    ///
    /// # Errors
    /// If the path has no extension or an unknown one; the message names the
    /// path and lists the accepted extensions.
    pub fn from_path(path: &Path) -> Result<OutputFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("npy") => Ok(OutputFormat::Npy),
            Some("npz") => Ok(OutputFormat::Npz),
            Some("safetensors") => Ok(OutputFormat::Safetensors),
            Some("csv") => Ok(OutputFormat::Csv),
            Some(other) => bail!(
                "cannot determine output format of {}: unknown extension '.{}' (accepted: {})",
                path.display(),
                other,
                ACCEPTED_EXTENSIONS
            ),
            None => bail!(
                "cannot determine output format of {}: no file extension (accepted: {})",
                path.display(),
                ACCEPTED_EXTENSIONS
            ),
        }
    }
}

/// Builds an NPY header (magic, version, length, dict, padding, `\n`) such
/// that the data starts at a multiple of 64 bytes. Uses v1.0 unless the header
/// does not fit a 16-bit length, then v2.0.
pub(crate) fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_str = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_str}, }}");
    let build = |prefix_len: usize| {
        // prefix + dict + padding + '\n' must be a multiple of 64.
        let unpadded = prefix_len + dict.len() + 1;
        let total = unpadded.div_ceil(64) * 64;
        let mut h = dict.clone().into_bytes();
        h.resize(total - prefix_len - 1, b' ');
        h.push(b'\n');
        h
    };
    let v1 = build(10);
    let mut out = Vec::with_capacity(v1.len() + 12);
    out.extend_from_slice(b"\x93NUMPY");
    if let Ok(len) = u16::try_from(v1.len()) {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&v1);
    } else {
        let v2 = build(12);
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(v2.len() as u32).to_le_bytes());
        out.extend_from_slice(&v2);
    }
    out
}

/// Shortest text that parses back to exactly `v`: Rust's `{}` for moderate
/// magnitudes, `{:e}` (e.g. `1e-300`) for very small or very large ones, whose
/// `{}` form would spell out hundreds of digits. Non-finite values are
/// written as `NaN`, `inf` and `-inf`.
pub(crate) fn format_f64(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-5..1e16).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// As [`format_f64`], for float32 values (shortest `f32` round-trip text).
pub(crate) fn format_f32(v: f32) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() || (1e-5..1e16).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A parsed NPY array: header dict text, descr, shape and raw data bytes.
    pub(crate) struct Npy {
        pub version: (u8, u8),
        pub dict: String,
        pub descr: String,
        pub shape: Vec<usize>,
        pub data: Vec<u8>,
    }

    /// Minimal NPY parser for the files written above.
    pub(crate) fn parse_npy(bytes: &[u8]) -> Npy {
        assert_eq!(&bytes[..6], b"\x93NUMPY", "bad magic");
        let version = (bytes[6], bytes[7]);
        let (hlen, start) = match version.0 {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            v => panic!("unsupported version {v}"),
        };
        let data_start = start + hlen;
        assert_eq!(data_start % 64, 0, "data not 64-byte aligned");
        let header = std::str::from_utf8(&bytes[start..data_start]).unwrap();
        assert!(header.ends_with('\n'));
        let dict = header.trim_end().to_string();
        assert!(dict.starts_with('{') && dict.ends_with('}'));
        let descr = dict
            .split("'descr': '")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap()
            .to_string();
        assert!(dict.contains("'fortran_order': False"));
        let shape_txt = dict
            .split("'shape': (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        let shape = shape_txt
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        Npy {
            version,
            dict,
            descr,
            shape,
            data: bytes[data_start..].to_vec(),
        }
    }

    pub(crate) fn f64s(data: &[u8]) -> Vec<f64> {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    pub(crate) fn f32s(data: &[u8]) -> Vec<f32> {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    pub(crate) fn i64s(data: &[u8]) -> Vec<i64> {
        data.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// Lists the directory's entries (to check no temp file was left).
    pub(crate) fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn format_from_path() {
        let cases = [
            ("a.npy", OutputFormat::Npy),
            ("dir/a.NPZ", OutputFormat::Npz),
            ("x.SafeTensors", OutputFormat::Safetensors),
            ("/tmp/out.Csv", OutputFormat::Csv),
        ];
        for (p, f) in cases {
            assert_eq!(OutputFormat::from_path(Path::new(p)).unwrap(), f);
        }
        for (ext, f) in [
            ("npy", OutputFormat::Npy),
            ("npz", OutputFormat::Npz),
            ("safetensors", OutputFormat::Safetensors),
            ("csv", OutputFormat::Csv),
        ] {
            assert_eq!(
                OutputFormat::from_path(Path::new(&format!("q.{ext}"))).unwrap(),
                f
            );
        }
        for bad in ["out.txt", "out", "out.npy.gz"] {
            let msg = format!("{:#}", OutputFormat::from_path(Path::new(bad)).unwrap_err());
            assert!(msg.contains(bad), "{msg}");
            assert!(msg.contains(ACCEPTED_EXTENSIONS), "{msg}");
        }
    }

    #[test]
    fn npy_header_alignment_and_versions() {
        let h = npy_header("<f8", &[2, 3]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(&h[6..8], &[1, 0]);
        let h = npy_header("<i8", &[7]);
        assert!(std::str::from_utf8(&h[10..])
            .unwrap()
            .contains("'shape': (7,), }"));
        // Enormous rank forces a header beyond 65535 bytes -> v2.0.
        let shape = vec![1usize; 30000];
        let h = npy_header("<f8", &shape);
        assert_eq!(&h[6..8], &[2, 0]);
        assert_eq!(h.len() % 64, 0);
        let parsed = parse_npy(&h);
        assert_eq!(parsed.version, (2, 0));
        assert_eq!(parsed.shape.len(), 30000);
    }

    #[test]
    fn float_text_round_trips() {
        for v in [
            1e-5,
            9.99e-6,
            1e16,
            123.0,
            -4.5e300,
            5e-324,
            f64::MAX,
            1e-300,
            0.1,
        ] {
            assert_eq!(format_f64(v).parse::<f64>().unwrap(), v);
            assert_eq!(format_f32(v as f32).parse::<f32>().unwrap(), v as f32);
        }
        assert_eq!(format_f64(1e16), "1e16");
        assert_eq!(format_f64(0.25), "0.25");
        assert_eq!(format_f64(1e-300), "1e-300");
        // f32 text is the shortest f32 round-trip form, not the f64 expansion.
        assert_eq!(format_f32(0.1), "0.1");
        assert_eq!(format_f32(1.0 / 3.0), "0.33333334");
        assert_eq!(
            format!("{},{}", format_f64(f64::NAN), format_f64(f64::INFINITY)),
            "NaN,inf"
        );
    }
}
