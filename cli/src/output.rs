//! Writing descriptor tables to disk.
//!
//! A descriptor result is an [`OutputTable`]: a row-major `rows × cols`
//! matrix of values plus optional integer index columns (for example
//! `("frame", …)` and `("center", …)`) identifying each row.
//! [`write_table`] stores it in one of four formats chosen by the
//! destination's extension (see [`OutputFormat`]):
//!
//! | extension      | content                                                        |
//! |----------------|----------------------------------------------------------------|
//! | `.npy`         | values only (NPY v1.0/v2.0, `<f8`/`<f4`, C order); index dropped |
//! | `.npz`         | zip (deflate) of `{name}.npy` + one `{index}.npy` (`<i8`) each   |
//! | `.safetensors` | tensor `{name}` (F64/F32, `[rows, cols]`) + I64 index tensors    |
//! | `.csv`         | header `index names…, feature names…`; round-trip precision     |
//!
//! Every write is atomic: the data goes to a temporary file in the
//! destination's directory, which is flushed, synced and then renamed onto
//! the destination. On failure the temporary file is removed and the
//! destination is left untouched (no partial file ever appears).

// Until the `compute` subcommand calls into this module, the binary does not use it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};

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

    /// The canonical (lower-case, dot-less) file extension of this format.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Npy => "npy",
            OutputFormat::Npz => "npz",
            OutputFormat::Safetensors => "safetensors",
            OutputFormat::Csv => "csv",
        }
    }
}

/// A row-major matrix of descriptor values with optional row index columns.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTable {
    /// Name of the values array (npz member `{name}.npy`, safetensors tensor
    /// `{name}`); not used by `.npy` and `.csv`.
    pub name: String,
    /// Number of rows (e.g. structures or atomic centers).
    pub rows: usize,
    /// Number of feature columns.
    pub cols: usize,
    /// The `rows * cols` values in row-major (C) order.
    pub values: Vec<f64>,
    /// Store values as float32 (`<f4` / F32) instead of float64 (`<f8` / F64).
    pub as_f32: bool,
    /// Integer index columns `(name, values)`, each of length `rows`, stored
    /// as int64 (ignored by `.npy`).
    pub index: Vec<(String, Vec<i64>)>,
    /// Feature column names for the CSV header (length `cols`); defaults to
    /// `f0 .. f{cols-1}` when `None`.
    pub column_names: Option<Vec<String>>,
}

impl OutputTable {
    /// Creates a float64 table without index columns or column names.
    pub fn new(name: impl Into<String>, rows: usize, cols: usize, values: Vec<f64>) -> Self {
        OutputTable {
            name: name.into(),
            rows,
            cols,
            values,
            as_f32: false,
            index: Vec::new(),
            column_names: None,
        }
    }

    /// Checks internal consistency: `values.len() == rows * cols`, every index
    /// column has `rows` entries, `column_names` (if any) has `cols` entries,
    /// and the value/index names are non-empty and pairwise distinct.
    /// Non-finite values are allowed and written as they are.
    ///
    /// # Errors
    /// Describes the first inconsistency found.
    pub fn validate(&self) -> Result<()> {
        let expected = self
            .rows
            .checked_mul(self.cols)
            .ok_or_else(|| anyhow!("table shape {} x {} overflows", self.rows, self.cols))?;
        ensure!(
            self.values.len() == expected,
            "table '{}' has {} values but shape {} x {} needs {}",
            self.name,
            self.values.len(),
            self.rows,
            self.cols,
            expected
        );
        ensure!(!self.name.is_empty(), "table name must not be empty");
        let mut seen = HashSet::new();
        seen.insert(self.name.as_str());
        for (name, col) in &self.index {
            ensure!(!name.is_empty(), "index column names must not be empty");
            ensure!(
                seen.insert(name.as_str()),
                "duplicate name '{}' among the table name and index columns",
                name
            );
            ensure!(
                col.len() == self.rows,
                "index column '{}' has {} entries but the table has {} rows",
                name,
                col.len(),
                self.rows
            );
        }
        if let Some(names) = &self.column_names {
            ensure!(
                names.len() == self.cols,
                "table '{}' has {} column names but {} columns",
                self.name,
                names.len(),
                self.cols
            );
        }
        Ok(())
    }

