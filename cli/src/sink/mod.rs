//! Streaming output files: rows are written as the pipeline finishes them, so no output is
//! ever held whole in memory, in every format (`.npy`, `.npz`, `.safetensors`, `.csv`).
//!
//! * `.npy`: the header is written with room for any row count and rewritten at the end.
//! * `.csv`: header line, then one line per row.
//! * `.npz` / `.safetensors`: values and index columns go to temporary files next to the
//!   output; at the end they are assembled into the archive (their headers need the sizes).
//!
//! Every output carries its metadata (`metadata`): an npz member `metadata.json`, the
//! safetensors `__metadata__` entry `anisoap_candle`, or a sidecar `<output>.json` for `.npy`
//! and `.csv` (renamed into place just before the output). Everything is written to temporary
//! files and renamed at the end: an interrupted or failed run leaves nothing that looks
//! complete.

use crate::output::{format_f32, format_f64, npy_header, OutputFormat};
use anisoap_candle::pipeline::RowSink;
use anisoap_candle::system::Layout;
use anisoap_candle::RowBlock;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Path of the metadata sidecar of an `.npy` or `.csv` output.
pub fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// A temporary file next to `path` that becomes `path` when persisted.
fn temp_next_to(path: &Path, tag: &str) -> Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
    let prefix = format!(".{}.{tag}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(&dir).with_context(|| {
        format!(
            "cannot create a temporary file in directory {} (does it exist and is it writable?)",
            dir.display()
        )
    })
}

/// Syncs `tmp` and renames it onto `path`.
fn persist(tmp: NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file()
        .sync_all()
        .context("cannot sync a temporary file")?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot rename a temporary file onto {}", path.display()))?;
    Ok(())
}

/// A temporary file written through a buffer.
struct Spool {
    writer: BufWriter<NamedTempFile>,
}

impl Spool {
    fn new(path: &Path, tag: &str) -> Result<Self> {
        Ok(Spool {
            writer: BufWriter::with_capacity(1 << 20, temp_next_to(path, tag)?),
        })
    }

    fn into_file(self) -> Result<NamedTempFile> {
        self.writer
            .into_inner()
            .map_err(|e| anyhow!("cannot flush a temporary file: {}", e.error()))
    }
}

/// Describes what the sink writes.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// Destination.
    pub path: PathBuf,
    /// Format (from the extension).
    pub format: OutputFormat,
    /// Name of the values array (`power_spectrum` or `density`).
    pub name: String,
    /// Store float32.
    pub as_f32: bool,
    /// Rows are centres (`frame` and `center` index columns) rather than frames.
    pub per_center: bool,
}

