//! The tables under `<results>/tables/` that `plot` draws besides the combined metrics, read by
//! column name. A table that is absent is no error (its figure or panel is left out); a table
//! that is present but malformed is, naming the file, the line and the column.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A CSV file held as strings, with its header.
#[derive(Debug)]
pub struct Table {
    path: PathBuf,
    index: HashMap<String, usize>,
    rows: Vec<(u64, csv::StringRecord)>,
}

/// One data row of a [`Table`] and its line in the file.
#[derive(Debug, Clone, Copy)]
pub struct TableRow<'a> {
    table: &'a Table,
    line: u64,
    record: &'a csv::StringRecord,
}

impl Table {
    /// Reads `path`; `Ok(None)` when the file does not exist. Every column in `required` must
    /// be in the header.
    pub fn read(path: &Path, required: &[&str]) -> Result<Option<Table>> {
        if !path.exists() {
            return Ok(None);
        }
        let mut reader = csv::Reader::from_path(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let headers = reader
            .headers()
            .with_context(|| format!("{}: cannot read the header", path.display()))?
            .clone();
        let index: HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim().to_string(), i))
            .collect();
        for column in required {
            if !index.contains_key(*column) {
                bail!(
                    "{}: missing column '{column}' (header: {})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>().join(",")
                );
            }
        }
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.with_context(|| format!("{}: bad CSV", path.display()))?;
            let line = record.position().map_or(0, |p| p.line());
            rows.push((line, record));
        }
        Ok(Some(Table {
            path: path.to_path_buf(),
            index,
            rows,
        }))
    }

    /// The data rows in file order.
    pub fn rows(&self) -> impl Iterator<Item = TableRow<'_>> {
        self.rows.iter().map(|(line, record)| TableRow {
            table: self,
            line: *line,
            record,
        })
    }
}

impl TableRow<'_> {
    /// The field of `column`, trimmed; empty when the column or the field is absent.
    pub fn str(&self, column: &str) -> &str {
        self.table
            .index
            .get(column)
            .and_then(|&i| self.record.get(i))
            .map_or("", str::trim)
    }

    /// The field of `column` as a finite number; an error names file, line and column.
    pub fn f64(&self, column: &str) -> Result<f64> {
        match self.opt_f64(column)? {
            Some(v) => Ok(v),
            None => bail!(
                "{} line {}: column '{column}' is empty",
                self.table.path.display(),
                self.line
            ),
        }
    }

    /// The field of `column` as a finite number, `None` when empty.
    pub fn opt_f64(&self, column: &str) -> Result<Option<f64>> {
        let text = self.str(column);
        if text.is_empty() {
            return Ok(None);
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => bail!(
                "{} line {}: column '{column}' = '{text}' is not a finite number",
                self.table.path.display(),
                self.line
            ),
        }
    }

    /// The field of `column` as a non-negative integer.
    pub fn u64(&self, column: &str) -> Result<u64> {
        let text = self.str(column);
        text.parse::<u64>().with_context(|| {
            format!(
                "{} line {}: column '{column}' = '{text}' is not a non-negative integer",
                self.table.path.display(),
                self.line
            )
        })
    }
}

/// One row of `tables/cpu_kernel_side_by_side.csv` (`bench --sweep size`, two binaries).
#[derive(Debug, Clone)]
pub struct SideBySide {
    /// `new` or `old`.
    pub binary: String,
    /// Particles of the benzene-like system.
    pub particles: u64,
    /// Median wall time of one call.
    pub median_s: f64,
    /// Commit of the binary (first word of the `kernel` column).
    pub commit: String,
}

/// Reads `tables/cpu_kernel_side_by_side.csv` if present.
pub fn side_by_side(path: &Path) -> Result<Vec<SideBySide>> {
    let Some(table) = Table::read(path, &["binary", "particles", "median_s", "kernel"])? else {
        return Ok(Vec::new());
    };
    table
        .rows()
        .map(|r| {
            Ok(SideBySide {
                binary: r.str("binary").to_string(),
                particles: r.u64("particles")?,
                median_s: r.f64("median_s")?,
                commit: r
                    .str("kernel")
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            })
        })
        .collect()
}

/// One row of `tables/cuda_throughput_h200.csv` (whole `compute` runs on a GPU).
#[derive(Debug, Clone)]
pub struct GpuRun {
    /// Particles.
    pub particles: u64,
    /// Pairs.
    pub pairs: u64,
    /// Maximum angular momentum.
    pub lmax: u64,
    /// `f64` or `f32`.
    pub dtype: String,
    /// `fused` or `tensor-op`.
    pub path: String,
    /// GPU model and driver.
    pub gpu: String,
    /// Whole command.
    pub wall_s: f64,
    /// Repeats (best of).
    pub reps: u64,
    /// Code version.
    pub commit: String,
}

/// Reads a `cuda_throughput_*.csv` table if present.
pub fn gpu_runs(path: &Path) -> Result<Vec<GpuRun>> {
    let required = [
        "particles",
        "pairs",
        "lmax",
        "dtype",
        "path",
        "gpu",
        "wall_s",
    ];
    let Some(table) = Table::read(path, &required)? else {
        return Ok(Vec::new());
    };
    table
        .rows()
        .map(|r| {
            Ok(GpuRun {
                particles: r.u64("particles")?,
                pairs: r.u64("pairs")?,
                lmax: r.u64("lmax")?,
                dtype: r.str("dtype").to_string(),
                path: r.str("path").to_string(),
                gpu: r.str("gpu").to_string(),
                wall_s: r.f64("wall_s")?,
                reps: r.opt_f64("reps")?.map_or(1, |v| v as u64),
                commit: r.str("commit").to_string(),
            })
        })
        .collect()
}