    /// The feature column names: `column_names` or `f0 .. f{cols-1}`.
    pub fn feature_names(&self) -> Vec<String> {
        match &self.column_names {
            Some(names) => names.clone(),
            None => (0..self.cols).map(|j| format!("f{j}")).collect(),
        }
    }
}

/// Writes `table` to `path` in the format given by the path's extension
/// (see [`OutputFormat::from_path`]).
///
/// `.npy` holds only the values array; `.npz`, `.safetensors` and `.csv` also
/// keep the index columns. The write is atomic (temporary file in the same
/// directory, synced, then renamed), so on error no destination file appears.
///
/// # Errors
/// Unknown extension, an inconsistent table (see [`OutputTable::validate`]),
/// or any I/O failure; messages name the destination path.
pub fn write_table(path: &Path, table: &OutputTable) -> Result<()> {
    let format = OutputFormat::from_path(path)?;
    write_table_as(path, format, table)
}

/// Like [`write_table`] but with an explicit `format`, whatever the extension.
///
/// # Errors
/// As [`write_table`], except for extension checking.
pub fn write_table_as(path: &Path, format: OutputFormat, table: &OutputTable) -> Result<()> {
    table
        .validate()
        .with_context(|| format!("cannot write {}", path.display()))?;
    write_atomic(path, |file, tmp_path| match format {
        OutputFormat::Npy => {
            let mut w = BufWriter::new(file);
            write_values_npy(&mut w, table)?;
            w.flush()?;
            Ok(())
        }
        OutputFormat::Npz => write_npz(file, table),
        OutputFormat::Safetensors => write_safetensors(tmp_path, table),
        OutputFormat::Csv => {
            let mut w = BufWriter::new(file);
            write_csv(&mut w, table)?;
            w.flush()?;
            Ok(())
        }
    })
    .with_context(|| {
        format!(
            "failed to write {} output to {}",
            format.extension(),
            path.display()
        )
    })
}

/// Runs `fill` on a fresh temporary file next to `path`, syncs it and renames
/// it onto `path`. The temporary file is removed on any failure.
fn write_atomic(path: &Path, fill: impl FnOnce(&mut File, &Path) -> Result<()>) -> Result<()> {
    let dir: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let prefix = format!(".{}.", file_name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // Temporary files are private (0600) by default; the output should get
    // the usual permissions of a new file (0666 minus the umask).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(&dir).with_context(|| {
        format!(
            "cannot create a temporary file in directory {} (does it exist and is it writable?)",
            dir.display()
        )
    })?;
    // `tmp` is dropped (and deleted) if anything below fails.
    let tmp_path = tmp.path().to_path_buf();
    fill(tmp.as_file_mut(), &tmp_path)?;
    tmp.as_file_mut().flush()?;
    tmp.as_file()
        .sync_all()
        .context("cannot sync temporary file")?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rename temporary file onto {}", path.display()))?;
    Ok(())
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

/// Number of bytes of the values array as NPY (header included).
fn values_npy_len(table: &OutputTable) -> u64 {
    let descr = if table.as_f32 { "<f4" } else { "<f8" };
    let item = if table.as_f32 { 4 } else { 8 };
    npy_header(descr, &[table.rows, table.cols]).len() as u64 + (table.values.len() * item) as u64
}

/// Writes the values matrix as an NPY array of shape `(rows, cols)`.
fn write_values_npy<W: Write>(w: &mut W, table: &OutputTable) -> Result<()> {
    let descr = if table.as_f32 { "<f4" } else { "<f8" };
    w.write_all(&npy_header(descr, &[table.rows, table.cols]))?;
    if table.as_f32 {
        for &v in &table.values {
            w.write_all(&(v as f32).to_le_bytes())?;
        }
    } else {
        for &v in &table.values {
            w.write_all(&v.to_le_bytes())?;
        }
    }
    Ok(())
}

