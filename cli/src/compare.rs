//! `compare` subcommand: compares two `.npy` arrays (ours vs another backend or the original).

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Arguments of `anisoap-candle compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Array under test (`.npy`, float64 or float32).
    pub actual: PathBuf,
    /// Expected array (`.npy`), e.g. the original AniSOAP's output.
    pub expected: PathBuf,
    /// Relative tolerance, applied to each column's largest expected magnitude.
    #[arg(long, default_value_t = 1e-10)]
    pub rtol: f64,
    /// Absolute tolerance added to the relative one.
    #[arg(long, default_value_t = 1e-12)]
    pub atol: f64,
}

/// A 2-D view of an array read from `.npy` (1-D arrays become one row).
struct Array {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

fn read_npy(path: &Path) -> Result<Array> {
    let array = anisoap_candle::npy::read_npy(path)?;
    let (rows, cols) = match array.shape.as_slice() {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        shape => bail!(
            "{}: expected a 1-D or 2-D array, got shape {shape:?}",
            path.display()
        ),
    };
    Ok(Array {
        rows,
        cols,
        data: array.data,
    })
}

/// Runs the comparison; fails when any entry is out of tolerance.
pub fn run(args: &CompareArgs) -> Result<()> {
    let a = read_npy(&args.actual)?;
    let e = read_npy(&args.expected)?;
    if (a.rows, a.cols) != (e.rows, e.cols) {
        bail!(
            "shape mismatch: {} is {}x{}, {} is {}x{}",
            args.actual.display(),
            a.rows,
            a.cols,
            args.expected.display(),
            e.rows,
            e.cols
        );
    }
    let mut worst = (0.0f64, 0usize, 0usize);
    let mut max_abs = 0.0f64;
    for c in 0..e.cols {
        let scale = (0..e.rows)
            .map(|r| e.data[r * e.cols + c].abs())
            .fold(0.0, f64::max);
        for r in 0..e.rows {
            let diff = (a.data[r * a.cols + c] - e.data[r * e.cols + c]).abs();
            max_abs = max_abs.max(diff);
            let ratio = diff / (args.atol + args.rtol * scale);
            if ratio.is_nan() || ratio > worst.0 {
                worst = (if ratio.is_nan() { f64::INFINITY } else { ratio }, r, c);
            }
        }
    }
    let global = e.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    println!(
        "{} vs {}: {}x{}, max |diff| = {:.3e} ({:.3e} of the largest value), worst entry ({}, {}) at {:.3} of tolerance",
        args.actual.display(),
        args.expected.display(),
        e.rows,
        e.cols,
        max_abs,
        if global > 0.0 { max_abs / global } else { 0.0 },
        worst.1,
        worst.2,
        worst.0
    );
    if worst.0 > 1.0 {
        bail!(
            "arrays differ beyond rtol={} (per column scale) + atol={}",
            args.rtol,
            args.atol
        );
    }
    Ok(())
}