/// One row of `tables/real_dataset.csv` (whole command on the original's dataset).
#[derive(Debug, Clone)]
pub struct RealRun {
    /// Dataset.
    pub system: String,
    /// What ran (original, anisoap-candle CLI with a backend).
    pub implementation: String,
    /// Machine / device.
    pub device: String,
    /// Host threads.
    pub threads: String,
    /// Whole command.
    pub wall_s: f64,
}

/// Reads `tables/real_dataset.csv` if present.
pub fn real_runs(path: &Path) -> Result<Vec<RealRun>> {
    let required = ["system", "implementation", "device", "threads", "wall_s"];
    let Some(table) = Table::read(path, &required)? else {
        return Ok(Vec::new());
    };
    table
        .rows()
        .map(|r| {
            Ok(RealRun {
                system: r.str("system").to_string(),
                implementation: r.str("implementation").to_string(),
                device: r.str("device").to_string(),
                threads: r.str("threads").to_string(),
                wall_s: r.f64("wall_s")?,
            })
        })
        .collect()
}

/// One row of `tables/threads_sweep.csv` (`bench` threads sweep).
#[derive(Debug, Clone)]
pub struct ThreadsRow {
    /// Host name or description.
    pub host: String,
    /// Device.
    pub device: String,
    /// Worker threads.
    pub threads: u64,
    /// System name.
    pub system: String,
    /// Particles.
    pub particles: u64,
    /// Maximum angular momentum.
    pub lmax: u64,
    /// `f64` or `f32`.
    pub dtype: String,
    /// Backend.
    pub backend: String,
    /// Pairs per second.
    pub pairs_per_s: f64,
}

/// Reads `tables/threads_sweep.csv` if present.
pub fn threads_rows(path: &Path) -> Result<Vec<ThreadsRow>> {
    let required = [
        "host",
        "device",
        "threads",
        "system",
        "particles",
        "lmax",
        "dtype",
        "backend",
        "pairs_per_s",
    ];
    let Some(table) = Table::read(path, &required)? else {
        return Ok(Vec::new());
    };
    table
        .rows()
        .map(|r| {
            let threads = r.u64("threads")?;
            if threads == 0 {
                bail!(
                    "{} line {}: column 'threads' must be at least 1",
                    path.display(),
                    r.line
                );
            }
            Ok(ThreadsRow {
                host: r.str("host").to_string(),
                device: r.str("device").to_string(),
                threads,
                system: r.str("system").to_string(),
                particles: r.u64("particles")?,
                lmax: r.u64("lmax")?,
                dtype: r.str("dtype").to_string(),
                backend: r.str("backend").to_string(),
                pairs_per_s: r.f64("pairs_per_s")?,
            })
        })
        .collect()
}

/// One row of `tables/streaming_rss.csv` (`scripts/measure_streaming.sh`).
#[derive(Debug, Clone)]
pub struct StreamingRow {
    /// `streaming` or `in-memory`.
    pub binary: String,
    /// Frames in the input.
    pub frames: u64,
    /// Particles per frame.
    pub particles_per_frame: u64,
    /// `mean` or `per-center`.
    pub output: String,
    /// Peak resident memory.
    pub peak_rss_mb: f64,
}

/// Reads `tables/streaming_rss.csv` if present.
pub fn streaming_rows(path: &Path) -> Result<Vec<StreamingRow>> {
    let required = [
        "binary",
        "frames",
        "particles_per_frame",
        "output",
        "peak_rss_mb",
    ];
    let Some(table) = Table::read(path, &required)? else {
        return Ok(Vec::new());
    };
    table
        .rows()
        .map(|r| {
            Ok(StreamingRow {
                binary: r.str("binary").to_string(),
                frames: r.u64("frames")?,
                particles_per_frame: r.u64("particles_per_frame")?,
                output: r.str("output").to_string(),
                peak_rss_mb: r.f64("peak_rss_mb")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_table_is_empty_and_bad_values_name_file_line_column() {
        let dir = tempfile::tempdir().unwrap();
        assert!(real_runs(&dir.path().join("none.csv")).unwrap().is_empty());
        let path = dir.path().join("real.csv");
        std::fs::write(
            &path,
            "system,implementation,device,threads,wall_s\n\
             a,orig,cpu,2,411\n\
             a,new,cpu,2,fast\n",
        )
        .unwrap();
        let err = format!("{:#}", real_runs(&path).unwrap_err());
        assert!(err.contains("real.csv line 3"), "{err}");
        assert!(err.contains("'wall_s' = 'fast'"), "{err}");
        std::fs::write(&path, "system,device\na,b\n").unwrap();
        let err = format!("{:#}", real_runs(&path).unwrap_err());
        assert!(err.contains("missing column 'implementation'"), "{err}");
    }

    #[test]
    fn threads_rows_parse_and_reject_zero_threads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("threads_sweep.csv");
        let header = "host,device,threads,system,particles,pairs,lmax,dtype,backend,wall_s,pairs_per_s,commit\n";
        std::fs::write(
            &path,
            format!(
                "{header}vm,cpu,2,benzene_n2048_s1_f1,2048,54706,6,f64,candle-cpu,0.02,2.7e6,abc\n"
            ),
        )
        .unwrap();
        let rows = threads_rows(&path).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].threads, 2);
        assert_eq!(rows[0].pairs_per_s, 2.7e6);
        std::fs::write(
            &path,
            format!("{header}vm,cpu,0,b,1,1,6,f64,candle-cpu,1,1,abc\n"),
        )
        .unwrap();
        let err = format!("{:#}", threads_rows(&path).unwrap_err());
        assert!(err.contains("line 2") && err.contains("'threads'"), "{err}");
    }
}