/// Writes one int64 index column as an NPY array of shape `(rows,)`.
fn write_index_npy<W: Write>(w: &mut W, col: &[i64]) -> Result<()> {
    w.write_all(&npy_header("<i8", &[col.len()]))?;
    for &v in col {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// Writes the `.npz` archive: `{name}.npy` then one `{index}.npy` per column.
fn write_npz<W: Write + Seek>(w: W, table: &OutputTable) -> Result<()> {
    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let mut zip = zip::ZipWriter::new(w);
    let big = values_npy_len(table) >= u64::from(u32::MAX);
    zip.start_file(format!("{}.npy", table.name), opts.large_file(big))?;
    {
        let mut bw = BufWriter::new(&mut zip);
        write_values_npy(&mut bw, table)?;
        bw.flush()?;
    }
    for (name, col) in &table.index {
        let big = (col.len() as u64) * 8 + 256 >= u64::from(u32::MAX);
        zip.start_file(format!("{name}.npy"), opts.large_file(big))?;
        let mut bw = BufWriter::new(&mut zip);
        write_index_npy(&mut bw, col)?;
        bw.flush()?;
    }
    zip.finish()?;
    Ok(())
}

/// Writes the `.safetensors` file at `path` through candle.
fn write_safetensors(path: &Path, table: &OutputTable) -> Result<()> {
    use candle_core::{Device, Tensor};
    let dev = Device::Cpu;
    let shape = (table.rows, table.cols);
    let values = if table.as_f32 {
        let v: Vec<f32> = table.values.iter().map(|&x| x as f32).collect();
        Tensor::from_vec(v, shape, &dev)?
    } else {
        Tensor::from_slice(&table.values, shape, &dev)?
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert(table.name.clone(), values);
    for (name, col) in &table.index {
        tensors.insert(name.clone(), Tensor::from_slice(col, col.len(), &dev)?);
    }
    candle_core::safetensors::save(&tensors, path)?;
    Ok(())
}

/// Writes the CSV: header of index names then feature names, one line per row.
fn write_csv<W: Write>(w: W, table: &OutputTable) -> Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    let mut header: Vec<String> = table.index.iter().map(|(n, _)| n.clone()).collect();
    header.extend(table.feature_names());
    csv.write_record(&header)?;
    let mut record: Vec<String> = Vec::with_capacity(header.len());
    for r in 0..table.rows {
        record.clear();
        record.extend(table.index.iter().map(|(_, col)| col[r].to_string()));
        let row = &table.values[r * table.cols..(r + 1) * table.cols];
        if table.as_f32 {
            record.extend(row.iter().map(|&v| format_f32(v as f32)));
        } else {
            record.extend(row.iter().map(|&v| format_f64(v)));
        }
        csv.write_record(&record)?;
    }
    csv.flush()?;
    Ok(())
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
mod tests {
    use super::*;
    use std::io::Read;

    /// A parsed NPY array: header dict text, descr, shape and raw data bytes.
    struct Npy {
        version: (u8, u8),
        dict: String,
        descr: String,
        shape: Vec<usize>,
        data: Vec<u8>,
    }

    /// Minimal NPY parser for the files written above.
    fn parse_npy(bytes: &[u8]) -> Npy {
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

    fn f64s(data: &[u8]) -> Vec<f64> {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn f32s(data: &[u8]) -> Vec<f32> {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn i64s(data: &[u8]) -> Vec<i64> {
        data.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    fn sample(as_f32: bool) -> OutputTable {
        let values = vec![
            1.0,
            -2.5,
            0.1,
            std::f64::consts::PI,
            1e-300,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            123456.789,
            1.0 / 3.0,
            2.0,
            -7.25,
        ];
        OutputTable {
            name: "descriptor".into(),
            rows: 4,
            cols: 3,
            values,
            as_f32,
            index: vec![
                ("frame".into(), vec![0, 0, 1, 1]),
                ("center".into(), vec![0, 1, 0, -5]),
            ],
            column_names: None,
        }
    }

    fn same_bits64(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    fn same_bits32(a: &[f32], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.to_bits() == (*y as f32).to_bits())
    }

    /// Lists the directory's entries (to check no temp file was left).
    fn entries(dir: &Path) -> Vec<String> {
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
            assert_eq!(
                OutputFormat::from_path(Path::new(&format!("q.{}", f.extension()))).unwrap(),
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
    fn writes_npy_f64_and_f32() {
        let dir = tempfile::tempdir().unwrap();
        for as_f32 in [false, true] {
            let t = sample(as_f32);
            let p = dir.path().join(format!("out{as_f32}.npy"));
            write_table(&p, &t).unwrap();
            let npy = parse_npy(&std::fs::read(&p).unwrap());
            assert_eq!(npy.version, (1, 0));
            assert_eq!(npy.shape, vec![4, 3]);
            let descr = if as_f32 { "<f4" } else { "<f8" };
            assert_eq!(npy.descr, descr);
            assert_eq!(
                npy.dict,
                format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (4, 3), }}")
            );
            if as_f32 {
                assert!(same_bits32(&f32s(&npy.data), &t.values));
            } else {
                assert!(same_bits64(&f64s(&npy.data), &t.values));
            }
        }
        let mut names = entries(dir.path());
        names.sort();
        assert_eq!(names, vec!["outfalse.npy", "outtrue.npy"]);
    }

    #[test]
    fn writes_npz() {
        let dir = tempfile::tempdir().unwrap();
        let t = sample(false);
        let p = dir.path().join("out.npz");
        write_table(&p, &t).unwrap();
        let mut zip = zip::ZipArchive::new(File::open(&p).unwrap()).unwrap();
        let mut names: Vec<String> = zip.file_names().map(String::from).collect();
        names.sort();
        assert_eq!(names, vec!["center.npy", "descriptor.npy", "frame.npy"]);
        let mut read = |name: &str| {
            let mut f = zip.by_name(name).unwrap();
            assert_eq!(f.compression(), zip::CompressionMethod::Deflated);
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).unwrap();
            parse_npy(&buf)
        };
        let v = read("descriptor.npy");
        assert_eq!((v.descr.as_str(), v.shape.clone()), ("<f8", vec![4, 3]));
        assert!(same_bits64(&f64s(&v.data), &t.values));
        for (name, col) in &t.index {
            let c = read(&format!("{name}.npy"));
            assert_eq!(c.descr, "<i8");
            assert_eq!(c.shape, vec![4]);
            assert_eq!(&i64s(&c.data), col);
        }
        assert_eq!(entries(dir.path()), vec!["out.npz"]);
    }

    #[test]
    fn writes_safetensors() {
        use candle_core::{DType, Device};
        let dir = tempfile::tempdir().unwrap();
        for as_f32 in [false, true] {
            let t = sample(as_f32);
            let p = dir.path().join(format!("out{as_f32}.safetensors"));
            write_table(&p, &t).unwrap();
            let m = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
            assert_eq!(m.len(), 3);
            let v = &m["descriptor"];
            assert_eq!(v.dims(), &[4, 3]);
            if as_f32 {
                assert_eq!(v.dtype(), DType::F32);
                let got = v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(same_bits32(&got, &t.values));
            } else {
                assert_eq!(v.dtype(), DType::F64);
                let got = v.flatten_all().unwrap().to_vec1::<f64>().unwrap();
                assert!(same_bits64(&got, &t.values));
            }
            for (name, col) in &t.index {
                let c = &m[name.as_str()];
                assert_eq!(c.dtype(), DType::I64);
                assert_eq!(&c.to_vec1::<i64>().unwrap(), col);
            }
        }
        assert_eq!(entries(dir.path()).len(), 2);
    }

    #[test]
    fn writes_csv() {
        let dir = tempfile::tempdir().unwrap();
        for as_f32 in [false, true] {
            let mut t = sample(as_f32);
            if as_f32 {
                t.column_names = Some(vec!["a".into(), "b".into(), "c".into()]);
            }
            let p = dir.path().join(format!("out{as_f32}.csv"));
            write_table(&p, &t).unwrap();
            let mut rdr = csv::Reader::from_path(&p).unwrap();
            let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
            let feats: Vec<&str> = if as_f32 {
                vec!["a", "b", "c"]
            } else {
                vec!["f0", "f1", "f2"]
            };
            let mut expected = vec!["frame", "center"];
            expected.extend(feats);
            assert_eq!(header, expected);
            let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
            assert_eq!(rows.len(), 4);
            for (r, rec) in rows.iter().enumerate() {
                assert_eq!(rec.len(), 5);
                assert_eq!(rec[0].parse::<i64>().unwrap(), t.index[0].1[r]);
                assert_eq!(rec[1].parse::<i64>().unwrap(), t.index[1].1[r]);
                for c in 0..3 {
                    let want = t.values[r * 3 + c];
                    if as_f32 {
                        let got: f32 = rec[2 + c].parse().unwrap();
                        assert_eq!(got.to_bits(), (want as f32).to_bits(), "{}", &rec[2 + c]);
                    } else {
                        let got: f64 = rec[2 + c].parse().unwrap();
                        assert_eq!(got.to_bits(), want.to_bits(), "{}", &rec[2 + c]);
                    }
                }
            }
        }
        // f32 text is the shortest f32 round-trip form, not the f64 expansion.
        let text = std::fs::read_to_string(dir.path().join("outtrue.csv")).unwrap();
        assert!(text.contains(",0.1\n"), "{text}");
        assert!(text.contains(",0.33333334,"), "{text}");
        let text = std::fs::read_to_string(dir.path().join("outfalse.csv")).unwrap();
        assert!(text.contains(",1e-300,"), "{text}");
        assert!(text.contains(",NaN,inf,"), "{text}");
        for v in [1e-5, 9.99e-6, 1e16, 123.0, -4.5e300, 5e-324, f64::MAX] {
            assert_eq!(format_f64(v).parse::<f64>().unwrap(), v);
            assert_eq!(format_f32(v as f32).parse::<f32>().unwrap(), v as f32);
        }
        assert_eq!(format_f64(1e16), "1e16");
        assert_eq!(format_f64(0.25), "0.25");
    }

    #[test]
    fn empty_table_all_formats() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = OutputTable::new("d", 0, 2, vec![]);
        t.index.push(("frame".into(), vec![]));
        for f in ["e.npy", "e.npz", "e.safetensors", "e.csv"] {
            write_table(&dir.path().join(f), &t).unwrap();
        }
        let npy = parse_npy(&std::fs::read(dir.path().join("e.npy")).unwrap());
        assert_eq!(npy.shape, vec![0, 2]);
        assert!(npy.data.is_empty());
        let text = std::fs::read_to_string(dir.path().join("e.csv")).unwrap();
        assert_eq!(text, "frame,f0,f1\n");
    }

    #[test]
    fn overwrites_existing_destination() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.csv");
        std::fs::write(
            &p,
            "old content that is longer than the new one\n".repeat(50),
        )
        .unwrap();
        write_table(&p, &OutputTable::new("d", 1, 1, vec![0.5])).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "f0\n0.5\n");
        assert_eq!(entries(dir.path()), vec!["o.csv"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Not the private 0600 of a temporary file: group/other bits
            // follow the umask, and reading by the owner is always allowed.
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            let probe = dir.path().join("probe");
            std::fs::write(&probe, "").unwrap();
            let usual = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, usual);
        }
    }

    #[test]
    fn missing_directory_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let t = sample(false);
        for f in ["x.npy", "x.npz", "x.safetensors", "x.csv"] {
            let p = dir.path().join("does-not-exist").join(f);
            let err = write_table(&p, &t).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(&p.display().to_string()), "{msg}");
            assert!(!p.exists());
        }
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn invalid_tables_rejected_without_output() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npz");
        let mut t = sample(false);
        t.values.pop();
        let msg = format!("{:#}", write_table(&p, &t).unwrap_err());
        assert!(
            msg.contains(&p.display().to_string()) && msg.contains("11 values"),
            "{msg}"
        );

        let mut t = sample(false);
        t.index[1].1.push(9);
        let msg = format!("{:#}", write_table(&p, &t).unwrap_err());
        assert!(msg.contains("index column 'center' has 5 entries"), "{msg}");

        let mut t = sample(false);
        t.column_names = Some(vec!["only".into()]);
        assert!(write_table(&p, &t).is_err());

        let mut t = sample(false);
        t.index[0].0 = "descriptor".into();
        assert!(write_table(&p, &t).is_err());

        let msg = format!(
            "{:#}",
            write_table(&dir.path().join("bad.txt"), &t).unwrap_err()
        );
        assert!(
            msg.contains("bad.txt") && msg.contains(ACCEPTED_EXTENSIONS),
            "{msg}"
        );
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn explicit_format_ignores_extension() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("values.bin");
        write_table_as(
            &p,
            OutputFormat::Npy,
            &OutputTable::new("d", 1, 2, vec![1.0, 2.0]),
        )
        .unwrap();
        let npy = parse_npy(&std::fs::read(&p).unwrap());
        assert_eq!(f64s(&npy.data), vec![1.0, 2.0]);
    }
}