/// The layout's part of the metadata.
pub fn columns_metadata(layout: &Layout, mode: &str) -> Value {
    serde_json::json!({
        "mode": mode,
        "types": layout.types,
        "center_types": layout.center_types,
        "neighbor_types": layout
            .neighbor_slots
            .iter()
            .map(|slots| slots.iter().map(|&s| layout.types[s]).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        "n_radial": layout.n_radial,
    })
}

/// A streaming output file: a [`RowSink`] that must be [`finish`](StreamingOutput::finish)ed.
pub struct StreamingOutput {
    spec: OutputSpec,
    cols: usize,
    rows: usize,
    /// `.npy`: the output itself (header rewritten at the end); `.npz`/`.safetensors`: the raw
    /// values.
    values: Option<Spool>,
    frame: Option<Spool>,
    center: Option<Spool>,
    csv: Option<csv::Writer<BufWriter<NamedTempFile>>>,
    header_len: usize,
    record: Vec<String>,
    /// Metadata, completed by [`StreamingOutput::finish`].
    pub metadata: serde_json::Map<String, Value>,
}

impl StreamingOutput {
    /// A sink for `spec`, carrying `metadata` (completed with the row count and width).
    pub fn new(spec: OutputSpec, metadata: serde_json::Map<String, Value>) -> Result<Self> {
        Ok(StreamingOutput {
            spec,
            cols: 0,
            rows: 0,
            values: None,
            frame: None,
            center: None,
            csv: None,
            header_len: 0,
            record: Vec::new(),
            metadata,
        })
    }

    fn descr(&self) -> &'static str {
        if self.spec.as_f32 {
            "<f4"
        } else {
            "<f8"
        }
    }

    /// Starts the files once the width is known.
    fn start(&mut self, layout: &Layout, width: usize) -> Result<()> {
        self.cols = width;
        let path = self.spec.path.clone();
        match self.spec.format {
            OutputFormat::Npy => {
                let mut spool = Spool::new(&path, "npy")?;
                let header = npy_header(self.descr(), &[usize::MAX, width]);
                self.header_len = header.len();
                spool.writer.write_all(&header)?;
                self.values = Some(spool);
            }
            OutputFormat::Csv => {
                let file = temp_next_to(&path, "csv")?;
                let mut writer = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, file));
                let mut header = vec!["frame".to_string()];
                if self.spec.per_center {
                    header.push("center".into());
                }
                // Column names from the one feature layout (labels.rs through Layout).
                header.extend(if self.spec.name == "density" {
                    layout.density_labels()
                } else {
                    layout.power_spectrum_labels()
                });
                writer.write_record(&header)?;
                self.csv = Some(writer);
            }
            OutputFormat::Npz | OutputFormat::Safetensors => {
                self.values = Some(Spool::new(&path, "values")?);
                self.frame = Some(Spool::new(&path, "frame")?);
                if self.spec.per_center {
                    self.center = Some(Spool::new(&path, "center")?);
                }
            }
        }
        Ok(())
    }

    fn write_values(&mut self, values: &[f64]) -> Result<()> {
        let as_f32 = self.spec.as_f32;
        let w = &mut self.values.as_mut().expect("started").writer;
        if as_f32 {
            for &v in values {
                w.write_all(&(v as f32).to_le_bytes())?;
            }
        } else {
            for &v in values {
                w.write_all(&v.to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// Appends rows given as values with their global frame and centre indices (used by the
    /// pipeline and by `merge`).
    pub fn append(
        &mut self,
        values: &[f64],
        frame: &[usize],
        center: Option<&[usize]>,
    ) -> Result<()> {
        let n = frame.len();
        if values.len() != n * self.cols {
            bail!(
                "internal: {} values for {n} rows of {}",
                values.len(),
                self.cols
            );
        }
        if values.iter().any(|v| !v.is_finite()) {
            bail!("internal: a non-finite value reached the output");
        }
        self.rows += n;
        if let Some(csv) = self.csv.as_mut() {
            for r in 0..n {
                self.record.clear();
                self.record.push(frame[r].to_string());
                if let Some(c) = center {
                    self.record.push(c[r].to_string());
                }
                let row = &values[r * self.cols..(r + 1) * self.cols];
                if self.spec.as_f32 {
                    self.record
                        .extend(row.iter().map(|&v| format_f32(v as f32)));
                } else {
                    self.record.extend(row.iter().map(|&v| format_f64(v)));
                }
                csv.write_record(&self.record)?;
            }
            return Ok(());
        }
        self.write_values(values)?;
        if let Some(spool) = self.frame.as_mut() {
            for &f in frame {
                spool.writer.write_all(&(f as i64).to_le_bytes())?;
            }
        }
        if let (Some(spool), Some(center)) = (self.center.as_mut(), center) {
            for &c in center {
                spool.writer.write_all(&(c as i64).to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// Number of rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Completes the files and renames them into place (metadata sidecar first, then the
    /// output). Dropping an unfinished sink deletes every temporary file.
    pub fn finish(mut self) -> Result<()> {
        if self.cols == 0 && self.values.is_none() && self.csv.is_none() {
            bail!("no rows were computed; nothing written");
        }
        self.metadata.insert("rows".into(), self.rows.into());
        self.metadata.insert("width".into(), self.cols.into());
        let metadata = Value::Object(self.metadata.clone());
        let metadata_text = serde_json::to_string_pretty(&metadata)?;
        let path = self.spec.path.clone();
        match self.spec.format {
            OutputFormat::Npy => {
                let mut file = self.values.take().expect("started").into_file()?;
                let mut header = npy_header(self.descr(), &[self.rows, self.cols]);
                // Same length as the placeholder: pad the dict with spaces before the '\n'.
                if header.len() > self.header_len {
                    bail!("internal: NPY header grew");
                }
                header.pop();
                header.resize(self.header_len - 1, b' ');
                header.push(b'\n');
                let f = file.as_file_mut();
                f.seek(SeekFrom::Start(0))?;
                f.write_all(&header)?;
                f.flush()?;
                write_sidecar(&path, &metadata_text)?;
                persist(file, &path)
            }
            OutputFormat::Csv => {
                let writer = self.csv.take().expect("started");
                let file = writer
                    .into_inner()
                    .map_err(|e| anyhow!("cannot flush the CSV output: {}", e.error()))?
                    .into_inner()
                    .map_err(|e| anyhow!("cannot flush the CSV output: {}", e.error()))?;
                write_sidecar(&path, &metadata_text)?;
                persist(file, &path)
            }
            OutputFormat::Npz => {
                let mut parts = self.take_parts()?;
                let out = temp_next_to(&path, "npz")?;
                let mut zip = zip::ZipWriter::new(out);
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .large_file(true);
                let shapes = self.part_shapes();
                for ((name, descr, shape), file) in shapes.iter().zip(parts.iter_mut()) {
                    zip.start_file(format!("{name}.npy"), opts)?;
                    zip.write_all(&npy_header(descr, shape))?;
                    let f = file.as_file_mut();
                    f.seek(SeekFrom::Start(0))?;
                    std::io::copy(f, &mut zip)?;
                }
                zip.start_file("metadata.json", opts)?;
                zip.write_all(metadata_text.as_bytes())?;
                let out = zip.finish()?;
                persist(out, &path)
            }
            OutputFormat::Safetensors => {
                let mut parts = self.take_parts()?;
                let shapes = self.part_shapes();
                let mut header = serde_json::Map::new();
                let mut offset = 0u64;
                for ((name, descr, shape), file) in shapes.iter().zip(parts.iter()) {
                    let len = file.as_file().metadata()?.len();
                    let dtype = match *descr {
                        "<f8" => "F64",
                        "<f4" => "F32",
                        _ => "I64",
                    };
                    header.insert(
                        name.clone(),
                        serde_json::json!({"dtype": dtype, "shape": shape,
                                           "data_offsets": [offset, offset + len]}),
                    );
                    offset += len;
                }
                header.insert(
                    "__metadata__".into(),
                    serde_json::json!({ "anisoap_candle": serde_json::to_string(&metadata)? }),
                );
                let mut text = serde_json::to_string(&Value::Object(header))?.into_bytes();
                while text.len() % 8 != 0 {
                    text.push(b' ');
                }
                let mut out = temp_next_to(&path, "safetensors")?;
                {
                    let mut w = BufWriter::new(out.as_file_mut());
                    w.write_all(&(text.len() as u64).to_le_bytes())?;
                    w.write_all(&text)?;
                    for file in parts.iter_mut() {
                        let f = file.as_file_mut();
                        f.seek(SeekFrom::Start(0))?;
                        std::io::copy(f, &mut w)?;
                    }
                    w.flush()?;
                }
                persist(out, &path)
            }
        }
    }

    /// `(member name, descr, shape)` of the values and index parts, in order.
    fn part_shapes(&self) -> Vec<(String, &'static str, Vec<usize>)> {
        let mut shapes = vec![(
            self.spec.name.clone(),
            self.descr(),
            vec![self.rows, self.cols],
        )];
        shapes.push(("frame".into(), "<i8", vec![self.rows]));
        if self.spec.per_center {
            shapes.push(("center".into(), "<i8", vec![self.rows]));
        }
        shapes
    }

    fn take_parts(&mut self) -> Result<Vec<NamedTempFile>> {
        let mut parts = vec![self.values.take().expect("started").into_file()?];
        parts.push(self.frame.take().expect("started").into_file()?);
        if let Some(center) = self.center.take() {
            parts.push(center.into_file()?);
        }
        Ok(parts)
    }
}

fn write_sidecar(path: &Path, text: &str) -> Result<()> {
    let sidecar = sidecar_path(path);
    let mut tmp = temp_next_to(&sidecar, "meta")?;
    tmp.write_all(text.as_bytes())?;
    tmp.flush()?;
    persist(tmp, &sidecar)
}

impl RowSink for StreamingOutput {
    fn columns(&mut self, layout: &Layout, width: usize) -> anisoap_candle::Result<()> {
        self.start(layout, width)
            .map_err(to_library_error(&self.spec.path))
    }

    fn rows(&mut self, block: RowBlock) -> anisoap_candle::Result<()> {
        let path = self.spec.path.clone();
        self.append(block.values, block.frame, block.center)
            .map_err(to_library_error(&path))
    }
}

fn to_library_error(path: &Path) -> impl Fn(anyhow::Error) -> anisoap_candle::Error + '_ {
    move |e| anisoap_candle::Error::Io {
        path: path.to_path_buf(),
        error: std::io::Error::other(format!("{e:#}")),
    }
}

/// The `format` field of every output's metadata.
pub const METADATA_FORMAT: &str = "anisoap-candle-output";

mod read;
pub use read::{read_output, ReadOutput};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::{entries, f32s, f64s, i64s, parse_npy};
    use std::fs::File;
    use std::io::Read;

    /// Four rows of two finite values (the layout of one type with `N_l = 1` for `l = 0, 1`).
    const VALUES: [f64; 8] = [
        1.0,
        -2.5,
        std::f64::consts::PI,
        1e-300,
        -0.0,
        123456.789,
        1.0 / 3.0,
        -7.25,
    ];
    const FRAME: [usize; 4] = [0, 0, 1, 1];
    const CENTER: [usize; 4] = [0, 1, 0, 5];

    fn layout() -> Layout {
        Layout::full(vec![1], vec![1, 1])
    }

    fn spec(path: &Path, as_f32: bool) -> OutputSpec {
        OutputSpec {
            path: path.to_path_buf(),
            format: OutputFormat::from_path(path).unwrap(),
            name: "power_spectrum".into(),
            as_f32,
            per_center: true,
        }
    }

    fn metadata() -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("format".into(), METADATA_FORMAT.into());
        m.insert("name".into(), "power_spectrum".into());
        m.insert("quantity".into(), "power_spectrum_per_center".into());
        m
    }

    /// Writes the sample rows in two appends (as the pipeline does, chunk by chunk).
    fn write(path: &Path, as_f32: bool) {
        let mut out = StreamingOutput::new(spec(path, as_f32), metadata()).unwrap();
        RowSink::columns(&mut out, &layout(), 2).unwrap();
        out.append(&VALUES[..4], &FRAME[..2], Some(&CENTER[..2]))
            .unwrap();
        out.append(&VALUES[4..], &FRAME[2..], Some(&CENTER[2..]))
            .unwrap();
        out.finish().unwrap();
    }

    fn same_bits(got: &[f64], as_f32: bool) -> bool {
        got.len() == VALUES.len()
            && got.iter().zip(&VALUES).all(|(g, v)| {
                if as_f32 {
                    (*g as f32).to_bits() == (*v as f32).to_bits()
                } else {
                    g.to_bits() == v.to_bits()
                }
            })
    }

    fn sidecar_rows(path: &Path) -> u64 {
        let text = std::fs::read_to_string(sidecar_path(path)).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["rows"]
            .as_u64()
            .unwrap()
    }

    #[test]
    fn writes_npy_f64_and_f32_with_a_patched_header() {
        let dir = tempfile::tempdir().unwrap();
        for as_f32 in [false, true] {
            let p = dir.path().join(format!("out{as_f32}.npy"));
            write(&p, as_f32);
            let npy = parse_npy(&std::fs::read(&p).unwrap());
            assert_eq!(npy.version, (1, 0));
            assert_eq!(npy.shape, vec![4, 2]);
            let descr = if as_f32 { "<f4" } else { "<f8" };
            assert_eq!(npy.descr, descr);
            assert_eq!(
                npy.dict,
                format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (4, 2), }}")
            );
            let got: Vec<f64> = if as_f32 {
                f32s(&npy.data).iter().map(|&v| v as f64).collect()
            } else {
                f64s(&npy.data)
            };
            assert!(same_bits(&got, as_f32));
            assert_eq!(sidecar_rows(&p), 4);
        }
        assert_eq!(
            entries(dir.path()),
            [
                "outfalse.npy",
                "outfalse.npy.json",
                "outtrue.npy",
                "outtrue.npy.json"
            ]
        );
    }

    #[test]
    fn writes_npz_with_index_and_metadata_members() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.npz");
        write(&p, false);
        let mut zip = zip::ZipArchive::new(File::open(&p).unwrap()).unwrap();
        let mut names: Vec<String> = zip.file_names().map(String::from).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "center.npy",
                "frame.npy",
                "metadata.json",
                "power_spectrum.npy"
            ]
        );
        let mut read = |name: &str| {
            let mut f = zip.by_name(name).unwrap();
            assert_eq!(f.compression(), zip::CompressionMethod::Deflated);
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).unwrap();
            buf
        };
        let v = parse_npy(&read("power_spectrum.npy"));
        assert_eq!((v.descr.as_str(), v.shape.clone()), ("<f8", vec![4, 2]));
        assert!(same_bits(&f64s(&v.data), false));
        for (name, col) in [("frame", FRAME), ("center", CENTER)] {
            let c = parse_npy(&read(&format!("{name}.npy")));
            assert_eq!((c.descr.as_str(), c.shape.clone()), ("<i8", vec![4]));
            let want: Vec<i64> = col.iter().map(|&x| x as i64).collect();
            assert_eq!(i64s(&c.data), want);
        }
        let meta: Value = serde_json::from_slice(&read("metadata.json")).unwrap();
        assert_eq!(
            (meta["rows"].as_u64(), meta["width"].as_u64()),
            (Some(4), Some(2))
        );
        assert_eq!(entries(dir.path()), ["out.npz"]);
    }

    #[test]
    fn writes_safetensors_that_candle_reads() {
        use candle_core::{DType, Device};
        let dir = tempfile::tempdir().unwrap();
        for as_f32 in [false, true] {
            let p = dir.path().join(format!("out{as_f32}.safetensors"));
            write(&p, as_f32);
            let m = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
            assert_eq!(m.len(), 3);
            let v = &m["power_spectrum"];
            assert_eq!(v.dims(), &[4, 2]);
            assert_eq!(v.dtype(), if as_f32 { DType::F32 } else { DType::F64 });
            let got = v
                .to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            assert!(same_bits(&got, as_f32));
            for (name, col) in [("frame", FRAME), ("center", CENTER)] {
                let c = &m[name];
                assert_eq!(c.dtype(), DType::I64);
                let want: Vec<i64> = col.iter().map(|&x| x as i64).collect();
                assert_eq!(c.to_vec1::<i64>().unwrap(), want);
            }
        }
        assert_eq!(entries(dir.path()).len(), 2);
    }

    #[test]
    fn writes_csv_with_layout_names_and_round_trip_text() {
        let dir = tempfile::tempdir().unwrap();
        for as_f32 in [false, true] {
            let p = dir.path().join(format!("out{as_f32}.csv"));
            write(&p, as_f32);
            let mut rdr = csv::Reader::from_path(&p).unwrap();
            let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
            let mut expected = vec!["frame".to_string(), "center".to_string()];
            expected.extend(layout().power_spectrum_labels());
            assert_eq!(header, expected);
            let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
            assert_eq!(rows.len(), 4);
            let mut got = Vec::new();
            for (r, rec) in rows.iter().enumerate() {
                assert_eq!(rec.len(), 4);
                assert_eq!(rec[0].parse::<usize>().unwrap(), FRAME[r]);
                assert_eq!(rec[1].parse::<usize>().unwrap(), CENTER[r]);
                got.extend(rec.iter().skip(2).map(|t| t.parse::<f64>().unwrap()));
            }
            assert!(same_bits(&got, as_f32));
            assert_eq!(sidecar_rows(&p), 4);
        }
        let text = std::fs::read_to_string(dir.path().join("outtrue.csv")).unwrap();
        assert!(text.contains(",0.33333334,"), "{text}");
        let text = std::fs::read_to_string(dir.path().join("outfalse.csv")).unwrap();
        assert!(text.contains(",1e-300\n"), "{text}");
    }

    #[test]
    fn empty_output_in_every_format() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["e.npy", "e.npz", "e.safetensors", "e.csv"] {
            let p = dir.path().join(f);
            let mut out = StreamingOutput::new(spec(&p, false), metadata()).unwrap();
            RowSink::columns(&mut out, &layout(), 2).unwrap();
            out.finish().unwrap();
        }
        let npy = parse_npy(&std::fs::read(dir.path().join("e.npy")).unwrap());
        assert_eq!(npy.shape, vec![0, 2]);
        assert!(npy.data.is_empty());
        let text = std::fs::read_to_string(dir.path().join("e.csv")).unwrap();
        let mut header = vec!["frame".to_string(), "center".to_string()];
        header.extend(layout().power_spectrum_labels());
        assert_eq!(text, header.join(",") + "\n");
    }

    #[test]
    fn overwrites_existing_destination_with_usual_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.csv");
        std::fs::write(
            &p,
            "old content that is longer than the new one\n".repeat(50),
        )
        .unwrap();
        write(&p, false);
        assert!(std::fs::read_to_string(&p).unwrap().lines().count() == 5);
        assert_eq!(entries(dir.path()), ["o.csv", "o.csv.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Not the private 0600 of a temporary file: group/other bits follow the umask.
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            let probe = dir.path().join("probe");
            std::fs::write(&probe, "").unwrap();
            let usual = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, usual);
        }
    }

    #[test]
    fn failures_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["x.npy", "x.npz", "x.safetensors", "x.csv"] {
            // A directory that does not exist: an error naming it.
            let missing = dir.path().join("does-not-exist").join(f);
            let err = StreamingOutput::new(spec(&missing, false), metadata())
                .and_then(|mut out| {
                    RowSink::columns(&mut out, &layout(), 2)?;
                    Ok(())
                })
                .unwrap_err();
            assert!(format!("{err:#}").contains("does-not-exist"), "{err:#}");
            // A non-finite value never reaches a file; an unfinished sink removes its
            // temporary files when dropped.
            let p = dir.path().join(f);
            let mut out = StreamingOutput::new(spec(&p, false), metadata()).unwrap();
            RowSink::columns(&mut out, &layout(), 2).unwrap();
            out.append(&VALUES[..2], &FRAME[..1], Some(&CENTER[..1]))
                .unwrap();
            let err = out.append(&[f64::NAN, 1.0], &[0], Some(&[0])).unwrap_err();
            assert!(err.to_string().contains("non-finite"), "{err}");
            drop(out);
        }
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }
}
